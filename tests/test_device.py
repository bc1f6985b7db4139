"""Every stage on the accelerator: the device ``pick_device`` returns reaches every model that
runs a forward in evaluate (generation, best-of-n, scoring, KL, benchmarks) and in stage
reward_model (training and scoring), and the reward models' batches.

No GPU here: ``pick_device`` is replaced by ``cpu:0``, a device that compares unequal to the
default ``cpu`` but runs on it, and ``.to`` calls are recorded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params
from transformers import BatchEncoding, PreTrainedModel

from superhf.models import pick_device
from superhf.stages import evaluate, reward_model

PICKED = torch.device("cpu", 0)


def _is_picked(args: tuple, kw: dict) -> bool:
    for a in (*args, kw.get("device")):
        if isinstance(a, torch.device | str) and torch.device(a) == PICKED:
            return True
    return False


class Spy:
    """Records by ``id``; ``alive`` holds every recorded module so that no id is reused by a
    later model after an earlier one is freed (which would merge two models into one entry)."""

    def __init__(self) -> None:
        self.moved: set[int] = set()  # models moved to PICKED
        self.ran: dict[int, str] = {}  # models that ran a forward
        self.batches = 0  # BatchEncodings moved to PICKED
        self.alive: list[torch.nn.Module] = []


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch):
    s = Spy()
    module_to, enc_to = torch.nn.Module.to, BatchEncoding.to

    def record_module(self, *args, **kw):
        if _is_picked(args, kw):
            s.moved.add(id(self))
            s.alive.append(self)
        return module_to(self, *args, **kw)

    def record_batch(self, *args, **kw):
        s.batches += _is_picked(args, kw)
        return enc_to(self, *args, **kw)

    def hook(module, args):
        is_head = isinstance(module, PreTrainedModel) and "For" in type(module).__name__
        if is_head and id(module) not in s.ran:  # a model with a head, not its trunk
            s.ran[id(module)] = type(module).__name__
            s.alive.append(module)

    monkeypatch.setattr(torch.nn.Module, "to", record_module)
    monkeypatch.setattr(BatchEncoding, "to", record_batch)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    yield s
    handle.remove()


def test_pick_device_is_the_trainers_choice() -> None:
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_evaluate_puts_every_model_and_batch_on_the_picked_device(
    tmp_path: Path, spy: Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluate, "pick_device", lambda: PICKED)
    monkeypatch.setattr("superhf.evaluation.pick_device", lambda: PICKED)
    policy, reward = make_tiny_models(tmp_path / "m")
    shutil.copytree(reward, tmp_path / "gold")
    shutil.copytree(policy, tmp_path / "superhf")
    prompts = tmp_path / "test.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "dataset": "a"}) + "\n" for p in PROMPTS))
    section = {"max_test_prompts": 2, "best_of_n": 2, "bootstrap_samples": 20, "generation": TINY_GEN,
               "score_cache": False, "score_batch_size": 3, "kl_batch_size": 2,
               "benchmarks": {"source": "fixture", "max_examples": {"hhh": 1, "lambada": 1, "wsc": 1, "tweets": 1, "squad": 1}}}  # fmt: skip
    params = write_params(tmp_path / "p.yaml", evaluate=section)
    out = tmp_path / "out"
    evaluate.main(["--params", str(params), "--prompts", str(prompts), "--model", f"base={policy}",
                   "--model", f"superhf={tmp_path / 'superhf'}", "--reward", str(reward),
                   "--gold", str(tmp_path / "gold"), "--metrics", str(out / "eval.json"),
                   "--table", str(out / "table4.md"), "--completions", str(out / "c.jsonl")])  # fmt: skip
    kinds = sorted(spy.ran.values())
    # base + superhf policies, proxy + gold reward models: all four ran, all four were moved
    assert len(kinds) == 4 and sum("CausalLM" in k for k in kinds) == 2, kinds
    assert set(spy.ran) <= spy.moved, [spy.ran[i] for i in set(spy.ran) - spy.moved]
    assert spy.batches > 0  # reward-model batches went to the picked device
    assert "superhf" in json.loads((out / "eval.json").read_text())


def test_reward_model_stage_trains_and_scores_on_the_picked_device(
    tmp_path: Path, spy: Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reward_model, "pick_device", lambda: PICKED)
    prefs = tmp_path / "prefs"
    prefs.mkdir()
    pairs = [{"prompt": f"\n\nHuman: q{i}\n\nAssistant:", "chosen": "A full answer.",
              "rejected": "no", "dataset": "d"} for i in range(6)]  # fmt: skip
    for split in ("train", "test"):
        (prefs / f"{split}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    params = write_params(tmp_path / "p.yaml", reward_model={
        "name": "tiny", "batch_size": 2, "max_length": 32, "score_batch_size": 4})  # fmt: skip
    reward_model.main(["--params", str(params), "--preferences", str(prefs),
                       "--out", str(tmp_path / "r"), "--gold-out", str(tmp_path / "g"),
                       "--metrics", str(tmp_path / "m.json")])  # fmt: skip
    # proxy and gold trained (2 models), then each folder scored (2 more): all moved
    assert len(spy.ran) == 4 and set(spy.ran) <= spy.moved
    # training batches (3 pairs each, 2 a step: 2 steps x 2 models) and scoring batches
    # (6 chosen + 6 rejected, 4 a batch: 4 per model x 2 models), every one moved
    assert spy.batches == 2 * 2 + 4 * 2


def test_require_cuda_turns_the_cpu_fallback_into_an_error(monkeypatch) -> None:
    """The GPU check (benchmarks/gpu_device.sh) sets SUPERHF_REQUIRE_CUDA=1: a stage that would
    silently run on the CPU there fails instead, in evaluate/reward_model and the trainers."""
    from superhf.training import make_accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    monkeypatch.setenv("SUPERHF_REQUIRE_CUDA", "1")
    with pytest.raises(RuntimeError, match="SUPERHF_REQUIRE_CUDA=1 but torch sees no CUDA"):
        pick_device()
    with pytest.raises(RuntimeError, match="SUPERHF_REQUIRE_CUDA"):
        make_accelerator("fp32")
