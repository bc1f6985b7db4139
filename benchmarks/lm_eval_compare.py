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

import torch

from superhf import capabilities as B
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


def ours(model, tok, data: dict, bs: int) -> dict[str, tuple[dict, float]]:
    out = {}
    rng = random.Random(1)
    for sub, rows in data["hhh"].items():
        t = time.perf_counter()
        acc = B.hhh_accuracy(model, tok, rows, rng, bs)
        out[f"cmp_hhh_{sub}"] = ({"acc": acc}, time.perf_counter() - t)
    t = time.perf_counter()
    out["cmp_wsc273"] = ({"acc": B.wsc(model, tok, data["wsc"], rng, bs)}, time.perf_counter() - t)
    t = time.perf_counter()
    lam = B.lambada(model, tok, data["lambada"], bs)
    out["cmp_lambada"] = ({"acc": lam["acc"], "perplexity": lam["ppl"]}, time.perf_counter() - t)
    t = time.perf_counter()
    tw = B.tweets(model, tok, {"test": data["tweets"]["test"], "val": []}, 0, rng, bs)
    out["cmp_tweets"] = ({"acc": tw}, time.perf_counter() - t)
    return out


def theirs(model_dir: str, folder: Path, tasks: list[str], bs: int) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model_dir, batch_size=bs, device="cpu", dtype="float32")
    tm = TaskManager(include_path=str(folder))
    out = {}
    for name in tasks:
        t = time.perf_counter()
        res = lm_eval.simple_evaluate(model=lm, tasks=[name], task_manager=tm, num_fewshot=0)
        r = res["results"][name]
        metrics = {k.split(",")[0]: v for k, v in r.items() if k.endswith(",none")}
        out[name] = ({k: v for k, v in metrics.items() if not k.endswith("_stderr")},
                     time.perf_counter() - t)  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--data", default="../shared/data/eval")
    ap.add_argument("--limit", action="append", default=[], help="TASK=N: first N rows")
    ap.add_argument("--tasks", default="", help="comma list of task names (default all)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = B.load_all(Path(args.data))
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
    with tempfile.TemporaryDirectory() as tmp:
        tasks = write_tasks(data, Path(tmp))
        if args.tasks:
            keep = set(args.tasks.split(","))
            tasks = {k: v for k, v in tasks.items() if k in keep}
            data["hhh"] = {s: r for s, r in data["hhh"].items() if f"cmp_hhh_{s}" in keep}
        a = ours(model, tok, data, args.batch_size)
        b = theirs(args.model, Path(tmp), list(tasks), args.batch_size)
    rows = []
    print("| task | n | metric | ours | lm-eval | ours s | lm-eval s |")
    print("|---|---|---|---|---|---|---|")
    for name, n in tasks.items():
        (ma, ta), (mb, tb) = a[name], b[name]
        for metric, v in ma.items():
            w = mb.get(metric, float("nan"))
            rows.append({"task": name, "n": n, "metric": metric, "ours": v, "lm_eval": w,
                         "ours_s": ta, "lm_eval_s": tb})  # fmt: skip
            print(f"| {name} | {n} | {metric} | {v:.4f} | {w:.4f} | {ta:.1f} | {tb:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
