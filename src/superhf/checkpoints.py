"""What a training run writes to disk and reads back: atomic checkpoints (with the
fingerprint that decides whether one is resumed), the snapshots of the over-optimisation
curve, the final model, and the removal of a finished run's checkpoints."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from safetensors.torch import load_file, save_model
from transformers import PreTrainedTokenizerBase

from superhf.io import atomic_path, clear_leftovers, restore_interrupted

log = logging.getLogger(__name__)
# Layout of a checkpoint folder; raise it when the files change, so that an old checkpoint
# is moved aside instead of half-loaded.
CHECKPOINT_FORMAT = 1


def fingerprint(*parts: Any) -> str:
    """Identity of a run's inputs: a checkpoint from other params or models is never resumed."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def prompts_digest(prompts: list[str]) -> str:
    """sha256 of the training prompts' content and order, for ``fingerprint``: a resume
    after ``prepare`` changed the prompts (same count, other text) starts fresh."""
    return hashlib.sha256(json.dumps(prompts).encode()).hexdigest()


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


def start_snapshots(folder: str | Path | None, resumed: bool, accelerator: Accelerator) -> None:
    """A fresh run starts with no snapshots and no index of an earlier run's (the stage
    writes ``index.json`` when it ends); a resumed one keeps those written before the kill
    (the folder is a DVC ``persist`` output, so DVC does not delete it before a run)."""
    if folder is None or resumed:
        return
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for old in Path(folder).glob("step-*"):
            shutil.rmtree(old, ignore_errors=True)
        (Path(folder) / "index.json").unlink(missing_ok=True)
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
