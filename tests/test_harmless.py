"""The harmless profile: its params resolve, and prepare splits a one-file local mirror."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA, needs_shared

from superhf import data, data_extract
from superhf.config.prepare import PrepareConfig
from superhf.profile import resolve


def hh(q: str, a: str = "ok", b: str = "no") -> dict:
    return {"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}",
            "rejected": f"\n\nHuman: {q}\n\nAssistant: {b}"}  # fmt: skip


def write_gz(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_split_by_prompt_keeps_prompt_groups_together_and_is_seeded() -> None:
    rows = [hh(f"q{i % 30}", a=f"a{i}") for i in range(90)]  # 30 prompts, 3 rows each
    a = data.split_by_prompt("harmless_base", rows, n_test=20, seed=0)
    prompt = lambda r: data_extract.extract_prompt("harmless_base", r)  # noqa: E731
    assert not {prompt(r) for r in a["train"]} & {prompt(r) for r in a["test"]}
    assert 20 <= len(a["test"]) < 23 and len(a["train"]) + len(a["test"]) == 90
    assert data.split_by_prompt("harmless_base", rows, 20, seed=0) == a
    assert data.split_by_prompt("harmless_base", rows, 20, seed=1)["test"] != a["test"]
    # the rule depends on the rows, not their order
    shuffled = data.split_by_prompt("harmless_base", rows[::-1], 20, seed=0)
    assert sorted(map(json.dumps, shuffled["test"])) == sorted(map(json.dumps, a["test"]))
    # a malformed row stays in train
    b = data.split_by_prompt("harmless_base", [*rows, {"chosen": 5}], 20, seed=0)
    assert {"chosen": 5} in b["train"]


@pytest.mark.parametrize("present", ["train", "test"])
def test_a_mirror_with_one_split_file(tmp_path: Path, present: str) -> None:
    write_gz(
        tmp_path / f"hh-rlhf/harmless-base/{present}.jsonl.gz", [hh(f"q{i}") for i in range(50)]
    )
    kw = {"source": "local", "data_dir": str(tmp_path), "datasets": ["harmless_base"],
          "test_size_per_dataset": 10}  # fmt: skip
    _, _, empty = data.run(PrepareConfig(**kw))
    d = empty["datasets"]["harmless_base"]
    assert (d["kept_train"], d["kept_test"]) == ((50, 0) if present == "train" else (0, 50))
    prompts, pairs, m = data.run(PrepareConfig(**kw, missing_split="split_by_prompt"))
    d = m["datasets"]["harmless_base"]
    assert (d["kept_train"], d["kept_test"]) == (40, 10)
    assert (len(pairs["train"]), len(pairs["test"])) == (40, 10)
    assert not {p["prompt"] for p in prompts["train"]} & {p["prompt"] for p in prompts["test"]}


def test_harmless_profile_resolves_with_equal_queries() -> None:
    p = resolve("harmless")
    assert p["prepare"]["source"] == "local" and p["prepare"]["data_dir"] == "../shared/data"
    assert p["prepare"]["missing_split"] == "split_by_prompt"
    assert p["reward_model"]["gold_split"] == "disjoint_half"
    assert p["evaluate"]["benchmarks"]["source"] == "local"
    s, r = p["superhf"], p["rlhf"]
    superhf_queries = s["num_prompts"] * s["superbatch_size"]  # P prompts x S per superbatch
    assert superhf_queries == r["num_prompts"] == 256  # PPO: one scored rollout per prompt
    assert p["evaluate"]["best_of_n_curve"] == s["superbatch_size"]
    assert s["snapshot_every"] > 0 and r["snapshot_every"] > 0


@needs_shared
def test_prepare_on_the_real_one_file_mirror() -> None:
    section = resolve("harmless")["prepare"]
    cfg = PrepareConfig(**{**section, "data_dir": str(SHARED_DATA)})
    prompts, pairs, m = data.run(cfg)
    d = m["datasets"]["harmless_base"]
    assert d["kept_train"] + d["kept_test"] == 2312  # every row of the one file, none lost
    assert 400 <= d["kept_test"] < 420
    assert not {p["prompt"] for p in prompts["train"]} & {p["prompt"] for p in prompts["test"]}
    assert min(len(pairs["train"]), len(pairs["test"])) > 350
    assert data.run(cfg)[0] == prompts  # seeded
