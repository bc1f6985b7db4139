"""End to end: the whole DAG on the tiny profile in a temporary git + DVC repository."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_dvc_pipeline_on_tiny_profile(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if rel.startswith(("metrics/", "reports/")) or rel in {"dvc.lock"}:
            continue
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    db = work / "mlflow.db"  # the default: an absolute path in the main repository
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env = {**env, "HF_HUB_OFFLINE": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    sh(["python", "-m", "superhf.profile", "tiny"], work, env)
    sh(["git", "init", "-q"], work, env)
    sh(["git", "add", "-A"], work, env)
    sh(["git", "commit", "-qm", "init"], work, env)

    sh(["dvc", "repro"], work, env)
    for out in ("models/base", "models/reward_gold", "models/superhf", "models/rlhf", "metrics/table4.md",
                "reports/proxy_vs_gold.png", "metrics/superhf_curve.csv", "metrics/rlhf.json"):  # fmt: skip
        assert (work / out).exists(), out
    ev = json.loads((work / "metrics/eval.json").read_text())
    assert {"base", "superhf", "rlhf", "best_of_n"} <= set(ev)
    again = sh(["dvc", "repro"], work, env)
    assert "Running stage" not in again  # the second run does nothing
    sh(["git", "add", "-A"], work, env)
    sh(["git", "commit", "-qm", "repro"], work, env)

    # changing a seed reruns only the stages that depend on it
    out = sh(["dvc", "exp", "run", "--name", "seed-1", "-S", "superhf.seed=1"], work, env)
    assert "Running stage 'superhf'" in out and "Running stage 'evaluate'" in out
    assert "Running stage 'rlhf'" not in out and "Running stage 'reward_model'" not in out
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], work, env))
    assert json.dumps(shown).count('"rev"') >= 2
    check_exp_show_and_plots(shown, work, env, tmp_path)

    # a queued seed sweep runs in DVC's temporary workspaces; its MLflow runs still land here
    out = sh(["bash", "scripts/seed_sweep.sh", "2"], work, env)
    assert "1 experiments: seed-2" in out and "| superhf.gold |" in out  # the sweep table
    shown = sh(["dvc", "exp", "show", "--json"], work, env)
    assert "seed-2" in shown

    con = sqlite3.connect(db)
    tags = con.execute("SELECT key, value FROM tags").fetchall()
    stages = {v for k, v in tags if k == "stage"}
    assert {"superhf", "rlhf", "evaluate", "report"} <= stages
    exp_names = {v for k, v in tags if k == "dvc_exp_name"}
    assert "workspace" in exp_names and "seed-2" in exp_names and len(exp_names) >= 3
    run_id = json.loads((work / "metrics/superhf.json").read_text())["mlflow_run_id"]
    assert con.execute("SELECT count(*) FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()[0] == 1

    # push to a local remote; a fresh clone pulls and has nothing to rebuild
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-d", "-f", "store", str(remote)], work, env)
    sh(["git", "add", "-A"], work, env)
    sh(["git", "commit", "-qm", "remote"], work, env)
    sh(["dvc", "push"], work, env)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(work), str(clone)], tmp_path, env)
    sh(["dvc", "pull"], clone, env)
    status = sh(["dvc", "status", "--json"], clone, env)
    assert json.loads(status) == {}, status


HEADLINE = [f"{m}.{k}" for m in ("base", "best_of_n", "superhf", "rlhf") for k in ("proxy", "proxy_ci", "gold", "gold_ci")]  # fmt: skip
HEADLINE += ["superhf.kl", "rlhf.kl", "superhf.train_gain", "rlhf.train_gain", "superhf.bench",
             "superhf.wall_s", "reward_model.proxy_acc", "reward_model.gold_acc"]  # fmt: skip


def metric_columns(entry: dict) -> set[str]:
    """The metric columns one row of `dvc exp show --json` gives: file:flattened.key."""

    def flat(d: dict, prefix: str) -> list[str]:
        return [c for k, v in d.items()
                for c in (flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k])]  # fmt: skip

    return {f"{f}:{c}" for f, m in entry["data"]["metrics"].items() for c in flat(m["data"], "")}


def check_exp_show_and_plots(shown: list, work: Path, env: dict, tmp_path: Path) -> None:
    """Issue 17: `dvc exp show` lists the headline numbers only; `dvc plots diff` overlays
    the experiment on its baseline."""
    baseline = next(e for e in shown if e["rev"] != "workspace")
    exp = next(r for x in baseline["experiments"] for r in x["revs"] if r["name"] == "seed-1")
    for entry in (baseline, exp):
        cols = metric_columns(entry)
        # headline numbers only: about 7 a model over base, four trained methods, best-of-n
        assert len(cols) <= 50, sorted(cols)
        assert {f"metrics/summary.json:{k}" for k in HEADLINE} <= cols, sorted(cols)
        assert not any("mlflow" in c or c.startswith("metrics/eval.json") for c in cols)
    summary = json.loads((work / "metrics/summary.json").read_text())  # seed-1, applied
    assert exp["data"]["metrics"]["metrics/summary.json"]["data"] == summary
    plots = json.loads(sh(["dvc", "plots", "diff", "HEAD", "seed-1", "--json"], work, env))
    assert not plots.get("errors"), plots["errors"]
    overlay = next(v for k, v in plots["data"].items() if k.startswith("Proxy reward during"))
    rows = overlay[0]["content"]["data"]["values"]
    assert {(r["rev"], r["filename"]) for r in rows} == {
        (rev, f) for rev in ("HEAD", "seed-1")
        for f in ("superhf_curve.csv", "rlhf_curve.csv", "rloo_curve.csv", "grpo_curve.csv")}  # fmt: skip
    assert overlay[0]["content"]["encoding"]["x"]["axis"]["format"] == "d"  # integer steps
    assert not any(k.endswith(".csv") for k in plots["data"])  # no undefined default plots
    html = tmp_path / "plots"
    sh(["dvc", "plots", "diff", "HEAD", "seed-1", "-o", str(html)], work, env)
    assert (html / "index.html").stat().st_size > 0


def _module_file(module: str) -> Path:
    """``superhf.stages.evaluate`` -> src/superhf/stages/evaluate.py (or a package __init__)."""
    base = REPO / "src" / Path(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"


def _runtime_nodes(tree):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (imports for type
    checkers only, which never run, so a change to what they name changes nothing run)."""
    import ast

    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test) in (
                "TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            ):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _imported_modules(module: str, seen: set[str]) -> set[str]:
    """``module`` and every superhf module it imports at run time, transitively (read, not
    imported)."""
    import ast

    if module in seen:
        return seen
    seen.add(module)
    tree = ast.parse(_module_file(module).read_text())
    for node in _runtime_nodes(tree):
        names: list[str] = []
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "superhf"
        ):
            for alias in node.names:  # `from superhf import packaged` names a module
                sub = f"{node.module}.{alias.name}"
                names.append(sub if _module_file(sub).is_file() else node.module)
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("superhf.")]
        for name in names:
            _imported_modules(name, seen)
    return seen


