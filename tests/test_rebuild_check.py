"""A rebuild of the hh study's reward models is accepted to float precision: the proxy's
recorded pairs the same, every number within the tolerance, times and provenance ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superhf import proxy_pairs
from superhf.errors import BadInputError
from superhf.rebuild_check import differences, flatten, main

STUDY = {
    "proxy": {"test_accuracy": 0.5512, "loss_last_quarter": 0.63501, "steps": 185},
    "heldout": {"proxy": {"accuracy": 0.5512}, "gold": {"accuracy": 0.5571}},
    "policy_pairs": {"sampling_s": 1007.0, "dropped": {"tie": 0}},
    "proxy_pairs": {"rows": 3, "sha256": "ab"},
}


def rebuilt(**changes: object) -> dict:
    here = json.loads(json.dumps(STUDY))
    for path, value in changes.items():
        *keys, last = path.split("__")
        d = here
        for k in keys:
            d = d[k]
        d[last] = value
    return here


def test_flatten_keys_leaves_by_their_path() -> None:
    assert flatten({"a": {"b": 1, "c": [2, {"d": 3}]}}) == {"a.b": 1, "a.c.0": 2, "a.c.1.d": 3}


def test_float_noise_times_and_provenance_are_the_study() -> None:
    here = rebuilt(proxy__loss_last_quarter=0.63502, policy_pairs__sampling_s=608.0)
    here["policy_pairs"]["from"] = "results/hh/proxy_pairs.jsonl.gz"
    del here["policy_pairs"]["dropped"]  # a read record does not know what was dropped
    assert differences(STUDY, here, 0.01) == []


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"proxy_pairs__sha256": "cd"}, "proxy_pairs.sha256"),  # other pairs
        ({"heldout__proxy__accuracy": 0.5618}, "heldout.proxy.accuracy"),  # another proxy
        ({"proxy__steps": 186}, "proxy.steps"),
    ],
)
def test_other_pairs_or_a_number_past_the_tolerance_is_not(change: dict, key: str) -> None:
    (line,) = differences(STUDY, rebuilt(**change), 0.01)
    assert line.startswith(key + ":")


def test_a_rebuild_without_the_pairs_record_is_not() -> None:
    here = rebuilt()
    del here["proxy_pairs"]
    assert differences(STUDY, here, 0.01) == [
        "proxy_pairs.sha256: missing",
        "proxy_pairs.rows: missing here",
    ]


def test_a_number_only_the_study_reports_is_missing_here() -> None:
    here = rebuilt()
    del here["proxy"]["steps"]
    assert differences(STUDY, here, 0.01) == ["proxy.steps: missing here"]


def test_the_command_exits_naming_the_difference(tmp_path: Path, capsys) -> None:
    study, here = tmp_path / "study.json", tmp_path / "here.json"
    study.write_text(json.dumps(STUDY))
    here.write_text(json.dumps(rebuilt(proxy_pairs__sha256="cd")))
    with pytest.raises(SystemExit, match="proxy_pairs.sha256: 'ab' in the study, 'cd' here"):
        main([str(study), str(here)])
    with pytest.raises(SystemExit, match=f"rebuild_check: no metrics file at {tmp_path}/no.json"):
        main([str(study), str(tmp_path / "no.json")])
    main([str(study), str(study)])
    assert "is the study's to within 0.01" in capsys.readouterr().out


TRAIN = [
    {"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}", "dataset": "d"} for i in range(5)
]
PROMPTS = [{"prompt": "x"}, {"prompt": "y"}, {"prompt": "x"}]


def test_the_record_decodes_to_the_pairs_it_encoded() -> None:
    share = [TRAIN[3], TRAIN[1]]
    relabelled = [TRAIN[3], {**TRAIN[1], "chosen": "r1", "rejected": "c1"}]
    swapped = proxy_pairs.swapped_flags(share, relabelled)
    assert swapped == [False, True]
    train = [{"prompt": "x", "chosen": "long", "rejected": "s"}]
    held = [{"prompt": "y", "chosen": "a", "rejected": "b"}]
    rows = proxy_pairs.encode(share, swapped, TRAIN, train, held, PROMPTS)
    assert rows[:2] == [{"hh": 3, "swap": False}, {"hh": 1, "swap": True}]
    assert rows[2]["prompt"] == 0 and rows[3] == {**held[0], "prompt": 1, "heldout": True}
    assert proxy_pairs.decode(rows, TRAIN, PROMPTS, "rec") == (relabelled, train, held)


def test_the_record_is_the_same_bytes_for_the_same_rows(tmp_path: Path) -> None:
    rows = proxy_pairs.encode([TRAIN[0]], [False], TRAIN, [], [], PROMPTS)
    proxy_pairs.write(tmp_path / "a.jsonl.gz", rows)
    proxy_pairs.write(tmp_path / "b.jsonl.gz", rows)
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert proxy_pairs.sha256(rows) != proxy_pairs.sha256([{"hh": 0, "swap": True}])


@pytest.mark.parametrize(
    "row",
    [{"hh": 5, "swap": False}, {"hh": True, "swap": False}, {"hh": 0, "swap": 1},
     {"prompt": 3, "chosen": "a", "rejected": "b", "heldout": False}, {"hh": 0}],
)  # fmt: skip
def test_a_row_that_does_not_fit_the_inputs_is_named(row: dict) -> None:
    with pytest.raises(BadInputError, match="rec row 2: expected"):
        proxy_pairs.decode([{"hh": 0, "swap": False}, row], TRAIN, PROMPTS, "rec")
