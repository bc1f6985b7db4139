#!/usr/bin/env bash
# Seed sweep of SuperHF vs RLHF as queued DVC experiments, in one command:
#   scripts/seed_sweep.sh 0 1 2
# It ends with a table of the headline numbers' mean and spread over the seeds
# (scripts/sweep_table.py; rerun it any time: python scripts/sweep_table.py seed-0 seed-1 seed-2).
# Each experiment reruns only the seed-dependent stages (superhf, rlhf, evaluate, report, summary).
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
# (not `dvc queue status | grep -q`: under pipefail, grep's early exit makes dvc die of SIGPIPE
# and the loop stop while experiments still run; a failed status call is retried)
while true; do
  status=$(dvc queue status) || { sleep 5; continue; }
  [[ "$status" =~ Queued|Running ]] || break
  sleep 5
done
dvc queue status
dvc exp show --no-pager --only-changed
# the headline numbers (metrics/summary.json): mean and spread over the seeds
names=(); for seed in "$@"; do names+=("seed-$seed"); done
python "$(dirname "$0")/sweep_table.py" "${names[@]}"
