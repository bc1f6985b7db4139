#!/usr/bin/env bash
# One piece of the hh study (results/hh/PLAN.md), run from the repository root of a checkout
# whose params.yaml is the hh profile (`python -m superhf.profile hh`). Each piece writes
# what it measured under results/hh/ and times itself (results/hh/times/<piece>.txt:
# /usr/bin/time -v, start and end).
#   bash results/hh/run_piece.sh reward_models   # piece 1: data, base policy, reward models,
#     rebuilt with the proxy on the study's recorded pairs (proxy_pairs.jsonl.gz); `reward_models
#     new` starts a new study (the pairs derived here and recorded)
#   bash results/hh/run_piece.sh eval_base       # piece 7a: base and best-of-4 on the eval prompts
#   bash results/hh/run_piece.sh bon_pool 0:16     # piece 6: the best-of-n pool of curve prompts
#     0-15 (one range; the merge joins the ranges into the curve of one run)
#   bash results/hh/run_piece.sh sweep superhf lr2e-5_kl0   # pieces 2-3: one sweep setting
#     (results/hh/sweep_settings.yaml): trained by `dvc exp run -S ...`, its snapshots evaluated
#     on the validation prompts (the base once per method), the curve in results/hh/sweep/
#   bash results/hh/run_piece.sh seed superhf 0   # pieces 4-5 and 7: a training seed of the
#     method's chosen setting (refused until the profile holds it), its KL-grid snapshots and
#     final model evaluated on the evaluation prompts; seed 0 joins the base in metrics/,
#     seed k has its own folder seeds/seedK/ (`superhf.results --seed-run`)
#   PAUSE_AFTER_MIN=75 bash results/hh/run_piece.sh sweep rlhf SETTING   # a training longer
#     than one piece (PPO): paused at the first step past 75 minutes (exit status 3; a part
#     ends within a step and a checkpoint of that), resumed by the same command on the same
#     machine (the checkpoint is not committed), which then evaluates; each part timed
set -euo pipefail
PIECE=${1:?usage: run_piece.sh reward_models|eval_base|bon_pool START:STOP|sweep METHOD SETTING|seed METHOD SEED}
OUT=results/hh
mkdir -p "$OUT/metrics" "$OUT/pieces" "$OUT/times"
grep -q '^profile: hh$' params.yaml || { echo "run_piece.sh: params.yaml is not the hh profile" >&2; exit 2; }
same_inputs() { # the data, base and reward models this checkout holds are the study's: the data
  # and base bit for bit (results/hh/dvc.lock), the reward models to float precision (the proxy
  # trained on the study's recorded pairs, every metric within 0.01: superhf.rebuild_check)
  [ -f "$OUT/dvc.lock" ] || { echo "run_piece.sh: no $OUT/dvc.lock: run the reward_models piece first" >&2; exit 2; }
  [ -f dvc.lock ] || { echo "run_piece.sh: no dvc.lock here: run the reward_models piece first" >&2; exit 2; }
  python - "$OUT/dvc.lock" dvc.lock <<'PY'
import sys, yaml
def outs(path):
    stages = yaml.safe_load(open(path))["stages"]
    return {s: {o["path"]: o.get("md5") for o in stages.get(s, {}).get("outs", [])}
            for s in ("prepare", "base_policy")}
study, here = (outs(p) for p in sys.argv[1:])
for stage in study:
    if here[stage] != study[stage]:
        sys.exit(f"run_piece.sh: stage {stage}'s outputs in dvc.lock differ from the study's "
                 f"({sys.argv[1]}): pieces built on other data or another base must not mix; "
                 "rebuild them (run_piece.sh reward_models) or start a new study")
PY
  python -m superhf.rebuild_check "$OUT/metrics/reward_model.json" metrics/reward_model.json
}
versions() { # the libraries whose kernels set the last bits (transformers is capped, not pinned)
  python -m pip list --format=freeze 2>/dev/null |
    grep -iE '^(torch|transformers|tokenizers|numpy|safetensors)==' || true
}
timed() { # command... : run it timed, its time report beside the results ($LOG, or the piece's)
  # written outside the checkout first: `dvc exp run` rewrites tracked files as it applies
  # its result, and a committed report open for appending would lose /usr/bin/time's lines
  local log=${LOG:-$OUT/times/$PIECE.txt} tmp
  local rc=0
  tmp=$(mktemp)
  echo "start $(date -u +%FT%TZ) commit $(git rev-parse HEAD)" > "$tmp"
  /usr/bin/time -v -a -o "$tmp" "$@" || rc=$?
  echo "end $(date -u +%FT%TZ)" >> "$tmp"
  cat "$tmp" > "$log" && rm "$tmp"
  return "$rc"
}
status_json() { # dvc status --json of the stages given, one line without spaces ({} = up to date)
  dvc status --json "$@" | tr -d ' \n'
}
train() { # dvc exp run's arguments: the piece's training. With PAUSE_AFTER_MIN=M set, the
  # trainer pauses at the first step boundary past M minutes (SUPERHF_PAUSE_AFTER_MIN: a
  # checkpoint, and checkpoints/METHOD.paused.json until the run ends) and the piece ends with
  # status 3; the same command resumes it (each resumed part timed in $PIECE-resume-TIME.txt)
  local marker=checkpoints/$METHOD.paused.json owner=checkpoints/$METHOD.piece log before rc=0
  local stale locked
  # dvc exp run would retrain a stale upstream stage on this checkout's code (deleting its
  # models first), not use the study's: refused before any work. It happens when a machine's
  # models, built at one commit, meet a later commit whose stage deps (src/superhf/...) changed
  stale=$(status_json prepare base_policy reward_model) ||
    { echo "run_piece.sh: dvc status failed (above): is another dvc running here?" >&2; exit 2; }
  if [ "$stale" != "{}" ]; then
    echo "run_piece.sh: stages prepare, base_policy or reward_model are not up to date in this" \
      "checkout (dvc status: $stale): dvc exp run would retrain them; run the piece at the commit" \
      "they were built at (the commit line of the rebuild's reward_models.time.txt under" \
      "$OUT/rebuilds/), or rebuild them (run_piece.sh reward_models)" >&2
    exit 2
  fi
  locked=$(md5sum < dvc.lock)   # the upstream entries cannot change: only $METHOD's can
  log=$OUT/times/$PIECE.txt
  before=$(cat "$marker" 2>/dev/null || true)
  if [ -n "$before" ]; then
    if [ "$(cat "$owner" 2>/dev/null)" != "$PIECE" ]; then
      echo "run_piece.sh: checkpoints/$METHOD holds a paused run of piece" \
        "'$(cat "$owner" 2>/dev/null)', not $PIECE: run that piece to its end first (or delete" \
        "checkpoints/$METHOD*)" >&2
      exit 2
    fi
    log=$OUT/times/$PIECE-resume-$(date -u +%Y%m%dT%H%M%SZ).txt
  else
    rm -f "$OUT/times/$PIECE"-resume-*.txt   # a fresh run: no part of an earlier one counts
  fi
  mkdir -p checkpoints && echo "$PIECE" > "$owner"
  LOG=$log SUPERHF_PAUSE_AFTER_MIN=${PAUSE_AFTER_MIN:-} timed dvc exp run "$@" || rc=$?
  [ "$rc" = 0 ] && return 0
  if [ -f "$marker" ] && [ "$(cat "$marker")" != "$before" ]; then  # written by this part
    echo "run_piece.sh: $PIECE paused ($(cat "$marker")): run the same command to resume it" >&2
    exit 3
  fi
  # dvc exp run can fail after the stage ran and dvc.lock recorded it, while it saves the
  # experiment (RLOO seed 0: "'NoneType' object is not subscriptable"): the training is done
  # if this call rewrote dvc.lock (its $METHOD entry) and the stage is up to date
  if [ "$(md5sum < dvc.lock)" != "$locked" ] && [ "$(status_json "$METHOD")" = "{}" ]; then
    local why="dvc exp run ended with status $rc after stage $METHOD ran and dvc.lock recorded it"
    why="$why (dvc status: up to date): the piece went on (the experiment may be missing from"
    why="$why dvc exp show; see git status)"
    echo "run_piece.sh: $why" >&2
    echo "note: $why" >> "$log"
    return 0
  fi
  exit "$rc"
}
[ "$PIECE" = reward_models ] || same_inputs
case $PIECE in
  reward_models)
    if [ "${2:-}" != new ] && [ -f "$OUT/proxy_pairs.jsonl.gz" ]; then
      # a rebuild: the proxy trains on the study's recorded pairs, not on pairs this machine's
      # gold orders (near-ties flip between CPUs: rebuilds/2026-12-06); dvc.yaml's command
      # with --proxy-pairs, its outputs then recorded in dvc.lock (`dvc commit`)
      CMD=$(python -c 'import yaml; print(yaml.safe_load(open("dvc.yaml"))["stages"]["reward_model"]["cmd"])')
      REBUILD=$OUT/rebuilds/$(date -u +%FT%H%MZ)
      mkdir -p "$REBUILD"
      LOG=$REBUILD/reward_models.time.txt timed bash -c "dvc repro prepare base_policy &&
        $CMD --proxy-pairs $OUT/proxy_pairs.jsonl.gz && dvc commit -f reward_model"
      cp metrics/reward_model.json dvc.lock "$REBUILD/"
      lscpu > "$REBUILD/lscpu.txt" || true
      versions > "$REBUILD/versions.txt"
      same_inputs   # refused unless the data and base are the study's and the models match
    elif [ "${2:-}" = new ] || [ ! -f "$OUT/dvc.lock" ]; then
      # a new study: the proxy's pairs derived here and recorded for every later rebuild; the
      # evaluations made with an earlier study's proxy go (git keeps them)
      rm -fv "$OUT"/pieces/*.json "$OUT"/sweep/base-*.piece.json
      timed dvc repro prepare base_policy reward_model
      cp models/reward/proxy_pairs.jsonl.gz dvc.lock "$OUT/"
      lscpu > "$OUT/times/reward_models.lscpu.txt" || true
      versions > "$OUT/times/reward_models.versions.txt"
      cp metrics/data.json metrics/reward_model.json "$OUT/metrics/"
    else
      echo "run_piece.sh: $OUT/dvc.lock is a study without its proxy's pairs" \
        "($OUT/proxy_pairs.jsonl.gz), so it cannot be rebuilt; start a new study with" \
        "'run_piece.sh reward_models new'" >&2
      exit 2
    fi
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
  bon_pool)
    # piece 6: the best-of-n pool of the curve's prompts START up to STOP (each prompt seeded
    # by itself), both models' scores of every draw; the ranges join in the merge
    RANGE=${2:?usage: run_piece.sh bon_pool START:STOP}
    PIECE=bon_pool-${RANGE/:/-}
    timed python -m superhf.stages.evaluate --params params.yaml \
      --prompts data/prompts/test.jsonl --model base=models/base \
      --reward models/reward --gold models/reward_gold \
      --only best_of_n_curve --curve-prompts "$RANGE" --piece-out "$OUT/pieces/bon_curve_${RANGE%%:*}.json"
    ;;
  sweep)
    METHOD=${2:?usage: run_piece.sh sweep METHOD SETTING}
    SETTING=${3:?usage: run_piece.sh sweep METHOD SETTING}
    # the setting's overrides, one -S each; refused before any work if the setting is unknown
    mapfile -t OVERRIDES < <(python - "$METHOD" "$SETTING" <<'PY'
import sys, yaml
method, setting = sys.argv[1:]
sweep = yaml.safe_load(open("results/hh/sweep_settings.yaml"))
if setting not in (sweep.get(method) or {}).get("settings", {}):
    sys.exit(f"run_piece.sh: no setting {setting!r} of {method!r} in results/hh/sweep_settings.yaml")
for k, v in {**sweep[method]["common"], **sweep[method]["settings"][setting]}.items():
    print("-S"); print(f"{k}={v}")
PY
)
    [ "${#OVERRIDES[@]}" -gt 0 ] || exit 2   # the message came from python above
    PIECE=sweep-$METHOD-$SETTING
    python -m superhf.profile hh > /dev/null   # every setting starts from the committed profile
    trap 'python -m superhf.profile hh > /dev/null' EXIT   # and leaves it, even on a failure
    train --name "hh-$METHOD-$SETTING-$(date -u +%Y%m%dT%H%M%S)" "${OVERRIDES[@]}" "$METHOD"
    mkdir -p "$OUT/sweep" "$OUT/times"
    cp params.yaml "$OUT/sweep/$METHOD-$SETTING.params.yaml"
    cp dvc.lock "$OUT/sweep/$METHOD-$SETTING.dvc.lock"
    cp "metrics/${METHOD}_curve.csv" "$OUT/sweep/$METHOD-$SETTING.train_curve.csv"
    EVAL=(python -m superhf.stages.evaluate --params params.yaml --prompts data/prompts/val.jsonl
      --model base=models/base --model "$METHOD=models/$METHOD"
      --snapshots "$METHOD=models/${METHOD}_snapshots" --reward models/reward --gold models/reward_gold)
    # the base on the validation prompts: the same numbers for every setting, so once per method
    BASE=$OUT/sweep/base-$METHOD.piece.json
    # (made with this study's proxy: `reward_models new` deletes it)
    [ -f "$BASE" ] || LOG=$OUT/times/sweep-base-$METHOD-evaluate.txt \
      timed "${EVAL[@]}" --only base --piece-out "$BASE"
    LOG=$OUT/times/$PIECE-evaluate.txt \
      timed "${EVAL[@]}" --only "$METHOD" --piece-out "$OUT/sweep/$METHOD-$SETTING.piece.json"
    TMP=$(mktemp -d)
    python -m superhf.stages.evaluate_merge --params params.yaml --partial \
      --piece "$BASE" --piece "$OUT/sweep/$METHOD-$SETTING.piece.json" --metrics "$TMP/eval.json" \
      --table "$TMP/table4.md" --completions "$TMP/completions.jsonl" \
      --overopt "$OUT/sweep/$METHOD-$SETTING.overopt.json"
    rm -r "$TMP"
    exit 0
    ;;
  seed)
    METHOD=${2:?usage: run_piece.sh seed METHOD SEED}
    SEED=${3:?usage: run_piece.sh seed METHOD SEED}
    PIECE=seed-$METHOD-$SEED
    python -m superhf.profile hh > /dev/null
    trap 'python -m superhf.profile hh > /dev/null' EXIT
    # the committed profile must hold the method's sweep choice: refused before any work
    python -m superhf.sweep_select --report results/hh/sweep_settings.yaml "$OUT/sweep" \
      --holds-choice "$METHOD" params.yaml > /dev/null
    train --name "hh-$METHOD-seed$SEED-$(date -u +%Y%m%dT%H%M%S)" -S "$METHOD.seed=$SEED" "$METHOD"
    mkdir -p "$OUT/seeds"
    cp params.yaml "$OUT/seeds/$METHOD-seed$SEED.params.yaml"
    cp dvc.lock "$OUT/seeds/$METHOD-seed$SEED.dvc.lock"
    cp "metrics/${METHOD}_curve.csv" "$OUT/seeds/$METHOD-seed$SEED.train_curve.csv"
    LOG=$OUT/times/$PIECE-evaluate.txt timed python -m superhf.stages.evaluate --params params.yaml \
      --prompts data/prompts/test.jsonl --model base=models/base --model "$METHOD=models/$METHOD" \
      --snapshots "$METHOD=models/${METHOD}_snapshots" --reward models/reward --gold models/reward_gold \
      --only "$METHOD" --piece-out "$OUT/pieces/$METHOD-seed$SEED.json"
    # seed 0 joins the base, best-of-4 and the pool's ranges in metrics/; seed k its own folder
    DEST=$OUT/metrics
    [ "$SEED" = 0 ] || DEST=$OUT/seeds/seed$SEED
    PIECES=(--piece "$OUT/pieces/base.json")
    for f in "$OUT"/pieces/*-seed"$SEED".json; do PIECES+=(--piece "$f"); done
    if [ "$SEED" = 0 ]; then
      for f in "$OUT"/pieces/bon_curve_*.json; do [ ! -f "$f" ] || PIECES+=(--piece "$f"); done
    fi
    mkdir -p "$DEST"
    python -m superhf.stages.evaluate_merge --params params.yaml --partial "${PIECES[@]}" \
      --metrics "$DEST/eval.json" --table "$DEST/table4.md" --completions "$DEST/eval_completions.jsonl" \
      --overopt "$DEST/overoptimisation.json" --overopt-plots "$DEST/overopt"
    exit 0
    ;;
  *) echo "run_piece.sh: unknown piece '$PIECE' (reward_models, eval_base, bon_pool, sweep, seed)" >&2; exit 2 ;;
esac
cp params.yaml "$OUT/params.yaml"   # dvc.lock is the study's first piece 1 (a rebuild's is in rebuilds/)
