"""The layout's dependency rules (pyproject's [tool.importlinter]) and what README says of them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

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


def layers_contract() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in contracts["contracts"] if c["type"] == "layers")


def test_every_module_of_the_package_stands_on_one_floor() -> None:
    """Issue 27: the layers contract (not a hand-kept deny-list) holds which way imports point;
    it is exhaustive, so a module added to src/superhf must be given a floor."""
    contract = layers_contract()
    assert contract["containers"] == ["superhf"] and contract["exhaustive"] is True
    floors = [re.split(r"\s*[|:]\s*", layer.strip()) for layer in contract["layers"]]
    named = [name for floor in floors for name in floor]
    package = REPO / "src" / "superhf"
    children = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    children |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert sorted(named) == sorted(children)
    assert floors[0] == ["stages"] and floors[-1] == ["paths", "errors"]


def test_config_package_init_imports_nothing() -> None:
    """Issue 27: a stage imports its own section's module (superhf.config.<section>); Python
    runs the package's __init__ first, so it must import nothing, or every stage would load
    (and depend on) every section's module."""
    import ast

    tree = ast.parse((REPO / "src" / "superhf" / "config" / "__init__.py").read_text())
    assert ast.get_docstring(tree)
    assert [type(node).__name__ for node in tree.body] == ["Expr"]  # the docstring only


def test_stages_with_an_mlflow_run_are_the_ones_readme_names() -> None:
    """docs/results.md: superhf, rlhf, rloo, grpo, evaluate and report log one MLflow run
    each; prepare, base_policy and reward_model log none, so editing tracking code never
    reruns them."""
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


# ----------------------------------------------------------------------------- vertical rooms
# Issue 27: a module a newcomer reads in one sitting (at most MAX_MODULE_LINES), laid out
# vertically: no code packed sideways behind a formatter escape, no line wider than the
# formatter's. Every module of src/superhf, none exempt.
MAX_MODULE_LINES = 300
MAX_LINE_CHARS = 100  # [tool.ruff] line-length
FORMATTER_ESCAPE = re.compile(r"#\s*fmt:\s*(skip|off)\b")
PACKAGE = REPO / "src" / "superhf"


def layout_problems(path: Path) -> list[str]:
    """What keeps ``path`` from being a vertical room, one line per problem."""
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = []
    if len(lines) > MAX_MODULE_LINES:
        problems.append(f"{path.name}: {len(lines)} lines (limit {MAX_MODULE_LINES})")
    for number, line in enumerate(lines, 1):
        if FORMATTER_ESCAPE.search(line):
            problems.append(f"{path.name}:{number}: formatter escape")
        if len(line) > MAX_LINE_CHARS:
            problems.append(f"{path.name}:{number}: {len(line)} characters")
    return problems


def test_every_module_is_short_vertical_and_within_the_line_length() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50, modules  # the whole package, not an empty glob
    problems = [problem for path in modules for problem in layout_problems(path)]
    assert not problems, "\n".join(problems)


def test_layout_rules_flag_a_long_packed_module(tmp_path: Path) -> None:
    path = tmp_path / "packed.py"
    body = ["x = 1"] * MAX_MODULE_LINES
    body[3] = "y = [1,\n     2]  # fmt: skip"
    body[7] = "z = " + "1 + " * 30 + "1"
    path.write_text("\n".join(body) + "\n")
    assert layout_problems(path) == [
        f"packed.py: {MAX_MODULE_LINES + 1} lines (limit {MAX_MODULE_LINES})",
        "packed.py:5: formatter escape",
        "packed.py:9: 125 characters",
    ]
