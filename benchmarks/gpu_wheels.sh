#!/usr/bin/env bash
# What the GPU check (benchmarks/gpu_device.sh) carries in .whl/ (gitignored): the wheels
# the H200 image lacks (pydantic and its three needs; everything else the stages import at
# run time is there: see /work/.library/device/KINDS.md) and the packaged models' tokenizers
# and configs (gpu_models.py export; needs the packaged weights in the local cache).
# Not carried: dvc (its ~60 dependencies do not resolve/fit for cp312 manylinux within
# 64 MiB; gpu_stages.py runs dvc.yaml's commands instead), mlflow (tracking is switched off
# there). deepspeed ships only an sdist: it travels as one and gpu_device.sh installs it there
# with DS_BUILD_OPS=0 (no C++ built at install; ops JIT-compile with the image's nvcc/ninja),
# recording a failure; hjson is its one need the image lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 \
  hjson==3.1.0 typing-extensions==4.16.0 pyyaml==6.0.2 tqdm==4.70.1
python3 -m pip download --no-deps --no-binary=:all: -d .whl deepspeed==0.19.8
PYTHONPATH=$PWD/src python3 benchmarks/gpu_models.py export --out .whl/shapes
ls -la .whl
echo "wheels + tokenizers: $(du -cb .whl | tail -1 | cut -f1) bytes;" \
  "tracked tree: $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) bytes (limit 67108864 together)"
