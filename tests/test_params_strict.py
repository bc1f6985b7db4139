"""Params are documented and never silently replaced or rounded (issue 15, part 3 and 5)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import superhf.config
from superhf.config.superhf import SuperHFConfig
from superhf.config.tracking import TrackingConfig
from superhf.loop_schedule import prompts_per_step
from superhf.params import ParamsError, Section, load_section, parse_section


def sections() -> list[type[Section]]:
    """Every params class in every module of the ``superhf.config`` package."""
    found: dict[str, type[Section]] = {}
    for info in pkgutil.iter_modules(superhf.config.__path__):
        module = importlib.import_module(f"superhf.config.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Section) and value is not Section:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_config_field_has_a_description() -> None:
    missing = [f"{m.__name__}.{name}" for m in sections()
               for name, field in m.model_fields.items() if not (field.description or "").strip()]  # fmt: skip
    assert len(sections()) >= 10
    assert not missing, f"fields without a description: {missing}"


@pytest.mark.parametrize("body", ["superhf:\n", "superhf: {}\n", "superhf: null\n"])
def test_an_empty_section_is_an_error_not_the_paper_defaults(tmp_path: Path, body: str) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(body)
    with pytest.raises(ParamsError, match="section 'superhf' is empty"):
        load_section("superhf", SuperHFConfig, p)
    with pytest.raises(ParamsError, match="is empty"):
        parse_section("tracking", {}, TrackingConfig)


def test_prompts_per_step_uses_exactly_num_prompts() -> None:
    assert prompts_per_step(24, 2, 1, "superhf") == [2] * 12
    assert prompts_per_step(5, 2, 1, "superhf") == [2, 2, 1]
    assert prompts_per_step(2000, 32, 1, "rlhf") == [32] * 62 + [16]
    assert prompts_per_step(10, 2, 2, "rlhf") == [2, 2, 1]  # per process: 4 + 4 + 2 = 10
    for n, per, world in [(7, 3, 1), (10, 4, 2), (96, 8, 4), (3, 8, 1)]:
        sizes = prompts_per_step(n, per, world, "x")
        assert sum(sizes) * world == n and max(sizes) == min(per, n // world)
    with pytest.raises(
        ParamsError,
        match=r"rlhf.num_prompts \(7\) must be a multiple of the number of processes \(2\)",
    ):
        prompts_per_step(7, 2, 2, "rlhf")


def test_step_prompts_give_each_process_its_own_slice_of_every_step() -> None:
    from types import SimpleNamespace

    from superhf.loop_schedule import checkpoint_due, prompt_schedule, sample_due, step_prompts

    prompts = [f"p{i}" for i in range(7)]
    sizes = prompts_per_step(10, 2, 2, "rlhf")  # [2, 2, 1] per process
    schedule = prompt_schedule(len(prompts), 10, seed=3)
    ranks = [SimpleNamespace(num_processes=2, process_index=r) for r in range(2)]
    seen = [[step_prompts(prompts, schedule, sizes, s, acc) for s in range(3)] for acc in ranks]
    flat = [p for step in zip(*seen) for per_rank in step for p in per_rank]
    # every schedule position used once, in order: step 0 rank 0, step 0 rank 1, step 1 ...
    assert flat == [prompts[i] for i in schedule]
    assert [len(x) for x in seen[0]] == [len(x) for x in seen[1]] == [2, 2, 1]
    assert [s for s in range(10) if checkpoint_due(4, s, 10)] == [3, 7]  # never after the last
    assert [s for s in range(10) if sample_due(4, s, 10)] == [0, 4, 8, 9]  # and the last
