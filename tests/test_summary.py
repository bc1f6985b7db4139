"""The headline metrics (metrics/summary.json) and the sweep table over `dvc exp show --json`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from superhf.errors import UserError
from superhf.stages import summary as stage
from superhf.summary import (
    benchmark_headline,
    exp_show_rows,
    headline,
    seed_table,
    task_score,
)

REPO = Path(__file__).resolve().parents[1]


def reward(mean: float, lo: float, hi: float) -> dict:
    return {"mean": mean, "std": 0.1, "ci_low": lo, "ci_high": hi, "n": 4,
            "per_dataset": {"webgpt": {"mean": 9.0, "ci_low": 8.0, "ci_high": 10.0}}}  # fmt: skip


BENCH = {"hhh": {"harmless": 1.0, "helpful": 0.5, "honest": 0.25, "other": 0.25},
         "lambada": {"acc": 0.4, "ppl": 15.0}, "wsc": 0.6, "tweets": 0.2,
         "squad": {"em": 0.1, "f1": 0.3}}  # fmt: skip
# hhh 0.5, lambada 0.4, wsc 0.6, tweets 0.2, squad (F1) 0.3 -> 2.0 / 5
BENCH_MEAN = 0.4


def eval_json() -> dict:
    model = {"proxy": reward(1.0, 0.5, 1.5), "gold": reward(-1.0, -2.0, -0.5),
             "completion_chars": 120.0, "distinct_2": 0.9, "benchmarks": BENCH}  # fmt: skip
    return {
        "base": {**model, "kl_to_base": 0.0},
        "superhf": {**model, "kl_to_base": 2.5},
        "rlhf": {**model, "kl_to_base": 0.5, "benchmarks": {**BENCH, "wsc": 1.1}},
        "best_of_n": {
            "proxy": reward(2.0, 1.0, 3.0),
            "gold": reward(0.0, -1.0, 1.0),
            "n": 4,
            "kl_to_base_bound": math.log(4) - 3 / 4,
        },  # fmt: skip
        "test_prompts": 4,
        "mlflow_run_id": "abc",
    }


RM = {"test_pairs": 10, "proxy": {"test_accuracy": 0.7, "steps": 3},
      "gold": {"test_accuracy": 0.8}, "length_baseline_accuracy": 0.5}  # fmt: skip
SUPERHF = {"reward_gain": 0.25, "wall_seconds": 12.0, "mlflow_run_id": "x", "superbatches": 3}
RLHF = {"reward_gain": -0.5, "wall_seconds": 30.0, "mlflow_run_id": "y", "ppo_steps": 2}


def test_headline_picks_the_numbers_from_the_detail_files() -> None:
    h = headline(eval_json(), RM, SUPERHF, RLHF)
    assert h["superhf"] == {"proxy": 1.0, "proxy_ci": 0.5, "gold": -1.0, "gold_ci": 0.75,
                            "kl": 2.5, "bench": BENCH_MEAN, "train_gain": 0.25,
                            "wall_s": 12.0}  # fmt: skip
    assert h["rlhf"]["train_gain"] == -0.5 and h["rlhf"]["wall_s"] == 30.0
    # wsc 1.1 is not a score in [0, 1]: the mean is over the other four tasks
    assert h["rlhf"]["bench"] == pytest.approx((0.5 + 0.4 + 0.2 + 0.3) / 4)
    assert h["best_of_n"] == {"proxy": 2.0, "proxy_ci": 1.0, "gold": 0.0, "gold_ci": 1.0,
                              "kl": pytest.approx(math.log(4) - 0.75)}  # fmt: skip
    assert "kl" not in h["base"] and h["base"]["bench"] == BENCH_MEAN
    assert h["reward_model"] == {"proxy_acc": 0.7, "gold_acc": 0.8, "length_acc": 0.5}
    flat = json.dumps(h)
    assert "mlflow" not in flat and "per_dataset" not in flat and "9.0" not in flat
    assert sum(map(len, h.values())) == 29


def test_headline_leaves_out_what_the_detail_files_lack() -> None:
    ev = eval_json()
    del ev["rlhf"], ev["superhf"]["benchmarks"], ev["base"]["gold"]["ci_low"]
    ev["superhf"]["proxy"]["mean"] = float("nan")
    h = headline(ev, {}, {}, {"reward_gain": "not a number"})
    assert "rlhf" not in h and "bench" not in h["superhf"] and "proxy" not in h["superhf"]
    assert "gold_ci" not in h["base"] and h["base"]["gold"] == -1.0
    assert h["reward_model"] == {} and "train_gain" not in h["superhf"]
    json.dumps(h, allow_nan=False)  # every value is a finite number


@pytest.mark.parametrize(
    "node, expected",
    [
        (0.25, 0.25),
        (True, None),  # a bool is not a score
        (12.5, None),  # a perplexity is not a score
        ({"acc": 0.5, "ppl": 3.0}, 0.5),
        ({"em": 0.1, "f1": 0.3}, 0.3),  # F1 before EM
        ({"acc,none": 0.6, "acc_stderr,none": 0.01, "alias": "x"}, 0.6),  # lm-eval's keys
        ({"a": 1.0, "b": 0.0, "n": 0.5, "protocol": "standard"}, 0.5),  # sub-tasks; n skipped
        ({"ppl": 3.0}, None),
        ("0.5", None),
    ],
)
def test_task_score(node: object, expected: float | None) -> None:
    assert task_score(node) == (pytest.approx(expected) if expected is not None else None)


def test_benchmark_headline_survives_a_restructured_file() -> None:
    assert benchmark_headline(BENCH) == pytest.approx(BENCH_MEAN)
    # a layout with labelled columns and counts (as another issue may write it)
    nested = {"protocol": "paper", "tasks": {"hhh_helpful": {"acc": 0.5, "n": 59},
              "qnli": {"acc": 0.7, "n": 1000}}, "lm_eval": {"arc_easy": {"acc,none": 0.3}}}  # fmt: skip
    # lm-eval tasks (and the paper protocol's columns) beside the standard ones are left out
    assert benchmark_headline(nested) == pytest.approx(0.6)
    assert benchmark_headline({**BENCH, "paper": {"qnli": {"acc": 1.0}}}) == pytest.approx(
        BENCH_MEAN
    )
    assert benchmark_headline(None) is None and benchmark_headline({}) is None


def exp_show(values: dict[str, float]) -> list[dict]:
    """The shape of `dvc exp show --json` (DVC 3): commits, each with its experiments."""

    def data(rev: str, v: float | None) -> dict:
        metrics = {} if v is None else {"metrics/summary.json": {"data": {
            "superhf": {"gold": v, "kl": 1.0}, "rlhf": {"gold": 2 * v}}}}  # fmt: skip
        return {"rev": rev, "timestamp": None, "params": {"params.yaml": {"data": {"s": 1}}},
                "metrics": metrics, "deps": {}, "outs": {}, "meta": {}}  # fmt: skip

    exps = [{"revs": [{"rev": f"{i:040d}", "name": n, "data": data(f"{i:040d}", v)}],
             "executor": None, "name": n} for i, (n, v) in enumerate(values.items())]  # fmt: skip
    queued = {"revs": [{"rev": "q" * 40, "name": "queued", "data": data("q" * 40, None)}]}
    return [
        {"rev": "workspace", "name": None, "data": data("workspace", 0.0)},
        {
            "rev": "f" * 40,
            "name": "main",
            "data": data("f" * 40, 0.0),
            "experiments": exps + [queued],
        },
    ]


def test_exp_show_rows_and_seed_table() -> None:
    rows = exp_show_rows(exp_show({"seed-0": 1.0, "seed-1": 2.0, "seed-2": 4.0}),
                         "metrics/summary.json")  # fmt: skip
    assert [(r["name"], r["kind"]) for r in rows] == [
        ("workspace", "workspace"), ("main", "commit"),
        ("seed-0", "experiment"), ("seed-1", "experiment"), ("seed-2", "experiment")]  # fmt: skip
    assert rows[3]["metrics"] == {"superhf.gold": 2.0, "superhf.kl": 1.0, "rlhf.gold": 4.0}
    table = seed_table(rows[2:])
    lines = table.splitlines()
    assert lines[0] == "| metric | mean | std | min | max | seed-0 | seed-1 | seed-2 |"
    # mean 7/3, sample std sqrt(((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2) = sqrt(7/3)
    assert (
        lines[2] == f"| superhf.gold | {7 / 3:.4g} | {math.sqrt(7 / 3):.4g} | 1 | 4 | 1 | 2 | 4 |"
    )
    assert lines[3].startswith("| rlhf.gold | 4.667 |")
    assert lines[-1] == "the same in every experiment: superhf.kl"
    assert "superhf.kl |" not in table


def test_sweep_table_script(tmp_path: Path) -> None:
    shown = tmp_path / "show.json"
    shown.write_text(json.dumps(exp_show({"seed-0": 1.0, "seed-1": 3.0})))
    script = [sys.executable, str(REPO / "scripts/sweep_table.py"), "--json", str(shown)]
    out = subprocess.run([*script, "seed-1", "seed-0"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[0] == "2 experiments: seed-1, seed-0"
    assert "| superhf.gold | 2 | 1.414 | 1 | 3 | 3 | 1 |" in out.stdout
    every = subprocess.run(script, capture_output=True, text=True, check=True).stdout
    assert every.splitlines()[0] == "2 experiments: seed-0, seed-1"  # experiments only
    bad = subprocess.run([*script, "seed-9"], capture_output=True, text=True)
    assert bad.returncode != 0 and "seed-9" in bad.stderr


def test_stage_writes_summary_and_names_a_bad_file(tmp_path: Path) -> None:
    files = {"eval": eval_json(), "reward-model": RM, "superhf": SUPERHF, "rlhf": RLHF}
    argv = []
    for name, obj in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(obj))
        argv += [f"--{name}", str(tmp_path / f"{name}.json")]
    stage.main([*argv, "--out", str(tmp_path / "out/summary.json")])
    written = json.loads((tmp_path / "out/summary.json").read_text())
    assert written == headline(eval_json(), RM, SUPERHF, RLHF)
    (tmp_path / "rlhf.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="rlhf.json holds a list"):
        stage.main([*argv, "--out", str(tmp_path / "x.json")])
    (tmp_path / "rlhf.json").unlink()
    with pytest.raises(UserError, match="rlhf.json does not exist"):
        stage.main([*argv, "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


def test_committed_default_run_fits_one_screen() -> None:
    """The default profile's own detail files give every reward, KL and accuracy headline,
    as a table of one row per model (at most 7 rows) of at most 8 numbers each: the
    `dvc exp show` columns of one experiment read as a screen-sized table."""
    m = REPO / "metrics"
    if not (m / "eval.json").is_file():
        pytest.skip("no committed default run")

    def load(name: str) -> dict:
        return json.loads((m / f"{name}.json").read_text())

    others = {name: load(name) for name in ("rloo", "grpo") if (m / f"{name}.json").is_file()}
    h = headline(load("eval"), load("reward_model"), load("superhf"), load("rlhf"), others)
    assert len(h) <= 7
    assert max(map(len, h.values())) <= 8
    for model in ("base", "best_of_n", "superhf", "rlhf", *others):
        assert {"proxy", "proxy_ci", "gold", "gold_ci"} <= set(h[model]), model
    for model in ("superhf", "rlhf", *others):
        assert {"kl", "train_gain", "wall_s"} <= set(h[model]), model
    assert {"proxy_acc", "gold_acc"} <= set(h["reward_model"])
