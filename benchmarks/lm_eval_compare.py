"""Standard-protocol benchmarks: our scorers next to lm-evaluation-harness on the same model
and the same files, accuracy and seconds per task (and per HHH subtask).

Needs lm-eval (``pip install -e ".[eval]"``). lm-eval reads the very rows our loaders read:
they are written to JSONL files beside local task YAMLs (``dataset_path: json``), so the
comparison is about scoring, not about data.

    python benchmarks/lm_eval_compare.py --model models/base --data ../shared/data/eval \
        --limit lambada=1000 --limit tweets=1000 --out benchmarks/lm_eval_compare.json
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from superhf.capabilities import tasks as B
from superhf.capabilities.loaders import load_all
from superhf.models import load_causal_lm, load_tokenizer

HHH_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {path}}}
test_split: test
output_type: multiple_choice
doc_to_text: "\\nHuman: {{{{input}}}}\\nAssistant:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: 0
metric_list:
  - metric: acc
"""
WSC_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {path}}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{gold}}}}"
doc_to_choice: "{{{{context_options}}}}"
doc_to_target: "{{{{continuation}}}}"
metric_list:
  - metric: acc
"""
LAMBADA_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {path}}}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{continuation}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
TWEET_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {path}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Tweet: {{{{text}}}}\\nSentiment:"
doc_to_choice: ["negative", "neutral", "positive"]
doc_to_target: label
metric_list:
  - metric: acc
"""


def write_tasks(data: dict, folder: Path) -> dict[str, int]:
    """JSONL files and task YAMLs for every task; returns task name -> n."""
    tasks = {}

    def put(name: str, rows: list[dict], template: str) -> None:
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / f"{name}.yaml").write_text(template.format(name=name, path=path))
        tasks[name] = len(rows)

    for sub, rows in data["hhh"].items():
        put(f"cmp_hhh_{sub}", rows, HHH_YAML)
    put("cmp_wsc273", data["wsc"], WSC_YAML)
    put("cmp_lambada", data["lambada"], LAMBADA_YAML)
    put("cmp_tweets", data["tweets"]["test"], TWEET_YAML)
    return tasks


def ours(model, tok, data: dict, name: str, bs: int) -> tuple[dict, float]:
    """One task with our scorer: (metrics, seconds)."""
    rng = random.Random(1)
    t = time.perf_counter()
    if name.startswith("cmp_hhh_"):
        m = {"acc": B.hhh_accuracy(model, tok, data["hhh"][name[8:]], rng, bs)}
    elif name == "cmp_wsc273":
        m = {"acc": B.wsc(model, tok, data["wsc"], rng, bs)}
    elif name == "cmp_lambada":
        lam = B.lambada(model, tok, data["lambada"], bs)
        m = {"acc": lam["acc"], "perplexity": lam["ppl"]}
    else:
        m = {"acc": B.tweets(model, tok, {"test": data["tweets"]["test"], "val": []}, 0, rng, bs)}
    return m, time.perf_counter() - t


def theirs(lm, tm, name: str) -> tuple[dict, float]:
    """One task through lm-eval: (metrics, seconds)."""
    import lm_eval

    t = time.perf_counter()
    res = lm_eval.simple_evaluate(model=lm, tasks=[name], task_manager=tm, num_fewshot=0)
    metrics = {k.split(",")[0]: v for k, v in res["results"][name].items() if k.endswith(",none")}
    return {k: v for k, v in metrics.items() if "_stderr" not in k}, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--data", default="../shared/data/eval")
    ap.add_argument("--limit", action="append", default=[], help="TASK=N: first N rows")
    ap.add_argument("--tasks", default="", help="comma list of task names (default all)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    data = load_all(Path(args.data))
    for item in args.limit:
        task, n = item.split("=")
        n = int(n)
        if task == "hhh":
            data["hhh"] = {s: r[:n] for s, r in data["hhh"].items()}
        elif task == "tweets":
            data["tweets"]["test"] = data["tweets"]["test"][:n]
        else:
            data[task] = data[task][:n]
    model = load_causal_lm(Path(args.model)).eval()
    tok = load_tokenizer(Path(args.model))
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=args.model, batch_size=args.batch_size, device="cpu", dtype="float32")
    rows = []
    print("| task | n | metric | ours | lm-eval | ours s | lm-eval s |", flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tasks = write_tasks(data, Path(tmp))
        tm = TaskManager(include_path=tmp)
        keep = set(args.tasks.split(",")) if args.tasks else set(tasks)
        for name, n in tasks.items():  # one task at a time, both tools, printed as it ends
            if name not in keep:
                continue
            (ma, ta), (mb, tb) = ours(model, tok, data, name, args.batch_size), theirs(lm, tm, name)
            for metric, v in ma.items():
                w = mb.get(metric, float("nan"))
                rows.append({"task": name, "n": n, "metric": metric, "ours": v, "lm_eval": w,
                             "ours_s": ta, "lm_eval_s": tb})  # fmt: skip
                print(f"| {name} | {n} | {metric} | {v:.4f} | {w:.4f} | {ta:.1f} | {tb:.1f} |",
                      flush=True)  # fmt: skip
            if args.out:
                Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
