#!/usr/bin/env bash
# The GPU check of issue 26, part 1, in one run on the lent H200 (each piece time-limited: at most ~8 minutes in all).
# Needs .whl/ from benchmarks/gpu_wheels.sh (carried). Each piece has its own time limit and
# writes its figures to $OUT as it ends; a failed piece is recorded and the next one runs.
#   1. tiny profile: every dvc.yaml stage (gpu_stages.py; no dvc there), on CUDA
#   2. benchmarks/gpu.py at the paper's shapes (random init), fp32 and bf16
#   3. default profile: prepare, default-shaped random models, superhf, rlhf, evaluate
#   4. the superhf stage through `launcher` with accelerate's fsdp.yaml, then deepspeed_zero2.yaml
# SUPERHF_REQUIRE_CUDA=1 turns any CPU fallback into an error. GPU_DRY_RUN=1 (CPU, here):
# no CUDA requirement, no wheel install, smoke shapes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
W=/tmp/gpuw; rm -rf $W; mkdir -p $W
if [ -z "${GPU_DRY_RUN:-}" ]; then
  export SUPERHF_REQUIRE_CUDA=1 SHAPE=paper
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || echo "FAILED: wheel install"
  export PYTHONPATH=$PWD/src:/tmp/site
  # dvc.yaml's commands say `python`; there only python3 may be on PATH. A wrapper, not a
  # symlink: python3 there is a venv's, and a symlink elsewhere loses the venv (no torch;
  # seen on the H200, 2026-12-04)
  mkdir -p /tmp/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" >/tmp/bin/python
  chmod +x /tmp/bin/python && export PATH=/tmp/bin:$PATH
else
  export SHAPE=smoke PYTHONPATH=$PWD/src
fi
PY=python3
NOTRACK="--set tracking.enabled=false"
T0=$(date +%s)
step() { echo "=== $1 (t=$(( $(date +%s) - T0 ))s)"; }
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY - <<'PYEOF'
import platform, importlib
print("python", platform.python_version())
for m in ("torch", "transformers", "accelerate", "peft", "pydantic", "tokenizers", "safetensors",
          "numpy", "deepspeed", "dvc", "mlflow"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:
        print(m, "MISSING:", type(e).__name__, str(e).splitlines()[0][:120])
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name() if torch.cuda.is_available() else "-")
PYEOF
} > "$OUT/env.txt" 2>&1; cat "$OUT/env.txt"

step "1 tiny: all stages"
timeout -k 5 160 $PY benchmarks/gpu_stages.py --profile tiny --work $W/tiny $NOTRACK \
  --json "$OUT/tiny.json" || echo "FAILED: tiny pipeline (rc $?)"

step "2 gpu.py --shape $SHAPE"
timeout -k 5 160 $PY benchmarks/gpu.py --shape $SHAPE --tokenizers .whl/shapes \
  --precisions fp32,bf16 --json "$OUT/gpu_paper.json" || echo "FAILED: gpu.py (rc $?)"

step "3 default: prepare, random default-shaped models, superhf, rlhf, evaluate"
D=$W/default
timeout -k 5 110 bash -c "set -o pipefail
  $PY benchmarks/gpu_stages.py --profile default --work $D --stages prepare $NOTRACK &&
  $PY benchmarks/gpu_models.py build --shape default --tokenizers .whl/shapes \
    --policy $D/models/base --reward $D/models/reward --gold $D/models/reward_gold \
    --max-length 128 2>&1 | { grep -v 'it/s]' || true; } &&
  $PY benchmarks/gpu_stages.py --profile default --work $D --stages superhf,rlhf,evaluate \
    $NOTRACK --json '$OUT/default.json'" || echo "FAILED: default stages (rc $?)"

for cfg in fsdp deepspeed_zero2; do
  if [ $cfg = deepspeed_zero2 ] && [ -z "${GPU_DRY_RUN:-}" ]; then
    step "4b install the deepspeed sdist (DS_BUILD_OPS=0)"
    DS_BUILD_OPS=0 timeout -k 5 40 python3 -m pip install -q --no-index --no-deps \
      --no-build-isolation --no-cache-dir --target /tmp/site .whl/deepspeed-*.tar.gz 2>&1 \
      | tail -3 || echo "FAILED: deepspeed install (rc $?)"
    $PY -c "import deepspeed; print('deepspeed', deepspeed.__version__)" 2>&1 | tail -1 \
      | tee -a "$OUT/env.txt"
  fi
  step "4 tiny superhf through accelerate launch $cfg.yaml"
  L=$W/$cfg; rm -rf $L; mkdir -p $L
  [ -d $W/tiny/models ] && cp -r $W/tiny/data $W/tiny/models $L/ && rm -rf $L/models/superhf*
  CPU=""; [ -n "${GPU_DRY_RUN:-}" ] && CPU="--cpu"
  timeout -k 5 40 $PY benchmarks/gpu_stages.py --profile tiny --work $L --stages superhf \
    $NOTRACK --set "launcher=$PY -m accelerate.commands.launch --config_file \
$PWD/configs/accelerate/$cfg.yaml --num_processes 1 $CPU" --json "$OUT/$cfg.json" \
    || echo "FAILED: $cfg launcher (rc $?)"
done

step "5 summary"
$PY benchmarks/gpu_summary.py "$OUT" > "$OUT/summary.md" || echo "FAILED: summary"
cat "$OUT/summary.md"
step "done"
