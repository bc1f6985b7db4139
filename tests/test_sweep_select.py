from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from superhf.piece_times import cost_table, gnu_time
from superhf.sweep_select import (
    best_within,
    holds_choice,
    main,
    proxy_at,
    select_setting,
    sweep_report,
    sweep_table,
)


def pt(step: int, kl: float, proxy: float, gold: float = 0.0) -> dict:
    return {"step": step, "kl": kl, "proxy_mean": proxy, "gold_mean": gold}


CURVES = {
    "lr=1e-5": [pt(0, 0.0, 0.0), pt(8, 1.0, 0.2), pt(16, 3.0, 0.9)],  # 0.9 is over budget
    "lr=3e-5": [pt(0, 0.0, 0.0), pt(8, 1.5, 0.3), pt(16, 2.0, 0.25)],
    "lr=1e-4": [pt(0, 0.0, 0.0), pt(8, 2.5, 0.5)],  # never within the budget but at step 0
}


def test_the_best_point_within_the_budget_is_a_plain_loop() -> None:
    for pts in CURVES.values():
        for budget in (0.0, 1.0, 1.5, 2.0, 10.0):
            inside = [p for p in pts if p["kl"] <= budget]
            expect = max(inside, key=lambda p: (p["proxy_mean"], -p["step"]))
            got = best_within(pts, budget)
            assert (got["step"], got["proxy_mean"]) == (expect["step"], expect["proxy_mean"])
    assert best_within([pt(4, 3.0, 1.0)], 2.0) is None
    assert best_within([pt(4, float("nan"), 1.0), pt(8, 1.0, 0.1)], 2.0)["step"] == 8


def test_the_setting_is_chosen_by_proxy_within_the_budget_and_never_by_gold() -> None:
    winner, rows = select_setting(CURVES, kl_budget=2.0)
    assert winner == "lr=3e-5"
    assert [r["best"]["step"] for r in rows] == [8, 8, 0]
    assert select_setting(CURVES, kl_budget=10.0)[0] == "lr=1e-5"  # 0.9 now within
    flipped = copy.deepcopy(CURVES)  # gold says the opposite: the choice does not move
    for pts in flipped.values():
        for p in pts:
            p["gold_mean"] = -10 * p["proxy_mean"]
    assert select_setting(flipped, kl_budget=2.0) == (winner, rows)
    table = sweep_table(rows, winner, 2.0)
    assert "| lr=3e-5 | 8 | 1.500 | 0.3000 | yes |" in table
    assert "| lr=1e-4 | 0 | 0.000 | 0.0000 |  |" in table
    assert select_setting({"a": [pt(4, 3.0, 1.0)]}, 2.0)[0] is None


def test_the_command_reads_each_settings_curve_file(tmp_path: Path, capsys) -> None:
    args = []
    for name, pts in CURVES.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({"superhf": pts, "rlhf": []}))
        args += ["--setting", name, f"{tmp_path / name}.json"]
    main([*args, "--method", "superhf", "--kl-budget", "2"])
    assert "| lr=3e-5 | 8 | 1.500 | 0.3000 | yes |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="has no 'rlhf' curve"):
        main([*args, "--method", "rlhf", "--kl-budget", "2"])
    (tmp_path / "bad.json").write_text(json.dumps({"superhf": [{"step": 0, "kl": 0.0}]}))
    with pytest.raises(SystemExit, match=r"bad.json: point 0 lacks \['proxy_mean'\]"):
        main(
            [
                "--setting",
                "a",
                str(tmp_path / "bad.json"),
                "--method",
                "superhf",
                "--kl-budget",
                "2",
            ]
        )
    with pytest.raises(SystemExit, match="--setting a: no file nofile"):
        main(["--setting", "a", "nofile", "--method", "superhf", "--kl-budget", "2"])


def test_the_report_chooses_only_once_every_setting_has_run(tmp_path: Path, capsys) -> None:
    settings = {"kl_budget": 2, "superhf": {"settings": {n: {} for n in CURVES}}, "rlhf": {}}
    settings["rlhf"] = {"settings": {"a": {}}}  # no file: the method is left out
    for name, pts in list(CURVES.items())[:2]:
        (tmp_path / f"superhf-{name}.overopt.json").write_text(json.dumps({"superhf": pts}))
    text = sweep_report(settings, tmp_path)
    assert text.startswith("## superhf\n\nNot run yet: lr=1e-4.\n\nNo choice until every")
    assert "yes" not in text and "rlhf" not in text
    (tmp_path / "superhf-lr=1e-4.overopt.json").write_text(
        json.dumps({"superhf": CURVES["lr=1e-4"]})
    )
    text = sweep_report(settings, tmp_path)
    assert "Not run yet" not in text
    assert "| lr=3e-5 | 8 | 1.500 | 0.3000 | yes |" in text
    # a setting that ran with other overrides (its params.yaml) leaves the method unchosen
    settings["superhf"]["common"] = {"superhf.snapshot_kl": [0.25, 1], "superhf.optim.lr": 2.0e-5}
    params = "superhf:\n  snapshot_kl: [0.5, 1]\n  optim: {lr: 2e-05}\n"  # '2e-05': a string
    (tmp_path / "superhf-lr=3e-5.params.yaml").write_text(params)
    stale = sweep_report(settings, tmp_path)
    assert "other overrides than the file's now: lr=3e-5 (superhf.snapshot_kl)." in stale
    assert "yes" not in stale
    (tmp_path / "superhf-lr=3e-5.params.yaml").write_text(params.replace("0.5, 1", "0.25, 1.0"))
    assert sweep_report(settings, tmp_path) == text
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    main(["--report", str(tmp_path / "s.yaml"), str(tmp_path)])
    assert capsys.readouterr().out == text


