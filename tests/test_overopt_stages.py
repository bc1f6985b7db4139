"""Snapshots in the training stages, the over-optimisation curves in evaluate and report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params

from superhf.errors import UserError
from superhf.loop_schedule import snapshot_due
from superhf.models import load_causal_lm
from superhf.stages import evaluate, evaluate_inputs, report
from superhf.stages import rlhf as rlhf_stage
from superhf.stages import superhf as superhf_stage


def test_snapshot_due() -> None:
    assert [s for s in range(12) if snapshot_due(4, s, 12)] == [3, 7]  # after 4, 8; not 12
    assert not any(snapshot_due(0, s, 12) for s in range(12))


def train_stage(stage, section: dict, name: str, policy, reward, prompts, tmp: Path) -> Path:
    params = write_params(tmp / f"{name}.yaml", **{name: section})
    stage.main(["--params", str(params), "--policy", str(policy), "--reward", str(reward),
                "--prompts", str(prompts), "--out", str(tmp / name), "--checkpoints", str(tmp / "ck"),
                "--metrics", str(tmp / f"{name}.json"), "--curve", str(tmp / f"{name}.csv"),
                "--samples", str(tmp / f"{name}.jsonl"), "--snapshots", str(tmp / f"{name}_snap")])  # fmt: skip
    return tmp / f"{name}_snap"


def test_snapshots_curves_and_figure(tmp_path: Path) -> None:
    policy, reward = make_tiny_models(tmp_path / "m")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "dataset": d}) + "\n"
                               for p, d in zip(PROMPTS, "abab")))  # fmt: skip
    shf = {"num_prompts": 3, "superbatch_size": 4, "minibatch_size": 2, "snapshot_every": 1,
           "optim": {"lr": 1e-2, "warmup_steps": 0}, "generation": TINY_GEN}  # fmt: skip
    snap = train_stage(superhf_stage, shf, "superhf", policy, reward, prompts, tmp_path)
    index = json.loads((snap / "index.json").read_text())
    assert [(r["step"], r["reward_queries"]) for r in index] == [(1, 4), (2, 8)]
    final_meta = json.loads((tmp_path / "superhf" / "superhf_meta.json").read_text())
    assert (final_meta["step"], final_meta["reward_queries"]) == (3, 12)
    w1 = dict(load_causal_lm(snap / index[0]["path"]).named_parameters())
    w3 = dict(load_causal_lm(tmp_path / "superhf").named_parameters())
    assert any(not torch.equal(w1[k], w3[k]) for k in w3)  # a snapshot is not the final model
    ppo = {"num_prompts": 4, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1,
           "snapshot_every": 0, "optim": {"lr": 1e-3}, "generation": TINY_GEN}  # fmt: skip
    rsnap = train_stage(rlhf_stage, ppo, "rlhf", policy, reward, prompts, tmp_path)
    assert json.loads((rsnap / "index.json").read_text()) == []  # off: an empty index

    section = {"max_test_prompts": 3, "best_of_n": 2, "best_of_n_curve": 4, "bootstrap_samples": 50,
               "generation": TINY_GEN, "score_cache": False, "benchmarks": {"enabled": False}}  # fmt: skip
    params = write_params(tmp_path / "e.yaml", evaluate=section)
    out = tmp_path / "out"
    evaluate.main(["--params", str(params), "--prompts", str(prompts), "--model", f"base={policy}",
                   "--model", f"superhf={tmp_path / 'superhf'}", "--model", f"rlhf={tmp_path / 'rlhf'}",
                   "--reward", str(reward), "--gold", str(reward), "--metrics", str(out / "eval.json"),
                   "--table", str(out / "t.md"), "--completions", str(out / "c.jsonl"),
                   "--snapshots", f"superhf={snap}", "--snapshots", f"rlhf={rsnap}",
                   "--overopt", str(out / "overopt.json"), "--overopt-plots", str(out / "plots")])  # fmt: skip
    ov = json.loads((out / "overopt.json").read_text())
    ev = json.loads((out / "eval.json").read_text())
    s = ov["superhf"]
    assert [p["step"] for p in s] == [0, 1, 2, 3]
    assert [p["reward_queries"] for p in s] == [0, 4, 8, 12]
    assert s[-1]["gold_mean"] == ev["superhf"]["unwarped"]["gold"]["mean"]  # the final model's
    assert s[-1]["kl"] == ev["superhf"]["kl_to_base"]
    assert s[0]["kl"] == 0.0 and s[1]["kl"] != 0.0
    assert {p["kl_kind"] for p in s} == {"estimate"} and all(p["kl_se"] > 0 for p in s[1:])
    assert all(p["proxy_ci_low"] <= p["proxy_mean"] <= p["proxy_ci_high"] for p in s)
    assert [p["step"] for p in ov["rlhf"]] == [0, 2]  # base and final only
    b = ov["best_of_n"]
    assert [p["n"] for p in b] == [1, 2, 4] and [p["reward_queries"] for p in b] == [3, 6, 12]
    assert b[0]["kl"] == 0.0 and b[-1]["kl"] == pytest.approx(1.3862944 - 0.75)
    assert {(p["kl_kind"], p["kl_se"]) for p in b} == {("upper_bound", None)}
    # the proxy is also the gold model here: picking by it cannot lower the expected score
    assert b[0]["proxy_mean"] <= b[1]["proxy_mean"] <= b[2]["proxy_mean"]
    with open(out / "plots" / "best_of_n.csv") as f:
        got = list(csv.DictReader(f))
    assert float(got[0]["sqrt_kl"]) == 0.0 and got[0]["kl_kind"] == "upper_bound"
    assert got[0]["kl_se"] == ""  # a bound has no standard error

    curve = tmp_path / "superhf.csv"
    report.main(["--params", str(params), "--superhf-curve", str(curve), "--rlhf-curve", str(curve),
                 "--eval", str(out / "eval.json"), "--out", str(tmp_path / "reports"),
                 "--overopt", str(out / "overopt.json")])  # fmt: skip
    assert (tmp_path / "reports" / "overoptimisation.png").stat().st_size > 10_000


def test_snapshots_without_overopt_is_an_error(tmp_path: Path) -> None:
    policy, _ = make_tiny_models(tmp_path / "m")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "index.json").write_text("[]")
    with pytest.raises(UserError, match="needs --overopt"):
        evaluate_inputs.parse_snapshots([f"superhf={tmp_path / 's'}"], {"superhf": policy}, None)
    with pytest.raises(UserError, match="no --model rlhf"):
        evaluate_inputs.parse_snapshots([f"rlhf={tmp_path / 's'}"], {"superhf": policy}, "o.json")


def test_a_resumed_run_keeps_its_snapshots_and_a_fresh_one_starts_empty(tmp_path: Path) -> None:
    from superhf.checkpoints import start_snapshots
    from superhf.training import make_accelerator

    acc = make_accelerator("fp32")
    folder = tmp_path / "snaps"
    (folder / "step-000002").mkdir(parents=True)
    (folder / "index.json").write_text("[]")
    start_snapshots(folder, True, acc)  # resumed: the snapshot before the kill stays
    assert (folder / "step-000002").is_dir() and (folder / "index.json").is_file()
    start_snapshots(folder, False, acc)  # fresh: none from an earlier run survive, nor its index
    assert not list(folder.glob("step-*")) and not (folder / "index.json").exists()
    start_snapshots(None, False, acc)  # snapshots off: nothing to do


def test_every_plotted_method_gets_a_csv_even_without_a_curve(tmp_path: Path) -> None:
    """dvc.yaml's plots name superhf, rlhf, rloo, grpo and best_of_n; with best-of-n off (0) its file is
    still there, header only, so `dvc plots show` does not point at a missing file."""
    from superhf.stages.evaluate import write_overopt

    pt = {"method": "superhf", "step": 1, "reward_queries": 8, "kl": 0.1, "sqrt_kl": 0.3,
          "gold_mean": 0.0, "proxy_mean": 0.1}  # fmt: skip
    write_overopt({"superhf": [pt]}, str(tmp_path / "o.json"), str(tmp_path / "plots"), 4)
    files = {p.name: p.read_text().splitlines() for p in (tmp_path / "plots").iterdir()}
    assert set(files) == {"superhf.csv", "rlhf.csv", "rloo.csv", "grpo.csv", "best_of_n.csv"}
    assert len(files["superhf.csv"]) == 2 and len(files["best_of_n.csv"]) == 1
    assert files["best_of_n.csv"][0].startswith("step,reward_queries,kl,kl_se,kl_kind,sqrt_kl")
