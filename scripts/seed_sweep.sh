#!/usr/bin/env bash
# Seed sweep of SuperHF vs RLHF as queued DVC experiments, in one command:
#   scripts/seed_sweep.sh 0 1 2        # then: dvc exp show --only-changed
# Each experiment reruns only the seed-dependent stages (superhf, rlhf, evaluate, report).
# Queued experiments run in temporary workspaces; MLflow runs still land in the main
# repository's mlflow.db (absolute default) or in $MLFLOW_TRACKING_URI.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 SEED [SEED ...]" >&2; exit 2; }
for seed in "$@"; do
  dvc exp run --queue --name "seed-$seed" \
    -S "superhf.seed=$seed" -S "rlhf.seed=$seed" -S "evaluate.seed=$seed"
done
dvc queue start --jobs "${JOBS:-1}"
# wait for the queue to drain, then list the results
while dvc queue status | grep -qE "Queued|Running"; do sleep 5; done
dvc queue status
dvc exp show --no-pager --only-changed
