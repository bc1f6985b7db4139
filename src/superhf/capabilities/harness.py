"""lm-evaluation-harness on demand: named tasks (or task YAML files) through lm-eval's own
API on a loaded model, for the columns and checks our scorers do not cover."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def lm_eval_available() -> bool:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def run_lm_eval(
    model, tok, tasks: Sequence[str], limit: int | None = None, bs: int = 16
) -> dict[str, dict[str, float]]:
    """Named lm-evaluation-harness tasks (or task YAML files/folders) through lm-eval's own
    API on a loaded model: ``{task: {metric: value, ..., "n": documents}}``."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    names, include = [], []
    for t in tasks:
        path = Path(t)
        if path.suffix in (".yaml", ".yml") and path.is_file():
            include.append(str(path.parent))
            names.append(_yaml_task_name(path))
        elif path.is_dir():
            include.append(str(path))
            names += [_yaml_task_name(y) for y in sorted(path.glob("*.yaml"))]
        else:
            names.append(t)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=bs)
    tm = TaskManager(include_path=include or None)
    res = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=tm, limit=limit)
    out: dict[str, dict[str, float]] = {}
    for name, metrics in res["results"].items():
        row = {
            k.split(",")[0]: float(v)
            for k, v in metrics.items()
            if "," in k and "_stderr" not in k and isinstance(v, (int, float))
        }
        n = res.get("n-samples", {}).get(name, {})
        if n:
            row["n"] = int(n.get("effective", n.get("original", 0)))
        out[name] = row
    return out


def _yaml_task_name(path: Path) -> str:
    import yaml

    try:
        doc = yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # tolerates !function tags
    except yaml.YAMLError:
        doc = None
    if not isinstance(doc, dict) or "task" not in doc:
        raise ValueError(f"lm_eval_tasks: {path} has no 'task:' name")
    return str(doc["task"])
