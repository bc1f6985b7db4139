"""results/hh/run_piece.sh refuses a piece whose data, base or reward models are not the
study's (their dvc.lock hashes differ from results/hh/dvc.lock), before any work."""

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def lock(reward_md5: str) -> dict:
    return {
        "schema": "2.0",
        "stages": {
            "prepare": {"outs": [{"path": "data/prompts", "md5": "a.dir"}]},
            "base_policy": {"outs": [{"path": "models/base", "md5": "b.dir"}]},
            "reward_model": {"outs": [{"path": "models/reward", "md5": reward_md5}]},
        },
    }


SWEEP = ("sweep", "superhf", "no-such-setting")


def run_piece(
    tmp_path: Path, study_md5: str, here_md5: str, args: tuple[str, ...] = SWEEP
) -> subprocess.CompletedProcess:
    study = tmp_path / "results" / "hh"
    study.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "results/hh/run_piece.sh", study)
    shutil.copy(ROOT / "results/hh/sweep_settings.yaml", study)
    (tmp_path / "params.yaml").write_text("profile: hh\n")
    (study / "dvc.lock").write_text(yaml.safe_dump(lock(study_md5)))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock(here_md5)))
    return subprocess.run(
        ["bash", "results/hh/run_piece.sh", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_other_reward_model_is_refused(tmp_path):
    out = run_piece(tmp_path, "c.dir", "d.dir")
    assert out.returncode != 0
    assert "stage reward_model's outputs in dvc.lock differ from the study's" in out.stderr


def test_same_inputs_pass_the_guard(tmp_path):
    out = run_piece(tmp_path, "c.dir", "c.dir")
    assert out.returncode != 0  # stopped later, at the unknown setting
    assert "differ from the study's" not in out.stderr
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
