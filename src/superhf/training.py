"""What the two training stages (SuperHF and PPO) share: the accelerator, seeding, the
optimiser and schedule, LoRA, atomic checkpoints with resume, and the final save."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from safetensors.torch import load_file, save_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_scheduler

from superhf.config.common import LoraConfig, OptimConfig
from superhf.io import atomic_path, clear_leftovers, restore_interrupted
from superhf.models import pick_device
from superhf.params import ParamsError
from superhf.sharding import check_sharding_backend

log = logging.getLogger(__name__)
# Layout of a checkpoint folder; raise it when the files change, so that an old checkpoint
# is moved aside instead of half-loaded.
CHECKPOINT_FORMAT = 1


def make_accelerator(mixed_precision: str = "fp32") -> Accelerator:
    """CPU (gloo) when no GPU is present, so the same code runs under torchrun on a laptop."""
    precision = "no" if mixed_precision == "fp32" else mixed_precision
    check_sharding_backend(gpu=pick_device().type == "cuda")  # FSDP/DeepSpeed: GPU only
    acc = Accelerator(cpu=pick_device().type == "cpu", mixed_precision=precision)
    log.info(
        "training on %s (%s, %d process(es), %s)",
        acc.device,
        acc.distributed_type.value,
        acc.num_processes,
        precision,
    )
    return acc


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(
    model: torch.nn.Module, cfg: OptimConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    params = [p for p in model.parameters() if p.requires_grad]
    # the fused kernel: one pass over parameters and state instead of a dozen foreach ops
    # (6.5x faster on CPU for the 135M policy, benchmarks/RESULTS.md); same update rule
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    name = "constant_with_warmup" if cfg.scheduler == "constant" else cfg.scheduler
    sched = get_scheduler(
        name, opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps
    )
    return opt, sched


def maybe_lora(model: PreTrainedModel, cfg: LoraConfig) -> PreTrainedModel:
    if not cfg.enabled:
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def frozen_reference(model: PreTrainedModel, lora: bool) -> PreTrainedModel | None:
    """A frozen copy of the initial policy; None under LoRA (disable the adapter instead)."""
    if lora:
        return None
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def fingerprint(*parts: Any) -> str:
    """Identity of a run's inputs: a checkpoint from other params or models is never resumed."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def prompts_digest(prompts: list[str]) -> str:
    """sha256 of the training prompts' content and order, for ``fingerprint``: a resume
    after ``prepare`` changed the prompts (same count, other text) starts fresh."""
    return hashlib.sha256(json.dumps(prompts).encode()).hexdigest()


def check_finite(name: str, value: float | torch.Tensor, step: int) -> None:
    v = float(value)
    if not math.isfinite(v):
        raise FloatingPointError(
            f"{name} is {v} at step {step}; stopping. The last good checkpoint is kept intact."
        )


