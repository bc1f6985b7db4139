#!/usr/bin/env bash
# One piece of the hh study (results/hh/PLAN.md), run from the repository root of a checkout
# whose params.yaml is the hh profile (`python -m superhf.profile hh`). Each piece writes
# what it measured under results/hh/ and times itself (results/hh/times/<piece>.txt:
# /usr/bin/time -v, start and end).
#   bash results/hh/run_piece.sh reward_models   # piece 1: data, base policy, reward models
#   bash results/hh/run_piece.sh eval_base       # piece 7a: base and best-of-4 on the eval prompts
set -euo pipefail
PIECE=${1:?usage: run_piece.sh reward_models|eval_base}
OUT=results/hh
mkdir -p "$OUT/metrics" "$OUT/pieces" "$OUT/times"
grep -q '^profile: hh$' params.yaml || { echo "run_piece.sh: params.yaml is not the hh profile" >&2; exit 2; }
timed() { # command... : run it timed, its time report beside the results
  local log=$OUT/times/$PIECE.txt
  echo "start $(date -u +%FT%TZ) commit $(git rev-parse HEAD)" > "$log"
  /usr/bin/time -v -a -o "$log" "$@"
  echo "end $(date -u +%FT%TZ)" >> "$log"
}
case $PIECE in
  reward_models)
    timed dvc repro prepare base_policy reward_model
    cp metrics/data.json metrics/reward_model.json "$OUT/metrics/"
    ;;
  eval_base)
    timed python -m superhf.stages.evaluate --params params.yaml \
      --prompts data/prompts/test.jsonl --model base=models/base \
      --reward models/reward --gold models/reward_gold \
      --only base --only best_of_n --piece-out "$OUT/pieces/base.json"
    python -m superhf.stages.evaluate_merge --params params.yaml --piece "$OUT/pieces/base.json" --partial \
      --metrics "$OUT/metrics/eval.json" --table "$OUT/metrics/table4.md" \
      --completions "$OUT/metrics/eval_completions.jsonl"
    ;;
  *) echo "run_piece.sh: unknown piece '$PIECE' (reward_models, eval_base)" >&2; exit 2 ;;
esac
cp params.yaml "$OUT/params.yaml"
cp dvc.lock "$OUT/dvc.lock"
