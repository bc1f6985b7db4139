"""Sharded training (FSDP, DeepSpeed) as accelerate launches it: what runs where, and
generation with the full parameters gathered.

accelerate (1.16) attaches FSDP only to accelerator devices (CUDA, XPU, ...): with the
FSDP config on a CPU box it silently trains as plain DDP over gloo, and it never enables
DeepSpeed with ``cpu=True``. ``check_sharding_backend`` refuses that in one line, before a
model loads, instead of running something other than what was asked for.

Under FSDP2 each process holds a shard of every parameter, and a wrapped module gathers
its parameters in its forward hook. Sampling needs two things more (``full_parameters``):
parameters outside the wrapped layers belong to the root, whose hook never runs when the
trainer calls ``generate`` on a submodule (PPO: ``model.policy``), so they are gathered
here; and every process must run the same number of forwards, since each one is a
collective: ``synced_gpus`` keeps a process whose rows have all ended stepping until every
process is done, and the shared-prefill shortcut (a forward only on processes whose batch
repeats a prompt) is turned off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.distributed.fsdp import FSDPModule

from superhf.errors import BadInputError

CPU_LAUNCH = "python -m torch.distributed.run --nproc_per_node N"


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() == "true"


def check_sharding_backend(gpu: bool) -> None:
    """One line instead of a silent fallback: FSDP and DeepSpeed need a GPU under accelerate,
    and of FSDP only version 2 is supported (its generation path is the tested one)."""
    for flag, name in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")):
        if _flag(flag) and not gpu:
            raise BadInputError(
                f"launcher: {name} needs a GPU (accelerate enables it only on accelerator "
                f"devices; on CPU it would silently run as plain DDP); on CPU use "
                f"launcher='{CPU_LAUNCH}' (DDP over gloo)"
            )
    if _flag("ACCELERATE_USE_FSDP") and os.environ.get("FSDP_VERSION", "1") != "2":
        raise BadInputError(
            "launcher: FSDP version 1 is not supported (generation gathers parameters the "
            "FSDP2 way); set fsdp_version: 2 as in configs/accelerate/fsdp.yaml"
        )


def sharded_modules(model: torch.nn.Module) -> list[FSDPModule]:
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextmanager
def full_parameters(model: torch.nn.Module) -> Iterator[dict]:
    """Gather every FSDP2 shard of ``model`` for sampling; yields the extra arguments for
    ``sample_completions``. A model that is not sharded: nothing gathered, no arguments."""
    shards = sharded_modules(model)
    if not shards:
        yield {}
        return
    for m in shards:
        m.unshard()
    try:
        yield {"synced_gpus": True, "share_prefill": False}
    finally:
        for m in shards:
            m.reshard()