class Checkpointer:
    """Atomic checkpoints: model, optimiser, scheduler, every process's RNG, step, state.

    A checkpoint is written into a temporary folder and renamed into place, so a kill at any
    moment leaves either the previous checkpoint or the new one, never a mixture (a kill
    between the two renames leaves the previous one beside the folder; ``load`` moves it back).
    """

    def __init__(self, folder: str | Path, fingerprint: str, accelerator: Accelerator) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.acc = accelerator
        self.tmp = self.folder.with_name(self.folder.name + ".tmp")

    def save(self, model, optimizer, scheduler, step: int, state: dict) -> None:
        acc = self.acc
        if acc.is_main_process:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        rng = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, self.tmp / f"rng_{acc.process_index}.pt")
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_model(acc.unwrap_model(model), str(self.tmp / "model.safetensors"))
            torch.save(
                {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                self.tmp / "optim.pt",
            )
            meta = {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "fingerprint": self.fingerprint,
                "world_size": acc.num_processes,
                "state": state,
            }
            (self.tmp / "meta.json").write_text(json.dumps(meta))
            with atomic_path(self.folder) as out:
                os.replace(self.tmp, out)
        acc.wait_for_everyone()

    def load(self, model, optimizer, scheduler) -> tuple[int, dict] | None:
        """Restore the last checkpoint into the given objects; (step, state) or None.

        Every file is read and checked before anything is restored. A checkpoint that cannot
        be used (unreadable, truncated, from another version of this code, tensors that do
        not fit the model) never blocks a run: it is moved aside to ``<folder>.unusable``
        with a warning naming it, and training starts fresh. All processes agree.
        """
        if self.acc.is_main_process and restore_interrupted(self.folder):
            log.warning("%s: restored the checkpoint a kill left mid-replace", self.folder)
        self.acc.wait_for_everyone()
        if not self.folder.exists():
            return None
        try:
            meta, tensors, opt_state, rng = self._read(model, optimizer)
            problem = None
        except Exception as exc:  # noqa: BLE001 - anything unreadable means: start fresh
            problem = f"{type(exc).__name__}: {exc}"
        problems = [p for p in gather_object([problem]) if p is not None]
        if problems:  # every process sees the same list, so all start fresh together
            self._move_aside(problems[0])
            return None
        if meta.get("fingerprint") != self.fingerprint:
            log.warning(
                "checkpoint in %s is from other params or models; starting fresh", self.folder
            )
            return None
        if meta.get("world_size") != self.acc.num_processes:
            log.warning(
                "checkpoint was written by %s processes; starting fresh", meta.get("world_size")
            )
            return None
        self.acc.unwrap_model(model).load_state_dict(tensors, strict=False)
        optimizer.load_state_dict(opt_state["optimizer"])
        scheduler.load_state_dict(opt_state["scheduler"])
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        log.info("resumed from %s at step %d", self.folder, meta["step"])
        return meta["step"], meta["state"]

    def _read(self, model, optimizer) -> tuple[dict, dict, dict, dict]:
        """Read and check every file of the checkpoint; raise on anything unusable."""
        meta = json.loads((self.folder / "meta.json").read_text())
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else None
            raise ValueError(f"checkpoint format {got!r}, this code writes {CHECKPOINT_FORMAT}")
        if not isinstance(meta.get("step"), int) or not isinstance(meta.get("state"), dict):
            raise ValueError("meta.json lacks an integer step or a state")
        tensors = load_file(str(self.folder / "model.safetensors"))
        expected = self.acc.unwrap_model(model).state_dict()
        unknown = sorted(set(tensors) - set(expected))
        wrong = [k for k in tensors if k in expected and tensors[k].shape != expected[k].shape]
        missing = [k for k in expected if k not in tensors]
        # tied weights are saved once (safetensors drops duplicates): a missing name must
        # share its storage with a saved one
        saved_ptrs = {expected[k].data_ptr() for k in tensors if k in expected}
        missing = [k for k in missing if expected[k].data_ptr() not in saved_ptrs]
        if unknown or wrong or missing:
            raise ValueError(
                f"model tensors do not fit: unknown {unknown[:3]}, wrong shape {wrong[:3]}, "
                f"missing {missing[:3]}"
            )
        opt_state = torch.load(self.folder / "optim.pt", weights_only=True)
        sizes = [len(g["params"]) for g in opt_state["optimizer"]["param_groups"]]
        if sizes != [len(g["params"]) for g in optimizer.param_groups]:
            raise ValueError(f"optimizer state for parameter groups of sizes {sizes}")
        rng = torch.load(self.folder / f"rng_{self.acc.process_index}.pt", weights_only=True)
        return meta, tensors, opt_state, rng

    def _move_aside(self, problem: str) -> None:
        aside = self.folder.with_name(self.folder.name + ".unusable")
        if self.acc.is_main_process:
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(self.folder, aside)
            log.warning(
                "checkpoint %s cannot be used (%s); moved to %s, training starts fresh",
                self.folder,
                problem,
                aside,
            )
        self.acc.wait_for_everyone()


def save_final(
    model, tokenizer: PreTrainedTokenizerBase, out: str | Path, accelerator: Accelerator, meta: dict
) -> None:
    """save_pretrained (safetensors) + tokenizer, LoRA merged, written atomically by rank 0."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        plain = accelerator.unwrap_model(model)
        if hasattr(plain, "merge_and_unload"):
            plain = plain.merge_and_unload()
        with atomic_path(out) as tmp:
            plain.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "superhf_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    accelerator.wait_for_everyone()


def discard_checkpoints(folder: str | Path, accelerator: Accelerator) -> None:
    """Remove a finished run's checkpoints (the final model is the stage's output)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(Path(str(folder) + ".tmp"), ignore_errors=True)
        clear_leftovers(folder)


