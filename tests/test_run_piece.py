"""results/hh/run_piece.sh refuses a piece whose data, base or reward models are not the
study's, before any work: the data and base by their dvc.lock hashes (results/hh/dvc.lock),
the reward models by their metrics (superhf.rebuild_check: the proxy's recorded pairs the
same, every number within 0.01), since a rebuild on another CPU differs in its last bits."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def lock(base_md5: str, reward_md5: str) -> dict:
    return {
        "schema": "2.0",
        "stages": {
            "prepare": {"outs": [{"path": "data/prompts", "md5": "a.dir"}]},
            "base_policy": {"outs": [{"path": "models/base", "md5": base_md5}]},
            "reward_model": {"outs": [{"path": "models/reward", "md5": reward_md5}]},
        },
    }


def metrics(sha: str = "ab", proxy: float = 0.551) -> dict:
    return {
        "heldout": {"proxy": {"accuracy": proxy}, "gold": {"accuracy": 0.557}},
        "proxy_pairs": {"rows": 2967, "sha256": sha},
    }


SWEEP = ("sweep", "superhf", "no-such-setting")


def run_piece(
    tmp_path: Path,
    study_md5: str,
    here_md5: str,
    args: tuple[str, ...] = SWEEP,
    here_metrics: dict | None = None,
    here_base: str = "b.dir",
) -> subprocess.CompletedProcess:
    study = tmp_path / "results" / "hh"
    study.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "results/hh/run_piece.sh", study)
    shutil.copy(ROOT / "results/hh/sweep_settings.yaml", study)
    (tmp_path / "params.yaml").write_text("profile: hh\n")
    (study / "dvc.lock").write_text(yaml.safe_dump(lock("b.dir", study_md5)))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock(here_base, here_md5)))
    for folder, m in ((study, metrics()), (tmp_path, here_metrics or metrics())):
        (folder / "metrics").mkdir(exist_ok=True)
        (folder / "metrics" / "reward_model.json").write_text(json.dumps(m))
    return subprocess.run(
        ["bash", "results/hh/run_piece.sh", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_another_base_is_refused(tmp_path):
    out = run_piece(tmp_path, "c.dir", "c.dir", here_base="e.dir")
    assert out.returncode != 0
    assert "stage base_policy's outputs in dvc.lock differ from the study's" in out.stderr


@pytest.mark.parametrize(
    ("here", "why"),
    [(metrics(sha="cd"), "proxy_pairs.sha256: 'ab' in the study, 'cd' here"),
     (metrics(proxy=0.562), "heldout.proxy.accuracy: 0.551 in the study, 0.562 here")],
)  # fmt: skip
def test_other_reward_models_are_refused(tmp_path, here, why):
    out = run_piece(tmp_path, "c.dir", "d.dir", here_metrics=here)
    assert out.returncode != 0
    assert "is not the study's" in out.stderr and why in out.stderr


def test_a_rebuild_to_float_precision_passes_the_guard(tmp_path):
    # another CPU: other hashes, the same recorded pairs, numbers within 0.01
    out = run_piece(tmp_path, "c.dir", "d.dir", here_metrics=metrics(proxy=0.552))
    assert out.returncode != 0  # stopped later, at the unknown setting
    assert "differ from the study's" not in out.stderr and "not the study's" not in out.stderr
    assert "no setting 'no-such-setting'" in out.stderr


def test_a_seed_of_a_method_without_a_choice_is_refused_before_training(tmp_path):
    out = run_piece(tmp_path, "c.dir", "c.dir", ("seed", "rloo", "0"))
    assert out.returncode != 0
    assert "sweep_select: rloo's sweep has chosen no setting yet: Not run yet" in out.stderr
    assert "dvc" not in out.stderr.lower().replace("dvc.lock", "")


def test_a_seed_of_the_chosen_setting_passes_the_check(tmp_path):
    shutil.copytree(ROOT / "results/hh/sweep", tmp_path / "results/hh/sweep")
    out = run_piece(tmp_path, "c.dir", "c.dir", ("seed", "superhf", "0"))
    assert out.returncode != 0  # stopped later: no DVC project here
    assert "sweep_select" not in out.stderr


FAKE_DVC = """#!/usr/bin/env bash
echo "dvc $*" >> calls.txt
"""
# dvc.yaml's reward_model command, faked: it logs its arguments and writes the stage's metrics
STAGE = (
    "python -c \"import json, sys; open('calls.txt', 'a').write('stage ' + ' '.join(sys.argv[1:]) + chr(10)); "
    "json.dump(json.load(open('results/hh/metrics/reward_model.json')), open('metrics/reward_model.json', 'w'))\""
)


def fake_project(tmp_path: Path, record: bool) -> Path:
    """A checkout whose dvc is a script that logs its calls (nothing is trained)."""
    study = tmp_path / "results" / "hh"
    (study / "metrics").mkdir(parents=True)
    (tmp_path / "metrics").mkdir()
    shutil.copy(ROOT / "results/hh/run_piece.sh", study)
    (tmp_path / "params.yaml").write_text("profile: hh\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"reward_model": {"cmd": STAGE}}}))
    for lockfile in (study / "dvc.lock", tmp_path / "dvc.lock"):
        lockfile.write_text(yaml.safe_dump(lock("b.dir", "c.dir")))
    (study / "metrics" / "reward_model.json").write_text(json.dumps(metrics()))
    if record:
        (study / "proxy_pairs.jsonl.gz").write_bytes(b"the study's record")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dvc").write_text(FAKE_DVC)
    (bin_dir / "dvc").chmod(0o755)
    return bin_dir


def run_reward_models(tmp_path: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "results/hh/run_piece.sh", "reward_models", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


needs_time = pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="no /usr/bin/time")


@needs_time
def test_a_rebuild_trains_the_proxy_on_the_record_and_keeps_the_studys_files(tmp_path):
    bin_dir = fake_project(tmp_path, record=True)
    study = tmp_path / "results" / "hh"
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}
    out = run_reward_models(tmp_path, bin_dir)
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == [
        "dvc repro prepare base_policy",
        "stage --proxy-pairs results/hh/proxy_pairs.jsonl.gz",
        "dvc commit -f reward_model",
    ]
    assert {p: p.read_bytes() for p in before} == before  # nothing of the study rewritten
    (rebuild,) = (study / "rebuilds").iterdir()
    assert {p.name for p in rebuild.iterdir()} >= {"reward_model.json", "dvc.lock"}
    assert "is the study's to within 0.01" in out.stdout


def test_a_study_without_its_record_is_not_rebuilt_nor_silently_replaced(tmp_path):
    bin_dir = fake_project(tmp_path, record=False)
    out = run_reward_models(tmp_path, bin_dir)
    assert out.returncode == 2
    assert (
        "cannot be rebuilt; start a new study with 'run_piece.sh reward_models new'" in out.stderr
    )
    assert not (tmp_path / "calls.txt").exists()  # refused before any work


FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1 $2" = "-m superhf.stages.evaluate" ]; then echo "evaluate ${*:3}" >> calls.txt; exit 0; fi
exec PYTHON "$@"
"""