def test_a_final_run_must_hold_the_chosen_settings_overrides(tmp_path: Path, capsys) -> None:
    """run_piece.sh seed: refused before training while the sweep has not chosen, or when
    params.yaml holds other values than the choice's (the sweep's ``common`` not required)."""
    spec = {"common": {"superhf.stop_kl": 4},
            "settings": {n: {"superhf.optim.lr": float(n[3:])} for n in CURVES}}  # fmt: skip
    settings = {"kl_budget": 2, "superhf": spec}
    for name, pts in list(CURVES.items())[:2]:
        (tmp_path / f"superhf-{name}.overopt.json").write_text(json.dumps({"superhf": pts}))
    chosen = {"superhf": {"optim": {"lr": "3e-05"}, "stop_kl": 10}}
    with pytest.raises(ValueError, match="chosen no setting yet: Not run yet: lr=1e-4. No choice"):
        holds_choice(settings, tmp_path, "superhf", chosen)
    (tmp_path / "superhf-lr=1e-4.overopt.json").write_text(
        json.dumps({"superhf": CURVES["lr=1e-4"]})
    )
    assert holds_choice(settings, tmp_path, "superhf", chosen) == "lr=3e-5"
    with pytest.raises(ValueError, match="chosen setting 'lr=3e-5' in superhf.optim.lr"):
        holds_choice(settings, tmp_path, "superhf", {"superhf": {"optim": {"lr": 1e-5}}})
    with pytest.raises(ValueError, match="no method 'rloo'"):
        holds_choice(settings, tmp_path, "rloo", chosen)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(chosen))
    main(["--report", str(tmp_path / "s.yaml"), str(tmp_path), "--holds-choice", "superhf",
          str(tmp_path / "p.yaml")])  # fmt: skip
    assert capsys.readouterr().out == "lr=3e-5\n"


def test_the_committed_hh_sweep_tables_are_what_its_curves_and_times_render() -> None:
    hh = Path(__file__).resolve().parents[1] / "results" / "hh"
    settings = yaml.safe_load((hh / "sweep_settings.yaml").read_text())
    text = sweep_report(settings, hh / "sweep", hh / "times")
    assert (hh / "sweep.md").read_text() == text
    assert text.replace("## ", "### ") in (hh / "README.md").read_text()


TIME_V = """\tCommand being timed: "dvc exp run"
\tElapsed (wall clock) time (h:mm:ss or m:ss): {wall}
\tMaximum resident set size (kbytes): 4185340
"""


def test_the_cost_is_read_from_gnu_time_reports(tmp_path: Path) -> None:
    assert gnu_time(TIME_V.format(wall="4:43.41")) == pytest.approx((283.41, 4.18534))
    assert gnu_time(TIME_V.format(wall="1:02:03"))[0] == pytest.approx(3723.0)
    with pytest.raises(ValueError, match="not a /usr/bin/time -v report"):
        gnu_time("Elapsed: 3 s")
    # a report lost (see run_piece.sh's timed): the wall time from its start and end lines
    lost = "start 2026-12-06T04:18:20Z commit abc\nend 2026-12-06T04:21:41Z\n"
    assert gnu_time(lost) == (201.0, None)
    (tmp_path / "sweep-superhf-a.txt").write_text(TIME_V.format(wall="4:43.41"))
    table = cost_table("superhf", {"a": CURVES["lr=1e-5"], "b": CURVES["lr=1e-4"]}, tmp_path)
    assert "| a | 16 | 4.7 | - | 4.2 |" in table
    assert "| b | 8 | - | - | - |" in table
    assert "the base, once" not in table
    # a training paused and resumed: its parts add up (the evaluation's report is not a part)
    (tmp_path / "sweep-superhf-a-resume-40.txt").write_text(TIME_V.format(wall="1:00"))
    (tmp_path / "sweep-superhf-a-evaluate.txt").write_text(TIME_V.format(wall="2:00"))
    table = cost_table("superhf", {"a": CURVES["lr=1e-5"]}, tmp_path)
    assert "| a | 16 | 5.7 | 2.0 | 4.2 |" in table
    for f in tmp_path.glob("sweep-superhf-a-*.txt"):
        f.unlink()
    (tmp_path / "sweep-base-superhf-evaluate.txt").write_text(TIME_V.format(wall="5:00"))
    table = cost_table("superhf", {"a": CURVES["lr=1e-5"]}, tmp_path)
    assert table.endswith("| the base, once for every setting | - | - | 5.0 | 4.2 |\n")


def test_the_proxy_at_the_budget_is_linear_in_sqrt_kl_at_the_first_crossing() -> None:
    pts = [pt(0, 0.0, 0.0), pt(8, 1.0, 0.2), pt(16, 4.0, 0.8), pt(24, 1.5, 5.0)]
    assert proxy_at(pts, 2.0) == pytest.approx(0.2 + (2**0.5 - 1) / (2 - 1) * 0.6)
    assert proxy_at(pts, 1.0) == pytest.approx(0.2 + 0.0)  # a point on the budget, then beyond
    assert proxy_at(pts[:2], 2.0) is None  # never beyond the budget
    assert proxy_at([pt(4, 3.0, 1.0)], 2.0) is None  # nothing within it to start from
    assert proxy_at([pt(0, 0.0, 0.0), pt(4, 4.0, 1.0)], 1.0) == pytest.approx(0.5)
    # a KL estimate below zero (evaluate's is not clamped) sits left of zero on the axis
    assert proxy_at([pt(2, -1.0, 0.0), pt(4, 4.0, 3.0)], 1.0) == pytest.approx(2 / 3 * 3.0)
