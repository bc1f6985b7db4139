"""The layout's dependency rules (pyproject's [tool.importlinter]) and what README says of them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO
from test_pipeline import stage_code_deps


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_linter_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(["lint-imports"], cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " 0 broken" in proc.stdout and "KEPT" in proc.stdout


def test_stages_with_an_mlflow_run_are_the_ones_readme_names() -> None:
    """README: superhf, rlhf, rloo, grpo, evaluate and report log one MLflow run each; prepare,
    base_policy and reward_model log none, so editing tracking code never reruns them."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    tracked = {
        n for n, s in stages.items() if "src/superhf/tracking.py" in stage_code_deps(s["cmd"])
    }
    assert tracked == {"superhf", "rlhf", "rloo", "grpo", "evaluate", "report"}


MAX_FUNCTION_LINES = 60  # issue 15: a longer function is split where a name explains a piece


def test_no_library_or_stage_function_is_longer_than_the_limit() -> None:
    import ast

    long = []
    for path in sorted((REPO / "src" / "superhf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert not long, "functions over the limit: " + ", ".join(long)
