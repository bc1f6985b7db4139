"""``superhf.results``: the committed results' tables are rendered from metrics files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from superhf.errors import MissingInputError
from superhf.results import main, render, seed_tables, seeds_table
from superhf.stats import paired


def stat(mean: float, n: int = 40) -> dict:
    return {"mean": mean, "std": 0.1, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "n": n}


def model(mean: float, **extra) -> dict:
    return {"proxy": stat(mean), "gold": stat(mean / 2), "completion_chars": 120.4,
            "distinct_2": 0.91, "empty_share": 0.0, **extra}  # fmt: skip


def write_metrics(folder: Path) -> None:
    ev = {"base": model(0.1, kl_to_base=0.0), "best_of_n": model(0.3, n=4, kl_to_base_bound=0.636),
          "superhf": model(0.5, kl_to_base=1.25), "custom": model(0.2, kl_to_base=0.4),
          "test_prompts": 40}  # fmt: skip
    pt = {"method": "superhf", "step": 2, "reward_queries": 64, "kl": 0.5, "sqrt_kl": 0.7071,
          "proxy_mean": 0.2, "proxy_ci_low": 0.1, "proxy_ci_high": 0.3,
          "gold_mean": 0.05, "gold_ci_low": -0.01, "gold_ci_high": 0.11}  # fmt: skip
    overopt = {
        "test_prompts": 40,
        "superhf": [pt],
        "best_of_n": [{**pt, "method": "best_of_n", "n": 8}],
    }
    rm = {"test_pairs": 399, "proxy": {"train_pairs": 950, "test_accuracy": 0.6466},
          "gold": {"train_pairs": 951, "test_accuracy": 0.631}, "length_baseline_accuracy": 0.52}  # fmt: skip
    for name, obj in (
        ("eval.json", ev),
        ("overoptimisation.json", overopt),
        ("reward_model.json", rm),
    ):
        (folder / name).write_text(json.dumps(obj))
    comps = [{"model": m, "prompt": f"p{i}", "completion": "same" if m == "base" or i == 0 else f"{m}{i}",
               "proxy": base + 0.1 * i, "gold": base - 0.05 * i}
             for m, base in (("base", 0.0), ("superhf", 0.2), ("custom", 0.1)) for i in range(4)]  # fmt: skip
    (folder / "eval_completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in comps))
    (folder / "table4.md").write_text(
        "# Table 4 (this run)\n\n| model | x |\n|---|---|\n| base | 1 |\n"
    )


def test_tables_carry_the_metrics_numbers(tmp_path: Path) -> None:
    write_metrics(tmp_path)
    text = render(tmp_path)
    assert (
        "| proxy | 950 | 399 | 0.647 |" in text
        and "| length baseline (longer wins) | - | 399 | 0.520 |" in text
    )
    assert (
        "| best-of-4 | 0.300 [0.250, 0.350] | 0.150 [0.100, 0.200] | 0.636 (bound) | 120 | 0.910 | 0.000 |"
        in text
    )
    assert "| superhf | 0.500 [0.450, 0.550] | 0.250 [0.200, 0.300] | 1.250 |" in text
    assert "| custom |" in text  # a model outside the pipeline's four is listed too
    assert (
        "| superhf | 2 | 64 | 0.500 | 0.707 | 0.200 [0.100, 0.300] | 0.050 [-0.010, 0.110] |"
        in text
    )
    assert "| best_of_n | 8 | 64 |" in text  # best-of-n points are labelled by n
    assert "| base | 1 |" in text and "Table 4 (this run)" not in text


def test_a_missing_metrics_file_is_named(tmp_path: Path) -> None:
    write_metrics(tmp_path)
    (tmp_path / "overoptimisation.json").unlink()
    with pytest.raises(MissingInputError, match="overoptimisation.json"):
        render(tmp_path)


def test_cli_writes_the_file(tmp_path: Path) -> None:
    write_metrics(tmp_path)
    main(["--metrics", str(tmp_path), "--out", str(tmp_path / "t.md")])
    assert (tmp_path / "t.md").read_text() == render(tmp_path)


def test_paired_differences_by_prompt(tmp_path: Path) -> None:
    write_metrics(tmp_path)
    from superhf.io import read_jsonl

    rows = read_jsonl(tmp_path / "eval_completions.jsonl")
    d = paired(rows, "superhf", "base")  # every prompt: proxy +0.2, gold +0.2
    assert d["n"] == 4 and d["same_completion"] == 0.25  # prompt p0's completions are equal
    assert d["proxy"]["mean"] == pytest.approx(0.2) and d["gold"]["ci_low"] == pytest.approx(0.2)
    assert (
        "| superhf - base | 4 | +0.200 [+0.200, +0.200] | +0.200 [+0.200, +0.200] | 0.25 |"
        in render(tmp_path)
    )
    with pytest.raises(MissingInputError, match="'rlhf'"):
        paired(rows, "rlhf", "base")


def test_seeds_table_has_a_row_per_seed_and_their_spread(tmp_path: Path) -> None:
    runs = []
    for seed, shift in ((0, 0.0), (1, 0.1), (2, 0.2)):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        write_metrics(folder)
        ev = json.loads((folder / "eval.json").read_text())
        ev["superhf"]["gold"]["mean"] = 0.25 + shift
        (folder / "eval.json").write_text(json.dumps(ev))
        runs.append((f"seed {seed}", folder))
    text = seeds_table(runs)
    assert text.count("| seed ") == 4  # header and three rows
    assert (
        "| mean +- sd over 3 seeds | 0.500 +- 0.000 | 0.350 +- 0.100 | 1.250 +- 0.000 | |" in text
    )


def test_each_trained_method_gets_a_table_of_the_seeds_that_evaluated_it(tmp_path: Path) -> None:
    """A main run (SuperHF and PPO) and seed folders of one method each, sharing names."""
    runs = []
    for name, drop in (("seed 0", None), ("seed 1", "rlhf"), ("seed 1", "superhf")):
        folder = tmp_path / f"{name}-{drop}".replace(" ", "")
        folder.mkdir()
        write_metrics(folder)
        ev = json.loads((folder / "eval.json").read_text())
        ev["rlhf"] = {**ev["superhf"], "kl_to_base": 2.5}
        if drop == "superhf":  # PPO's seed 1 is below SuperHF's seeds by gold
            ev["rlhf"]["gold"] = {**ev["rlhf"]["gold"], "mean": 0.2}
        ev.pop(drop, None)
        (folder / "eval.json").write_text(json.dumps(ev))
        with (folder / "eval_completions.jsonl").open("a") as f:
            f.writelines(json.dumps({"model": "rlhf", "prompt": f"p{i}", "completion": "x",
                                     "proxy": 0.0, "gold": 0.0}) + "\n" for i in range(4))  # fmt: skip
        runs.append((name, folder))
    tables = {
        title.split()[-1] if "seeds of" in title else "both": t for title, t in seed_tables(runs)
    }
    assert list(tables) == ["SuperHF", "PPO", "both"]
    assert tables["SuperHF"].count("| seed ") == 3 and "1.250 +- 0.000" in tables["SuperHF"]
    assert tables["PPO"].count("| seed ") == 3 and "2.500 +- 0.000" in tables["PPO"]
    assert "## Training seeds of PPO" in render(runs[0][1], runs)
    # gold: SuperHF 0.25, 0.25; PPO 0.25, 0.2 -> higher in 2 of the 4 pairs; proxy: all equal
    assert "| gold | 0.250 | 0.225 | +0.025 | 2 of 4 |" in tables["both"]
    assert "| proxy | 0.500 | 0.500 | +0.000 | 0 of 4 |" in tables["both"]
    assert seed_tables(runs[1:2]) == [("Training seeds of SuperHF", seeds_table(runs[1:2]))]


def test_committed_harmless_tables_are_what_the_metrics_render() -> None:
    """results/harmless/tables.md is rendered from the committed metrics, never edited."""
    from conftest import REPO

    root = REPO / "results" / "harmless"
    seeds = [("seed 0 (main run)", root / "metrics")] + [
        (f"seed {s}", root / "seeds" / f"{m}-seed{s}") for m in ("superhf", "rlhf") for s in (1, 2)
    ]
    tables = (root / "tables.md").read_text()
    assert tables == render(root / "metrics", seeds)
    # the README's copy under "# Tables" (after its one-line note) is the same text, its
    # headings one level down
    body = (root / "README.md").read_text().split("\n# Tables\n", 1)[1].strip().split("\n\n", 1)[1]
    assert re.sub(r"^### ", "## ", body, flags=re.M).strip() == tables.strip()


def test_kl_cells_carry_the_standard_error_or_the_bound() -> None:
    """Issue 22: a sampled KL shows its standard error (a negative one as it is); best-of-n's
    curve KL is marked as a bound; files from before kl_kind render as they did."""
    from superhf.results import curves_table, models_table

    ev = {"superhf": model(0.5, kl_to_base=-0.031, kl_to_base_se=0.012),
          "best_of_n": model(0.3, n=4, kl_to_base_bound=0.636)}  # fmt: skip
    table = models_table(ev)
    assert "| -0.031 +- 0.012 |" in table and "| 0.636 (bound) |" in table
    pt = {"method": "rlhf", "step": 1, "reward_queries": 8, "kl": -0.04, "kl_se": 0.02,
          "kl_kind": "estimate", "sqrt_kl": -0.2, "proxy_mean": 0.2, "proxy_ci_low": 0.1,
          "proxy_ci_high": 0.3, "gold_mean": 0.0, "gold_ci_low": -0.1, "gold_ci_high": 0.1}  # fmt: skip
    bound = {**pt, "kl": 0.636, "kl_se": None, "kl_kind": "upper_bound", "sqrt_kl": 0.797, "n": 4}
    old = {k: v for k, v in pt.items() if k not in ("kl_se", "kl_kind")}
    rows = curves_table({"rlhf": [pt, old], "best_of_n": [bound]}).splitlines()[2:]
    assert "| -0.040 +- 0.020 | -0.200 |" in rows[0]
    assert "| -0.040 | -0.200 |" in rows[1]
    assert "| <= 0.636 (bound) | 0.797 |" in rows[2]
