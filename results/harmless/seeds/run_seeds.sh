#!/usr/bin/env bash
# Training seeds 1 and 2 of one method (superhf or rlhf) beside the main run's seed 0, in the
# checkout that ran `dvc repro` of the harmless profile (its models/ and data/ are the inputs).
# Evaluation as in the main run (same test prompts, same sampling seed) but of base and the
# method only, without the benchmarks and best-of-n (identical to the main run's: they do not
# depend on the training seed). Writes seeds/<METHOD>-seed<S>/ under OUT (default:
# results/harmless).
#   bash results/harmless/seeds/run_seeds.sh superhf|rlhf [OUT]
set -euo pipefail
M=${1:?usage: run_seeds.sh superhf|rlhf [OUT]}
case $M in superhf | rlhf) ;; *) echo "run_seeds.sh: METHOD must be superhf or rlhf, not '$M'" >&2; exit 2 ;; esac
OUT=${2:-results/harmless}
for S in 1 2; do
  W=$(mktemp -d)
  D=$OUT/seeds/$M-seed$S
  mkdir -p "$D"
  python - "$M" "$S" "$W/params.yaml" <<'PY'
import sys, yaml
method, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = yaml.safe_load(open("params.yaml"))
p[method]["seed"] = seed
p["evaluate"]["benchmarks"]["enabled"] = False
p["evaluate"]["best_of_n"] = 0
p["evaluate"]["best_of_n_curve"] = 0
yaml.safe_dump(p, open(out, "w"), sort_keys=False)
PY
  cp "$W/params.yaml" "$D/params.yaml"
  python -m superhf.stages."$M" --params "$W/params.yaml" --policy models/base \
    --reward models/reward --prompts data/prompts/train.jsonl --out "$W/$M" \
    --checkpoints "$W/ck" --metrics "$D/$M.json" --curve "$D/${M}_curve.csv" \
    --samples "$D/${M}_samples.jsonl" --snapshots "$W/snapshots"
  python -m superhf.stages.evaluate --params "$W/params.yaml" --prompts data/prompts/test.jsonl \
    --model base=models/base --model "$M=$W/$M" --reward models/reward \
    --gold models/reward_gold --metrics "$D/eval.json" --table "$D/table4.md" \
    --completions "$D/eval_completions.jsonl" --snapshots "$M=$W/snapshots" \
    --overopt "$D/overoptimisation.json"
  rm -rf "$W"
done
