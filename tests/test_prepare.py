from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA, needs_shared

from superhf import data as prepare
from superhf import data_extract
from superhf.config.prepare import PrepareConfig
from superhf.stages import prepare as prepare_stage


def cfg(**kw) -> PrepareConfig:
    return PrepareConfig(**kw)


def write_gz(path: Path, rows: list, as_array: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        if as_array:
            json.dump(rows, f)
        else:
            for r in rows:
                f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def hh(q: str, a: str = "ok", b: str = "no") -> dict:
    return {
        "chosen": f"\n\nHuman: {q}\n\nAssistant: {a}",
        "rejected": f"\n\nHuman: {q}\n\nAssistant: {b}",
    }


def test_first_turn_rule() -> None:
    t = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: more\n\nAssistant: sure"
    assert data_extract.first_turn_prompt(t) == "\n\nHuman: hi\n\nAssistant:"
    assert data_extract.webgpt_prompt({"full_text": "Why?"}) == "\n\nHuman: Why?\n\nAssistant:"


@pytest.mark.parametrize(
    "row",
    [
        {"rejected": "x"},  # missing field
        {"chosen": 42, "rejected": "x"},  # wrong type
        {"chosen": "\n\nAssistant: only an answer", "rejected": "x"},  # no human turn
        {"chosen": "\n\nHuman: no assistant at all", "rejected": "x"},
        ["not", "an", "object"],
    ],
)
def test_malformed_rows_raise(row) -> None:
    with pytest.raises(data_extract.Malformed):
        data_extract.extract_prompt("harmless_base", row)


def test_pairs() -> None:
    row = {
        "chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: good",
        "rejected": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: bad",
    }
    pair = data_extract.extract_pair("harmless_base", row)
    assert pair == {
        "prompt": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:",
        "chosen": "good",
        "rejected": "bad",
    }
    web = {
        "question": {"full_text": "q"},
        "answer_0": "A",
        "answer_1": "B",
        "score_0": -1.0,
        "score_1": 1.0,
    }
    assert data_extract.extract_pair("webgpt", web)["chosen"] == "B"
    assert data_extract.extract_pair("webgpt", {**web, "score_1": -1.0}) is None  # tie dropped
    assert data_extract.extract_pair("red_team", {"transcript": "x"}) is None


def make_local(root: Path) -> None:
    write_gz(root / "hh-rlhf/harmless-base/train.jsonl.gz", [hh(f"harm {i}?") for i in range(6)])
    write_gz(root / "hh-rlhf/harmless-base/test.jsonl.gz", [hh("t1?"), hh("t2?")])
    write_gz(root / "hh-rlhf/helpful-base/train.jsonl.gz", [hh(f"help {i}?") for i in range(4)])
    write_gz(root / "hh-rlhf/helpful-base/test.jsonl.gz", [hh("h?")])
    red = [{"transcript": f"\n\nHuman: red {i}\n\nAssistant: x"} for i in range(10)]
    write_gz(root / "hh-rlhf/red-team-attempts/red_team_attempts.jsonl.gz", red, as_array=True)
    web = [
        {
            "question": {"full_text": f"w{i}"},
            "answer_0": "a",
            "answer_1": "b",
            "score_0": 1.0,
            "score_1": 0.0,
        }
        for i in range(5)
    ]
    write_gz(root / "webgpt_comparisons/comparisons.jsonl.gz", web)


def test_local_source_splits_and_counts(tmp_path: Path) -> None:
    make_local(tmp_path)
    prompts, pairs, m = prepare.run(
        cfg(source="local", data_dir=str(tmp_path), test_size_per_dataset=3)
    )
    d = m["datasets"]
    assert (d["harmless_base"]["kept_train"], d["harmless_base"]["kept_test"]) == (6, 2)
    assert (d["red_team"]["kept_train"], d["red_team"]["kept_test"]) == (7, 3)
    assert (d["webgpt"]["kept_train"], d["webgpt"]["kept_test"]) == (2, 3)
    # the last rows of train, in order, are the test split where no test split exists
    red_test = [p["prompt"] for p in prompts["test"] if p["dataset"] == "red_team"]
    assert red_test == [f"\n\nHuman: red {i}\n\nAssistant:" for i in (7, 8, 9)]
    assert (
        m["total_prompts"] == len(prompts["train"]) + len(prompts["test"]) == 6 + 2 + 4 + 1 + 10 + 5
    )
    assert sum(v["share"] for v in d.values()) == pytest.approx(1.0, abs=1e-3)
    assert len(pairs["train"]) == 6 + 4 + 2 and all(
        set(p) == {"prompt", "chosen", "rejected", "dataset"} for p in pairs["train"]
    )


def test_seeded_shuffle_and_caps(tmp_path: Path) -> None:
    make_local(tmp_path)
    a = prepare.run(cfg(source="local", data_dir=str(tmp_path), seed=1, test_size_per_dataset=3))[0]
    b = prepare.run(cfg(source="local", data_dir=str(tmp_path), seed=1, test_size_per_dataset=3))[0]
    c = prepare.run(cfg(source="local", data_dir=str(tmp_path), seed=2, test_size_per_dataset=3))[0]
    assert a == b and a["train"] != c["train"]
    capped = prepare.run(
        cfg(source="local", data_dir=str(tmp_path), max_train_per_dataset=2, max_test_per_dataset=1)
    )[2]
    assert all(v["kept_train"] <= 2 and v["kept_test"] <= 1 for v in capped["datasets"].values())


def test_filter_boundary_1024_vs_1025(tmp_path: Path) -> None:
    overhead = len("\n\nHuman: ") + len("\n\nAssistant:")
    q1024, q1025 = "a" * (1024 - overhead), "b" * (1025 - overhead)
    write_gz(tmp_path / "hh-rlhf/harmless-base/train.jsonl.gz", [hh(q1024), hh(q1025)])
    write_gz(tmp_path / "hh-rlhf/harmless-base/test.jsonl.gz", [hh("x")])
    prompts, _, m = prepare.run(
        cfg(source="local", data_dir=str(tmp_path), datasets=["harmless_base"])
    )
    assert [len(p["prompt"]) for p in prompts["train"]] == [1024]
    assert m["datasets"]["harmless_base"]["dropped_too_long"] == 1


def test_malformed_rows_counted_and_reported(tmp_path: Path) -> None:
    rows = [hh("fine"), {"chosen": 5}, "{broken json", {"rejected": "x"}, hh("fine 2")]
    write_gz(tmp_path / "hh-rlhf/harmless-base/train.jsonl.gz", rows)
    write_gz(tmp_path / "hh-rlhf/harmless-base/test.jsonl.gz", [hh("x")])
    prompts, _, m = prepare.run(
        cfg(source="local", data_dir=str(tmp_path), datasets=["harmless_base"])
    )
    d = m["datasets"]["harmless_base"]
    assert d["dropped_malformed"] == 3 and d["kept_train"] == 2
    assert any("row 2" in e and "invalid JSON" in e for e in d["malformed_examples"])


def test_missing_subset_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"hh-rlhf/helpful-base"):
        prepare.run(cfg(source="local", data_dir=str(tmp_path), datasets=["helpful_base"]))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        prepare.run(cfg(source="local", data_dir=str(tmp_path / "nope")))


