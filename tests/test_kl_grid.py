"""Issue 24: snapshots on a grid of the training KL (``snapshot_kl``) and the early stop
(``stop_kl``), shared by every trainer through ``run_loop``."""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params
from safetensors.torch import load_file

from superhf import superhf_trainer as superhf_train
from superhf import trainer_loop
from superhf.config.group_pg import GRPOConfig, RLOOConfig
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.core import ema
from superhf.loop_schedule import kl_crossings, kl_stop, kl_stopped
from superhf.params import ParamsError, parse_section
from superhf.stages import superhf as superhf_stage


def plain_loop(kls: list[float], grid: list[float], stop: float | None) -> tuple[dict, int]:
    """The rule written out directly: {grid value: first step whose EMA reaches it}, and the
    steps run (through the first step whose EMA reaches ``stop``)."""
    m, first, steps = math.nan, {}, 0
    for i, v in enumerate(kls):
        m = v if math.isnan(m) else (m if math.isnan(v) else 0.9 * m + 0.1 * v)
        steps = i + 1
        for g in grid:
            if g not in first and m >= g:
                first[g] = i
        if stop is not None and m >= stop:
            break
    return first, steps


@pytest.mark.parametrize("seed", range(20))
def test_the_decision_matches_a_plain_loop_and_depends_on_the_history_alone(seed) -> None:
    rng = random.Random(seed)
    kls = [rng.choice([math.nan, rng.uniform(0, 12), rng.uniform(0, 3)]) for _ in range(60)]
    grid, stop = [0.5, 1.0, 2.0, 4.0, 8.0], rng.choice([None, 3.0, 10.0])
    first, steps = {}, 0
    for i in range(len(kls)):  # as run_loop: one decision per step, from the history so far
        smoothed = ema(kls[: i + 1])
        first |= {g: i for g in kl_crossings(smoothed, grid)}
        steps = i + 1
        if kl_stop(smoothed, stop):
            assert kl_stopped(smoothed, stop)
            break
        assert not kl_stopped(smoothed, stop)
    assert (first, steps) == plain_loop(kls, grid, stop)


def test_a_jump_crosses_several_values_once_and_a_fall_does_not_recross() -> None:
    assert kl_crossings([0.0, 3.0], [1.0, 2.0, 4.0]) == [1.0, 2.0]
    assert kl_crossings([0.0, 3.0, 0.5, 1.5], [1.0, 2.0]) == []  # reached before
    assert kl_crossings([0.0, math.nan], [1.0]) == [] and not kl_stop([math.nan], 1.0)
    assert kl_crossings([5.0], []) == [] and not kl_stop([5.0], None)


@pytest.mark.parametrize("cls", [SuperHFConfig, RLHFConfig, RLOOConfig, GRPOConfig])
def test_bad_grids_and_stops_are_refused_naming_the_key(cls) -> None:
    assert (cls().snapshot_kl, cls().stop_kl) == ([], None)  # off by default
    ok = parse_section("s", {"snapshot_kl": [0.5, 1, 2, 4, 8], "stop_kl": 10}, cls)
    assert (ok.snapshot_kl, ok.stop_kl) == ([0.5, 1.0, 2.0, 4.0, 8.0], 10.0)
    for raw, key in [({"snapshot_kl": [2, 1]}, "snapshot_kl"), ({"snapshot_kl": [1, 1]}, "snapshot_kl"),
                     ({"snapshot_kl": [0, 1]}, "snapshot_kl"), ({"snapshot_kl": [math.nan]}, "snapshot_kl"),
                     ({"stop_kl": 0}, "stop_kl"), ({"stop_kl": -1.0}, "stop_kl")]:  # fmt: skip
        with pytest.raises(ParamsError, match=f"s\\.{key}: ") as err:
            parse_section("s", raw, cls)
        assert "\n" not in str(err.value)


def test_superhf_refuses_a_kl_grid_without_a_measured_kl() -> None:
    with pytest.raises(ParamsError, match="snapshot_kl and stop_kl need the training KL"):
        parse_section("superhf", {"stop_kl": 1.0, "measure_kl": False}, SuperHFConfig)