@needs_time
def test_a_pool_range_is_one_timed_evaluate_of_that_range_alone(tmp_path):
    bin_dir = fake_project(tmp_path, record=True)
    (bin_dir / "python").write_text(FAKE_PYTHON.replace("PYTHON", sys.executable))
    (bin_dir / "python").chmod(0o755)
    run_reward_models(tmp_path, bin_dir)  # the models in place (faked), then the range
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = ["bash", "results/hh/run_piece.sh", "bon_pool"]
    out = subprocess.run([*run, "16:32"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    (call,) = [c for c in (tmp_path / "calls.txt").read_text().splitlines() if "evaluate" in c]
    assert call.endswith(
        "--only best_of_n_curve --curve-prompts 16:32 "
        "--piece-out results/hh/pieces/bon_curve_16.json"
    )
    assert "Elapsed" in (tmp_path / "results/hh/times/bon_pool-16-32.txt").read_text()
    out = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "usage: run_piece.sh bon_pool START:STOP" in out.stderr


FAKE_PAUSING_DVC = """#!/usr/bin/env bash
# dvc status --json TARGETS: the first target's status-TARGET.json, or up to date
if [ "$1" = status ]; then
  for t in "${@:3}"; do [ ! -f "status-$t.json" ] || { cat "status-$t.json"; exit 0; }; done
  echo "{ }"; exit 0
fi
echo "dvc $1 $2 pause=${SUPERHF_PAUSE_AFTER_MIN:-none}" >> calls.txt
[ "$1 $2" = "exp run" ] || exit 0
what=$(head -n 1 plan.txt); sed -i 1d plan.txt   # what this training does, as the trainer would
case $what in
  pause*) echo "{\"stage\": \"superhf\", \"step\": ${what#pause }}" > checkpoints/superhf.paused.json; exit 1 ;;
  fail)  # a failure that is no pause: the marker, if any, is left as it was; the stage not done
    echo '{"superhf": [{"changed outs": {"models/superhf": "deleted"}}]}' > status-superhf.json; exit 7 ;;
  ok|savefail) rm -f checkpoints/superhf.paused.json status-superhf.json; echo "step" > metrics/superhf_curve.csv
    [ "$what" = ok ] && exit 0  # savefail: the stage done and recorded, then the save failed
    echo "  superhf: {outs: [{path: models/superhf, md5: $RANDOM}]}" >> dvc.lock; exit 255 ;;
  lockedfail) exit 255 ;;  # failed before the stage ran; dvc.lock recorded it from an earlier run
esac
"""
FAKE_TOOLS = """#!/usr/bin/env bash
case "$1 $2" in
  "-m superhf.profile") exit 0 ;;
  "-m superhf.stages.evaluate"|"-m superhf.stages.evaluate_merge") echo "${2##*.}" >> calls.txt; exit 0 ;;
esac
exec PYTHON "$@"
"""


def scripted_project(tmp_path: Path, plan: str) -> Path:
    """A checkout with its models in place (faked) whose dvc trains as plan.txt says, one
    line a call (FAKE_PAUSING_DVC), and whose evaluation is faked (FAKE_TOOLS): its bin."""
    bin_dir = fake_project(tmp_path, record=True)
    run_reward_models(tmp_path, bin_dir)  # the models in place (faked)
    (bin_dir / "dvc").write_text(FAKE_PAUSING_DVC)
    (bin_dir / "python").write_text(FAKE_TOOLS.replace("PYTHON", sys.executable))
    (bin_dir / "python").chmod(0o755)
    shutil.copy(ROOT / "results/hh/sweep_settings.yaml", tmp_path / "results/hh")
    (tmp_path / "plan.txt").write_text(plan)
    return bin_dir


@needs_time
def test_a_paused_training_ends_the_piece_and_the_same_command_resumes_it(tmp_path):
    bin_dir = scripted_project(tmp_path, "fail\npause 40\nfail\npause 90\nok\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PAUSE_AFTER_MIN": "80"}
    calls, times = tmp_path / "calls.txt", tmp_path / "results/hh/times"

    def piece(setting: str = "lr2e-5_kl0") -> subprocess.CompletedProcess:
        calls.unlink(missing_ok=True)
        return subprocess.run(
            ["bash", "results/hh/run_piece.sh", "sweep", "superhf", setting],
            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    stale = times / "sweep-superhf-lr2e-5_kl0-resume-20261201T000000Z.txt"
    times.mkdir(parents=True, exist_ok=True)
    stale.write_text("a part of an earlier run")
    out = piece()  # a fresh run that fails: its status, its report, no evaluation
    assert out.returncode == 7 and "paused" not in out.stderr
    assert calls.read_text() == "dvc exp run pause=80\n"
    assert "Elapsed" in (times / "sweep-superhf-lr2e-5_kl0.txt").read_text()
    assert not stale.exists()  # a fresh run's cost has no part of an earlier one

    out = piece()  # paused: status 3, no evaluation
    assert out.returncode == 3, out.stderr
    assert "sweep-superhf-lr2e-5_kl0 paused" in out.stderr and "run the same command" in out.stderr
    assert calls.read_text() == "dvc exp run pause=80\n"

    out = piece("lr5e-5_kl0")  # another piece while one is paused: refused before any work
    assert out.returncode == 2 and not calls.exists()
    assert "holds a paused run of piece 'sweep-superhf-lr2e-5_kl0'" in out.stderr

    out = piece()  # a resumed part that fails (the marker untouched): a failure, not a pause
    assert out.returncode == 7 and "paused" not in out.stderr
    out = piece()  # resumed, paused again at a later step
    assert out.returncode == 3 and "step: 90" in out.stderr.replace('"', "")
    out = piece()  # resumed to its end, then evaluated
    assert out.returncode == 0, out.stderr
    assert calls.read_text().splitlines() == [
        "dvc exp run pause=80", "evaluate", "evaluate", "evaluate_merge"
    ]  # fmt: skip
    parts = sorted(times.glob("sweep-superhf-lr2e-5_kl0-resume-*.txt"))
    assert len(parts) >= 1 and all("Elapsed" in f.read_text() for f in parts)


def sweep_piece(tmp_path: Path, plan: str) -> subprocess.CompletedProcess:
    """A sweep piece of superhf whose faked training does what plan.txt says."""
    scripted_project(tmp_path, plan)
    return run_sweep(tmp_path)


def run_sweep(tmp_path: Path) -> subprocess.CompletedProcess:
    """The sweep piece run again in a scripted project, its calls logged afresh."""
    (tmp_path / "calls.txt").unlink(missing_ok=True)
    return subprocess.run(
        ["bash", "results/hh/run_piece.sh", "sweep", "superhf", "lr2e-5_kl0"], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
    )  # fmt: skip


@needs_time
def test_stale_upstream_stages_are_refused_before_training(tmp_path):
    # models built at one commit, a checkout whose stage deps changed: dvc exp run would
    # delete and retrain them (as it did to the kept machine's base on 2026-12-07)
    (tmp_path / "status-base_policy.json").write_text(
        '{"base_policy": [{"changed deps": {"src/superhf/cli.py": "modified"}}]}'
    )
    old_part = tmp_path / "results/hh/times/sweep-superhf-lr2e-5_kl0-resume-20261201T000000Z.txt"
    old_part.parent.mkdir(parents=True)
    old_part.write_text("a part of an earlier run")
    out = sweep_piece(tmp_path, "ok\n")
    assert out.returncode == 2
    assert "stages prepare, base_policy or reward_model are not up to date" in out.stderr
    assert "src/superhf/cli.py" in out.stderr
    assert not (tmp_path / "calls.txt").exists()  # no training, no evaluation
    assert old_part.exists() and not (tmp_path / "checkpoints/superhf.piece").exists()


@needs_time
def test_a_failure_after_the_stage_was_recorded_goes_on_to_the_evaluation(tmp_path):
    out = sweep_piece(tmp_path, "savefail\n")
    assert out.returncode == 0, out.stderr
    assert "ended with status 255 after stage superhf ran and dvc.lock recorded it" in out.stderr
    assert (tmp_path / "calls.txt").read_text().splitlines() == [
        "dvc exp run pause=none", "evaluate", "evaluate", "evaluate_merge"
    ]  # fmt: skip
    report = (tmp_path / "results/hh/times/sweep-superhf-lr2e-5_kl0.txt").read_text()
    assert "note: dvc exp run ended with status 255" in report


@needs_time
def test_a_failure_before_the_stage_ran_ends_the_piece_though_an_earlier_run_is_recorded(tmp_path):
    # dvc.lock records the stage from an earlier run at these params (dvc status: up to date),
    # but this call trained nothing: no evaluation of the earlier model under this piece's name
    out = sweep_piece(tmp_path, "savefail\nlockedfail\n")
    assert out.returncode == 0, out.stderr
    out = run_sweep(tmp_path)
    assert out.returncode == 255 and "went on" not in out.stderr
    assert (tmp_path / "calls.txt").read_text().splitlines() == ["dvc exp run pause=none"]
