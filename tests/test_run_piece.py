"""results/hh/run_piece.sh refuses a piece whose data, base or reward models are not the
study's, before any work: the data and base by their dvc.lock hashes (results/hh/dvc.lock),
the reward models by their metrics (superhf.rebuild_check: the proxy's recorded pairs the
same, every number within 0.01), since a rebuild on another CPU differs in its last bits."""

import json
import shutil
import subprocess
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