def test_fixture_source_covers_all_four(tmp_path: Path) -> None:
    prompts, pairs, m = prepare.run(cfg(test_size_per_dataset=20))
    assert set(m["datasets"]) == {"red_team", "harmless_base", "helpful_base", "webgpt"}
    assert all(v["kept_train"] > 0 and v["kept_test"] > 0 for v in m["datasets"].values())
    assert m["datasets"]["webgpt"]["pairs_skipped"] > 0  # ties dropped
    train_prompts = {p["prompt"] for p in prompts["train"]}
    assert not train_prompts & {p["prompt"] for p in prompts["test"] if p["dataset"] != "red_team"}


def expected_harmless_test_prompts() -> list[str]:
    path = SHARED_DATA / "hh-rlhf/harmless-base/test.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 2312
    out = []
    for r in rows:
        c = r["chosen"]
        out.append(c[: c.index("\n\nAssistant:")] + "\n\nAssistant:")
    return out


@needs_shared
def test_real_harmless_base_local() -> None:
    prompts, pairs, m = prepare.run(
        cfg(source="local", data_dir=str(SHARED_DATA), datasets=["harmless_base"])
    )
    expected = expected_harmless_test_prompts()
    assert all(len(p) <= 1024 for p in expected)
    assert [p["prompt"] for p in prompts["test"]] == expected
    assert m["datasets"]["harmless_base"]["kept_test"] == 2312
    assert len(pairs["test"]) == 2312 - m["datasets"]["harmless_base"]["pairs_skipped"]


@needs_shared
def test_hub_code_path_on_a_local_hub_layout() -> None:
    """source=hub runs datasets.load_dataset(hub_id, data_dir=subset); point it at a folder."""
    c = cfg(source="hub", hh_rlhf_hub_id=str(SHARED_DATA / "hh-rlhf"), datasets=["harmless_base"])
    prompts, _, m = prepare.run(c)
    assert [p["prompt"] for p in prompts["test"]] == expected_harmless_test_prompts()


def test_main_writes_outputs(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  test_size_per_dataset: 20\n")
    prepare_stage.main(
        [
            "--params",
            str(params),
            "--prompts",
            str(tmp_path / "p"),
            "--preferences",
            str(tmp_path / "q"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    lines = (tmp_path / "p/train.jsonl").read_text().splitlines()
    assert set(json.loads(lines[0])) == {"prompt", "dataset"}
    assert json.loads((tmp_path / "m.json").read_text())["test_pairs"] > 0