# the scripted training KL: EMA 0, .2, .38, .542, 2.488, 4.239: grid .3 at step 2, .5 at 3,
# 2 at 4, stop_kl 4 at step 5 (6 of 8 superbatches run)
SCRIPT = [0.0, 2.0, 2.0, 2.0, 20.0, 20.0, 20.0, 20.0]
SECTION = {"num_prompts": 8, "superbatch_size": 4, "minibatch_size": 2, "snapshot_every": 2,
           "snapshot_kl": [0.3, 0.5, 2.0], "stop_kl": 4.0, "checkpoint_every": 1,
           "optim": {"lr": 1e-2, "warmup_steps": 0}, "generation": TINY_GEN}  # fmt: skip


REAL_STEP = superhf_train.METHOD.step


def scripted_kl(monkeypatch, fail_at: int | None = None) -> None:
    """SuperHF's real step, its row's KL per completion replaced by ``SCRIPT``; raise at
    ``fail_at``."""

    def step(t, prompts, i):
        if i == fail_at:
            raise RuntimeError("killed")
        row, cands = REAL_STEP(t, prompts, i)
        return {**row, "kl_seq": SCRIPT[i]}, cands  # SuperHF decides on kl_seq

    monkeypatch.setattr(superhf_train.METHOD, "step", step)


def run_stage(tmp: Path, name: str, models) -> Path:
    policy, reward = models
    params = write_params(tmp / "p.yaml", superhf=SECTION)
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = tmp / name
    superhf_stage.main(["--params", str(params), "--policy", str(policy), "--reward", str(reward),
                        "--prompts", str(prompts), "--out", str(out / "model"), "--checkpoints",
                        str(out / "ck"), "--metrics", str(out / "m.json"), "--curve", str(out / "c.csv"),
                        "--samples", str(out / "s.jsonl"), "--snapshots", str(out / "snap")])  # fmt: skip
    return out


def snapshots(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "snap").glob("step-*/superhf_meta.json"))]  # fmt: skip


