#!/usr/bin/env bash
# RLOO run to run on one machine (README, "Sweeps"): the hh profile's rloo at lr 1e-5, KL 0.05
# for 3 steps, twice in one checkout with piece 1's models (run from the repository root,
# PYTHONPATH=src); prints the curve columns that differ at each step, then compares the models.
set -euo pipefail
grep -q '^profile: hh$' params.yaml || { echo "rloo_determinism.sh: params.yaml is not the hh profile (python -m superhf.profile hh)" >&2; exit 2; }
D=$(mktemp -d)
echo "runs in $D"
python - "$D" <<'PY'
import sys, yaml
p = yaml.safe_load(open("params.yaml"))
p["rloo"].update(num_prompts=6, stop_kl=None, snapshot_kl=[], snapshot_every=0, checkpoint_every=100)
p["rloo"]["optim"]["lr"] = 1e-5
p["rloo"]["kl_coef"] = 0.05
yaml.safe_dump(p, open(f"{sys.argv[1]}/params.yaml", "w"), sort_keys=False)
PY
for r in 1 2; do
  python -m superhf.stages.rloo --params "$D/params.yaml" --policy models/base \
    --reward models/reward --prompts data/prompts/train.jsonl --out "$D/run$r/model" \
    --checkpoints "$D/run$r/ckpt" --metrics "$D/run$r/rloo.json" --curve "$D/run$r/curve.csv" \
    --samples "$D/run$r/samples.jsonl" > "$D/run$r.log" 2>&1
done
python - "$D" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(f"{sys.argv[1]}/run{r}/curve.csv"))) for r in (1, 2))
assert len(a) == len(b), (len(a), len(b))
for x, y in zip(a, b):
    d = {k: (x[k], y[k]) for k in x if not k.startswith("time") and x[k] != y[k]}
    print(x["step"], "equal" if not d else d)
PY
if cmp -s "$D/run1/model/model.safetensors" "$D/run2/model/model.safetensors"; then echo "models equal"; else echo "models differ"; fi
