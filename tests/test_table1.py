"""Issue 12, part 6: metrics/data.json carries Table 1's counts as the paper defines them
(raw train-split rows, before the length filter and before test rows are carved out)."""

from __future__ import annotations

from pathlib import Path

from test_prepare import hh, make_local, write_gz

from superhf import data as prepare
from superhf.config.prepare import PrepareConfig


def test_table1_counts_are_raw_train_rows_beside_the_filtered_counts(tmp_path: Path) -> None:
    make_local(tmp_path)
    long_q = "x" * 2000  # dropped by the length filter, still counted in Table 1
    write_gz(
        tmp_path / "hh-rlhf/helpful-base/train.jsonl.gz",
        [hh(f"h{i}?") for i in range(4)] + [hh(long_q)],
    )
    _, _, m = prepare.run(
        PrepareConfig(source="local", data_dir=str(tmp_path), test_size_per_dataset=3)
    )
    d = m["datasets"]
    raw = {k: v["table1_raw_train_rows"] for k, v in d.items()}
    assert raw == {"red_team": 10, "harmless_base": 6, "helpful_base": 5, "webgpt": 5}
    assert m["table1_raw_train_rows"] == 26
    assert d["helpful_base"]["kept_train"] == 4 and d["helpful_base"]["dropped_too_long"] == 1
    assert d["red_team"]["kept_train"] == 7  # 3 of the 10 raw rows became test rows