def prompts_per_step(
    num_prompts: int, per_step: int, world: int, section: str, drop_last: bool = False
) -> list[int]:
    """Prompts each process takes at each step, so that a run uses exactly ``num_prompts``.

    Full steps take ``per_step`` prompts per process; a remainder becomes one last, smaller
    step (the same size on every process), or is dropped with ``drop_last`` (TRL's
    dataloader: the paper's RLHF run used 1984 of 2000 prompts in 62 steps). A remainder
    that cannot be split evenly across the processes is an error rather than a silent
    rounding.
    """
    if num_prompts % world:
        raise ParamsError(
            f"{section}.num_prompts ({num_prompts}) must be a multiple of the number of "
            f"processes ({world}), so that every process takes the same prompts per step"
        )
    full, rest = divmod(num_prompts, per_step * world)
    if drop_last and not full:
        raise ParamsError(
            f"{section}.num_prompts ({num_prompts}) is less than one full step "
            f"({per_step} x {world} processes) and drop_last drops it: nothing to train"
        )
    return [per_step] * full + ([rest // world] if rest and not drop_last else [])


def prompt_schedule(n_prompts: int, total: int, seed: int) -> list[int]:
    """Indices of the training prompts in the order they are used (reshuffled per pass)."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < total:
        block = list(range(n_prompts))
        rng.shuffle(block)
        order += block
    return order[:total]


def step_prompts(
    prompts: list[str], schedule: list[int], sizes: list[int], step: int, accelerator: Accelerator
) -> list[str]:
    """This process's prompts at ``step``: its own slice of the step's block of the seeded
    schedule, so processes see disjoint prompts."""
    n = sizes[step]
    base = sum(sizes[:step]) * accelerator.num_processes + accelerator.process_index * n
    return [prompts[schedule[base + j]] for j in range(n)]


def resume(
    checkpointer: Checkpointer,
    model,
    opt,
    sched,
    snapshot_dir: str | Path | None,
    accelerator: Accelerator,
) -> tuple[int, dict]:
    """(first step, saved loop state) from the checkpoint when it matches, else (0, {});
    a fresh start clears the snapshot folder, a resumed run keeps it."""
    resumed = checkpointer.load(model, opt, sched)
    start_snapshots(snapshot_dir, bool(resumed), accelerator)
    return resumed if resumed else (0, {})


def log_row(run: Any, prefix: str, row: dict, step: int) -> None:
    """Log a history row's finite numbers as ``prefix/key`` metrics at ``step``."""
    run.log_metrics(
        {f"{prefix}/{k}": v for k, v in row.items() if k != "step" and math.isfinite(v)}, step
    )


def sample_due(every: int, step: int, n_steps: int) -> bool:
    """Samples are kept every ``every`` steps (0-based, from step 0) and at the last step."""
    return step % every == 0 or step == n_steps - 1


def checkpoint_due(every: int, step: int, n_steps: int) -> bool:
    """A checkpoint after every ``every`` steps, but not after the last (the final save)."""
    return (step + 1) % every == 0 and step + 1 < n_steps


def snapshot_due(every: int, step: int, n_steps: int) -> bool:
    """After ``step`` (0-based) of ``n_steps``: is a snapshot due? Never after the last step
    (the final model is the curve's last point) and never when ``every`` is 0."""
    return every > 0 and (step + 1) % every == 0 and step + 1 < n_steps


def start_snapshots(folder: str | Path | None, resumed: bool, accelerator: Accelerator) -> None:
    """A fresh run starts with no snapshots; a resumed one keeps those written before the
    kill (the folder is a DVC ``persist`` output, so DVC does not delete it before a run)."""
    if folder is None or resumed:
        return
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for old in Path(folder).glob("step-*"):
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def save_snapshot(
    model,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | Path | None,
    step: int,
    accelerator: Accelerator,
    meta: dict,
) -> None:
    """Save the policy after ``step`` steps to ``folder/step-<step>/`` (rank 0, atomic), for
    the over-optimisation curve. Unlike ``save_final`` a LoRA policy is merged in a copy, so
    training continues on the adapter."""
    if folder is None:
        return
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        plain = accelerator.unwrap_model(model)
        if hasattr(plain, "merge_and_unload"):
            plain = copy.deepcopy(plain).merge_and_unload()
        with atomic_path(Path(folder) / f"step-{step:06d}") as tmp:
            plain.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "superhf_meta.json").write_text(json.dumps({**meta, "step": step}, indent=2))
    accelerator.wait_for_everyone()