def stage_code_deps(cmd: str) -> set[str]:
    """The source files a stage's command runs: its module's whole superhf import closure."""
    import re

    module = re.search(r"-m (superhf\.[\w.]+)", cmd).group(1)
    closure = _imported_modules(module, set())
    return {str(_module_file(m).relative_to(REPO)) for m in closure if m != "superhf"}


def test_every_stage_depends_on_the_code_it_runs_and_no_other() -> None:
    """A stage whose imported module is missing from its deps would not rerun when that
    module changes; one that lists a module it never imports reruns for nothing. dvc.yaml
    lists exactly the import closure of each stage's module."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        need = stage_code_deps(stage["cmd"])
        listed = {d for d in stage.get("deps", []) if d.startswith("src/superhf/")}
        listed = {d for d in listed if d.endswith(".py")}
        assert not need - listed, f"stage {name} does not list {sorted(need - listed)}"
        assert not listed - need, f"stage {name} lists {sorted(listed - need)}, never imported"


# Issue 27: the config modules each stage runs: its own params section's module, the pieces
# the sections share (sampling, optimiser, LoRA) where it samples or trains, and tracking where
# it logs an MLflow run; never another stage's section, so editing one section's module (a
# field's description) reruns only the stages that read it.
STAGE_CONFIG = {
    "prepare": {"prepare"},
    "base_policy": {"base_policy"},
    "reward_model": {"reward_model", "common"},  # common: policy_pairs.generation
    "superhf": {"superhf", "common", "tracking"},
    "rlhf": {"rlhf", "common", "tracking"},
    "rloo": {"group_pg", "common", "tracking"},
    "grpo": {"group_pg", "common", "tracking"},
    "evaluate": {"evaluate", "common", "tracking"},
    "report": {"tracking"},
    "summary": set(),
}


def test_every_stage_depends_on_its_own_config_modules_only() -> None:
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_CONFIG)
    prefix = "src/superhf/config/"
    for name, stage in stages.items():
        expected = {f"{prefix}{module}.py" for module in STAGE_CONFIG[name]}
        runs = {d for d in stage_code_deps(stage["cmd"]) if d.startswith(prefix)}
        listed = {d for d in stage.get("deps", []) if d.startswith("src/superhf/config")}
        assert runs == expected, f"stage {name} runs {sorted(runs)}"
        assert listed == expected, f"stage {name} lists {sorted(listed)} in its deps"