def test_grid_snapshots_stop_and_resume(tmp_path, monkeypatch, caplog) -> None:
    models = make_tiny_models(tmp_path / "m")
    scripted_kl(monkeypatch)
    with caplog.at_level(logging.INFO, logger="superhf.trainer_loop"):
        full = run_stage(tmp_path, "full", models)
    assert "stopped after step 6 of 8" in caplog.text and "reached stop_kl 4.0" in caplog.text
    metas = snapshots(full)
    assert [m["step"] for m in metas] == [2, 3, 4, 5]  # every 2 steps and the grid, 4 once
    assert [m.get("kl_grid") for m in metas] == [None, 0.3, 0.5, 2.0]
    assert metas[3]["kl_train_ema"] == pytest.approx(ema(SCRIPT[:5])[-1])
    index = json.loads((full / "snap" / "index.json").read_text())
    assert [(r["step"], r.get("kl_grid")) for r in index] == [
        (2, None),
        (3, 0.3),
        (4, 0.5),
        (5, 2.0),
    ]
    # the stopped run's outputs are complete: the final model is step 6's, six curve rows
    final = json.loads((full / "model" / "superhf_meta.json").read_text())
    assert (final["step"], final["reward_queries"]) == (6, 24)
    assert json.loads((full / "m.json").read_text())["superbatches"] == 6
    assert len((full / "c.csv").read_text().splitlines()) == 1 + 6
    assert [s["step"] for s in map(json.loads, (full / "s.jsonl").open())] == [0, 5]
    assert not (full / "ck").exists()

    # killed after step 4's checkpoint (snapshots 2, 3, 4 written), then resumed
    scripted_kl(monkeypatch, fail_at=4)
    with pytest.raises(RuntimeError, match="killed"):
        run_stage(tmp_path, "resumed", models)
    assert json.loads((tmp_path / "resumed" / "ck" / "meta.json").read_text())["step"] == 4
    scripted_kl(monkeypatch)
    resumed = run_stage(tmp_path, "resumed", models)
    assert snapshots(resumed) == metas
    a = load_file(full / "model" / "model.safetensors")
    b = load_file(resumed / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_resumed_past_its_stop_trains_no_further(monkeypatch) -> None:
    cfg = SuperHFConfig.model_validate({"num_prompts": 4, "stop_kl": 1.0})
    history = [{"reward_mean": 0.0, "kl": k} for k in (0.0, 50.0, 0.0)]  # EMA 5 at step 1
    monkeypatch.setattr(trainer_loop, "resume", lambda *a: (3, {"history": history}))
    t = SimpleNamespace(cfg=cfg, acc=SimpleNamespace(is_main_process=True), model=None, opt=None,
                        sched=None)  # fmt: skip

    def step(*a):
        raise AssertionError("trained past the stop")

    method = trainer_loop.Method("superhf", step, queries_per_prompt=lambda c: 1)
    got, _ = trainer_loop.run_loop(method, t, PROMPTS, [1] * 4, "fp", "ck", None)
    assert got == history


def test_superhf_kl_per_completion_is_its_kl_per_token_times_its_tokens(tmp_path) -> None:
    """SuperHF's ``kl_seq`` (the scale of snapshot_kl and stop_kl, as the other trainers'
    ``kl``) is each kept completion's per-token KL summed over its predicted tokens: kept rows
    of 1, 2 and 4 tokens, each alone in its minibatch, checked against the per-row ``kl``."""
    from superhf.generation import Completion
    from superhf.models import load_causal_lm, load_tokenizer
    from superhf.training import build_optimizer, frozen_reference, make_accelerator

    policy, _ = make_tiny_models(tmp_path / "m")
    cfg = SuperHFConfig.model_validate({"minibatch_size": 1, "append_eos": False, "kl_coef": 0.1,
                                        "optim": {"lr": 1e-2, "warmup_steps": 0}})  # fmt: skip
    acc = make_accelerator()
    tok, model = load_tokenizer(policy), load_causal_lm(policy).train()
    opt, sched = build_optimizer(model, cfg.optim, 3)
    ref = frozen_reference(model, False)
    model, opt = acc.prepare(model, opt)
    t = trainer_loop.Trainee(cfg, acc, model, tok, opt, sched, None, ref, {"measure_kl": True})
    kept = [(0, Completion("x", ids, ids), 1.0) for ids in ([5], [5, 6], [5, 6, 7, 8])]
    per_row: list[float] = []
    real = superhf_train._minibatch_loss

    def spy(*a):
        out = real(*a)
        per_row.extend(out[2].tolist())
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(superhf_train, "_minibatch_loss", spy)
        _, _, kl, kl_seq, n_tokens = superhf_train._finetune(t, [PROMPTS[0]], kept, 0)
    assert n_tokens == 7 and len(per_row) == 3 and per_row[2] > 0  # trained, so KL > 0
    assert kl == pytest.approx(sum(per_row) / 3)
    assert kl_seq == pytest.approx((per_row[0] * 1 + per_row[1] * 2 + per_row[2] * 4) / 3)


def test_a_superbatch_with_nothing_kept_gives_nan_kl_not_a_crash(tmp_path) -> None:
    """No kept completion on any process (every one trimmed to empty): the step's loss and
    both KLs are NaN (the EMA skips them), no exception."""
    from superhf.models import load_causal_lm, load_tokenizer
    from superhf.training import build_optimizer, make_accelerator

    policy, _ = make_tiny_models(tmp_path / "m")
    cfg = SuperHFConfig.model_validate({"minibatch_size": 1, "kl_coef": 0.1})
    acc = make_accelerator()
    tok, model = load_tokenizer(policy), load_causal_lm(policy).train()
    opt, sched = build_optimizer(model, cfg.optim, 1)
    t = trainer_loop.Trainee(cfg, acc, model, tok, opt, sched, None, None, {"measure_kl": True})
    out = superhf_train._finetune(t, [PROMPTS[0]], [], 0)
    assert len(out) == 5 and all(math.isnan(x) for x in out[:4]) and out[4] == 0


def test_the_kl_grid_and_the_stop_are_not_part_of_the_resume_fingerprint(tmp_path) -> None:
    """Changing snapshot_kl or stop_kl mid-run resumes the checkpoint (they decide what is
    saved and when training ends, not what a step computes); any other key starts fresh."""
    policy, _ = make_tiny_models(tmp_path / "m")
    acc = SimpleNamespace(num_processes=1)

    def fp(**kw) -> str:
        cfg = SuperHFConfig.model_validate(kw)
        t = SimpleNamespace(cfg=cfg, acc=acc, scorer=SimpleNamespace(hash="r"))
        return trainer_loop.run_fingerprint(t, policy, PROMPTS)

    assert fp() == fp(snapshot_kl=[1.0, 2.0], stop_kl=3.0)
    assert fp() != fp(seed=1)
