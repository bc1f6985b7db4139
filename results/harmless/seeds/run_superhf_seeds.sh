#!/usr/bin/env bash
# SuperHF training seeds 1 and 2 beside the main run's seed 0, in the checkout that ran
# `dvc repro` of the harmless profile (its models/ and data/ are the inputs). Evaluation as in
# the main run (same test prompts, same sampling seed) but of base and SuperHF only, without
# the benchmarks and best-of-n (identical to the main run's: they do not depend on the
# training seed). Writes seeds/superhf-seed<S>/ under OUT (default: results/harmless).
#   bash results/harmless/seeds/run_superhf_seeds.sh [OUT]
set -euo pipefail
OUT=${1:-results/harmless}
for S in 1 2; do
  W=$(mktemp -d)
  D=$OUT/seeds/superhf-seed$S
  mkdir -p "$D"
  python - "$S" "$W/params.yaml" <<'PY'
import sys, yaml
seed, out = int(sys.argv[1]), sys.argv[2]
p = yaml.safe_load(open("params.yaml"))
p["superhf"]["seed"] = seed
p["evaluate"]["benchmarks"]["enabled"] = False
p["evaluate"]["best_of_n"] = 0
p["evaluate"]["best_of_n_curve"] = 0
yaml.safe_dump(p, open(out, "w"), sort_keys=False)
PY
  cp "$W/params.yaml" "$D/params.yaml"
  python -m superhf.stages.superhf --params "$W/params.yaml" --policy models/base \
    --reward models/reward --prompts data/prompts/train.jsonl --out "$W/superhf" \
    --checkpoints "$W/ck" --metrics "$D/superhf.json" --curve "$D/superhf_curve.csv" \
    --samples "$D/superhf_samples.jsonl" --snapshots "$W/snapshots"
  python -m superhf.stages.evaluate --params "$W/params.yaml" --prompts data/prompts/test.jsonl \
    --model base=models/base --model superhf="$W/superhf" --reward models/reward \
    --gold models/reward_gold --metrics "$D/eval.json" --table "$D/table4.md" \
    --completions "$D/eval_completions.jsonl" --snapshots superhf="$W/snapshots" \
    --overopt "$D/overoptimisation.json"
  rm -rf "$W"
done
