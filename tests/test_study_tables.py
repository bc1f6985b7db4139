"""The hh study's tables (``superhf.study_tables``, ``python -m superhf.results --study``)
rendered from a small synthetic metrics folder, and the committed results' tables equal
what their metrics render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from superhf.errors import MissingInputError
from superhf.judges import heldout_report
from superhf.results import main, readme_tables, render
from superhf.study_stats import hierarchical_bootstrap, paired_difference
from superhf.study_tables import (
    interval_cell,
    model_array,
    render_study,
    seed_curves,
    seed_curves_table,
    seeds_array,
)

K, PROMPTS = 2, 12


def completions(models: dict[str, float], seed: int) -> list[dict]:
    """k samples of each prompt per model, evaluate's order; gold grows with length."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, shift in models.items():
        for p in range(PROMPTS):
            for j in range(K):
                text = "word " * int(rng.integers(1, 30))
                gold = 0.01 * len(text) + shift + float(rng.normal(0, 0.1))
                rows.append(
                    {
                        "model": name,
                        "prompt": f"p{p}",
                        "dataset": "x",
                        "completion": text,
                        "proxy": gold + float(rng.normal(0, 0.2)),
                        "gold": gold,
                        "sample": j,
                    }
                )
    return rows


def write(folder: Path, name: str, obj) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if name.endswith(".jsonl"):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in obj))
    else:
        (folder / name).write_text(json.dumps(obj))


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, Path]:
    """A main run (base, best-of-n, SuperHF, PPO) and a second seed of SuperHF."""
    rng = np.random.default_rng(0)
    pairs = [
        {"chosen": "a" * int(rng.integers(1, 9)), "rejected": "b" * int(rng.integers(1, 9))}
        for _ in range(40)
    ]
    scores = {
        w: (list(rng.normal(0.3, 1, 40)), list(rng.normal(0, 1, 40))) for w in ("proxy", "gold")
    }
    rm = {
        "proxy": {"train_pairs": 100},
        "gold": {"train_pairs": 200},
        "heldout": heldout_report(pairs, scores),
    }
    main_run, seed1 = tmp_path / "metrics", tmp_path / "seed1"
    write(main_run, "reward_model.json", rm)
    rows = completions({"base": 0.0, "best_of_n": 0.3, "superhf": 0.2, "rlhf": 0.1}, 1)
    write(main_run, "eval_completions.jsonl", rows)
    write(
        main_run,
        "eval.json",
        {
            "base": {"kl_to_base": 0.0, "kl_to_base_se": 0.0},
            "best_of_n": {"kl_to_base_bound": 0.636, "n": 4},
            "superhf": {"kl_to_base": 1.2, "kl_to_base_se": 0.1},
            "rlhf": {"kl_to_base": 0.5, "kl_to_base_se": 0.05},
        },
    )
    write(seed1, "eval_completions.jsonl", completions({"base": 0.0, "superhf": 0.25}, 2))
    write(seed1, "eval.json", {"superhf": {"kl_to_base": 1.0, "kl_to_base_se": 0.1}})
    return main_run, seed1


def test_a_models_array_is_prompt_by_sample_in_evaluates_order() -> None:
    rows = [{"model": "m", "v": 10 * p + j, "sample": j} for p in range(3) for j in range(2)]
    assert model_array(rows, lambda r: r["v"]).tolist() == [[0, 1], [10, 11], [20, 21]]
    with pytest.raises(ValueError, match="not 2 per prompt"):
        model_array(rows[:-1], lambda r: r["v"])


def test_study_tables_carry_the_statistics_of_the_rows(study) -> None:
    main_run, seed1 = study
    text = render_study(main_run, [("seed 1", seed1)])
    rows = [json.loads(x) for x in (main_run / "eval_completions.jsonl").read_text().splitlines()]
    more = [json.loads(x) for x in (seed1 / "eval_completions.jsonl").read_text().splitlines()]
    mine = [[r for r in rs if r["model"] == "superhf"] for rs in (rows, more)]
    gold = seeds_array(mine, lambda r: r["gold"])
    assert gold.shape == (2, PROMPTS, K)
    iv = hierarchical_bootstrap(gold)
    assert f"| superhf | 2 x {PROMPTS} x {K} | " in text
    assert (
        interval_cell(iv.mean, iv.low, iv.high) in text.split("| superhf | 2 x")[1].split("\n")[0]
    )
    assert f"| base | 1 x {PROMPTS} x {K} | " in text  # the base: the main run only
    assert "1.100 (sd 0.141 over 2 seeds)" in text and "<= 0.636 (bound)" in text
    assert "| 0.500 +- 0.050 |" in text  # PPO: one run, its KL with its SE
    base = seeds_array([[r for r in rows if r["model"] == "base"]], lambda r: r["gold"])
    d = paired_difference(gold, base)
    assert "| superhf - base | " in text and "| superhf - rlhf | " in text
    assert interval_cell(d.mean, d.low, d.high, signed=True) in text
    assert "gold, length-controlled" in text  # gold grows with length here
    assert "| length only: shorter wins | - |" in text and "| proxy and gold agree | - |" in text
    assert "| all | 96 |" in text  # correlation over every main-run sample: 4 x 12 x 2


def test_missing_metrics_leave_their_tables_out(study, tmp_path: Path) -> None:
    assert render_study(tmp_path / "empty") == ""
    main_run, _ = study
    (main_run / "eval_completions.jsonl").unlink()
    text = render_study(main_run)
    assert text.startswith("## Reward models on held-out pairs") and "Paired" not in text
    assert "## Data" not in text and "## Reward models: training" not in text


def test_a_readme_whose_tables_differ_from_the_metrics_is_caught(study) -> None:
    main_run, seed1 = study
    text = render_study(main_run, [("seed 1", seed1)])
    readme = "# hh\n\nReading.\n\n# Tables\n\n(rendered)\n\n" + text.replace("## ", "### ")
    assert readme_tables(readme) == text
    assert readme_tables(readme.replace("| superhf | 2 x", "| superhf | 3 x")) != text


HARMLESS = REPO / "results" / "harmless"
HARMLESS_SEEDS = [
    ("seed 0 (main run)", "metrics"),
    ("seed 1", "seeds/superhf-seed1"),
    ("seed 2", "seeds/superhf-seed2"),
    ("seed 1", "seeds/rlhf-seed1"),
    ("seed 2", "seeds/rlhf-seed2"),
]


def test_the_harmless_readme_tables_are_what_its_metrics_render() -> None:
    """The committed tables (tables.md and the README's) against a fresh render: the
    bootstrap, now numpy, draws the same resamples torch drew when they were written."""
    seeds = [(name, HARMLESS / folder) for name, folder in HARMLESS_SEEDS]
    text = render(HARMLESS / "metrics", seeds)
    assert (HARMLESS / "tables.md").read_text() == text
    assert readme_tables((HARMLESS / "README.md").read_text()) == text


def test_results_and_figures_import_no_torch() -> None:
    code = "import sys, superhf.results, superhf.figures; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_renders_the_study(study, tmp_path: Path) -> None:
    main_run, seed1 = study
    main(
        [
            "--study",
            "--metrics",
            str(main_run),
            "--seed-run",
            f"s1={seed1}",
            "--out",
            str(tmp_path / "t.md"),
        ]
    )
    assert (tmp_path / "t.md").read_text() == render_study(main_run, [("s1", seed1)])


DATA = {
    "split": "parts",
    "distinct_prompts": 30,
    "datasets": {"harmless_base": {"rows": 20}, "helpful_base": {"rows": 14}},
    "parts": {
        name: {"prompts": n, "rows_harmless_base": n + 1, "rows_helpful_base": n, **pairs}
        for name, n, pairs in [
            ("reward_train", 9, {"pairs": 18}),
            ("reward_heldout", 5, {"pairs": 10}),
            ("policy", 4, {}),
            ("validation", 3, {}),
            ("eval", 2, {}),
        ]
    },
    "extra_policy_prompts": {"red_team": {"read": 7, "dropped_repeat_or_overlap": 2, "kept": 5}},
}
RM_TRAINED = {
    "name": "minilm",
    "proxy": {"train_pairs": 6, "steps": 3, "loss_first_quarter": 0.7, "loss_last_quarter": 0.5,
              "backbone": "minilm", "parameters": 22_713_601},
    "gold": {"train_pairs": 12, "steps": 6, "loss_first_quarter": 0.69, "loss_last_quarter": 0.6,
             "backbone": "smollm2-135m-instruct", "parameters": 134_515_584},
    "relabelled": {"pairs": 6, "swapped": 2, "share_swapped": 2 / 6},
}  # fmt: skip


def test_the_study_inputs_tables_show_the_split_and_the_training(tmp_path: Path) -> None:
    write(tmp_path, "data.json", DATA)
    write(tmp_path, "reward_model.json", RM_TRAINED)
    text = render_study(tmp_path)
    assert text.startswith("## Data: hh-rlhf split by first prompt")
    assert "| reward_train: reward models' training pairs | 9 | 10 | 9 | 18 |" in text
    assert "| eval: evaluation prompts | 2 | 3 | 2 | - |" in text
    assert "| all (30 distinct first prompts) | - | 20 | 14 | - |" in text
    assert "| policy, extra: red_team | +5 (7 read, 2 dropped) |" in text
    assert "## Reward models: training" in text and "on held-out pairs" not in text  # no heldout
    assert "| proxy | minilm | 22.7M | 6 | gold's (2 of 6 swapped, 33.3%) | 3 | 0.7000 -> 0.5000 |" in text  # fmt: skip
    assert "| gold | smollm2-135m-instruct | 134.5M | 12 | human | 6 | 0.6900 -> 0.6000 |" in text
    trained_top = {**RM_TRAINED, "gold": {**RM_TRAINED["gold"], "trainable_parameters": 21_241_728}}
    write(tmp_path, "reward_model.json", trained_top)  # gold_recipe.train_layers
    assert "| smollm2-135m-instruct | 134.5M (21.2M trained) | 12 |" in render_study(tmp_path)
    write(tmp_path, "data.json", {**DATA, "split": "random"})  # the paper's split: no parts
    assert "## Data" not in render_study(tmp_path)


def test_gold_recipes_tried_are_one_row_each_in_file_order(tmp_path: Path) -> None:
    heldout = {
        "gold": {"accuracy": 0.6, "ci_low": 0.5, "ci_high": 0.7, "n": 9},
        "proxy": {"accuracy": 0.55, "ci_low": 0.45, "ci_high": 0.65, "n": 9},
        "agreement": {"agreement": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 9},
    }
    top = {**RM_TRAINED["gold"], "trainable_parameters": 21_241_728}
    write(tmp_path / "gold_recipes", "2-top.json", {**RM_TRAINED, "gold": top, "heldout": heldout})
    write(tmp_path / "gold_recipes", "1-all.json", {**RM_TRAINED, "heldout": heldout})
    text = render_study(tmp_path)
    assert "## Gold recipes tried" in text
    one, two = (line for line in text.splitlines() if line.startswith(("| 1-all", "| 2-top")))
    assert one == (
        "| 1-all | 134.5M / 134.5M | 6 | 0.6900 -> 0.6000 | 0.600 [0.500, 0.700] | "
        "0.550 [0.450, 0.650] | 0.800 [0.700, 0.900] | 33.3% |"
    )
    assert two.startswith("| 2-top | 21.2M / 134.5M | 6 |")


def test_the_hh_readme_tables_are_what_its_metrics_render() -> None:
    hh = REPO / "results" / "hh"
    # every seed run beside the main run (seeds/seedK/eval.json), named as README's command does
    seeds = [
        (f"seed {f.parent.name[4:]}", f.parent) for f in sorted(hh.glob("seeds/seed*/eval.json"))
    ]
    text = render_study(hh / "metrics", seeds)
    assert text.startswith("## Data: hh-rlhf split by first prompt")
    assert (hh / "tables.md").read_text() == text
    assert readme_tables((hh / "README.md").read_text()) == text


def test_the_proxys_policy_pairs_are_one_row_with_their_held_out_accuracy(tmp_path: Path) -> None:
    acc = lambda a, n: {"accuracy": a, "ci_low": a - 0.1, "ci_high": a + 0.1, "n": n}  # noqa: E731
    pp = {
        "prompts": 10, "pairs": 8, "dropped": {"same_text": 1, "empty": 0, "tie": 1},
        "train_pairs": 6, "heldout_pairs": 2, "gold_longer_wins": acc(0.625, 8),
        "proxy_heldout": acc(0.5, 2),
    }  # fmt: skip
    write(tmp_path, "reward_model.json", {**RM_TRAINED, "policy_pairs": pp})
    text = render_study(tmp_path)
    assert "## The proxy's pairs of base-policy samples, ordered by the gold" in text
    assert (
        "| 10 | 8 (1 same text, 0 empty, 1 tie) | 6 / 2 | 0.625 [0.525, 0.725] | "
        "0.500 [0.400, 0.600] (n=2) |"
    ) in text
    write(tmp_path, "reward_model.json", RM_TRAINED)  # policy_pairs off: no table
    assert "base-policy samples" not in render_study(tmp_path)


def curve(kls: list[float], gold: list[float]) -> list[dict]:
    return [
        {"step": i, "kl": k, "sqrt_kl": k**0.5, "gold_mean": g, "proxy_mean": 2 * g}
        for i, (k, g) in enumerate(zip(kls, gold))
    ]


def test_seed_curves_read_every_seed_at_the_same_kl(tmp_path: Path) -> None:
    main_run = {
        "superhf": curve([0, 1, 3], [0.0, 1.0, 2.0]),
        "best_of_n": curve([0, 0.3], [0.0, 0.1]),
    }
    seed1 = {"superhf": curve([0, 2, 6], [0.0, 0.0, 4.0]), "best_of_n": curve([0], [9.0])}
    curves = seed_curves([main_run, seed1, None])
    assert [len(curves[m]) for m in ("superhf", "best_of_n")] == [2, 1]  # best-of-n: main only
    table = seed_curves_table(curves, levels=(1.0, 4.0))
    # KL 1: seed 0 at its point (1.0), seed 1 halfway to its KL-2 point (0.0): mean 0.5
    assert "| superhf | 1 | 2 of 2 | 1.000 (0.000 .. 2.000) | 0.500 (0.000 .. 1.000) |" in table
    # KL 4: only seed 1 reaches it (0 + (4 - 2) / 4 * 4 = 2)
    assert "| superhf | 4 | 1 of 2 | 4.000 | 2.000 |" in table
    # best-of-n: the main run's pool only (seed 1's 9.0 ignored), read at its bound after the
    # trained methods; KL 1 past its last point (0.3): not reached
    assert table.index("| superhf |") < table.index("| best_of_n |")
    assert "| best_of_n | <= 1 (bound) | - | - | - |" in table
    table = seed_curves_table(curves, levels=(0.15,))
    assert "| best_of_n | <= 0.15 (bound) | the pool | 0.100 | 0.050 |" in table


def test_study_figures_draw_the_main_run_and_every_seed(tmp_path: Path) -> None:
    from superhf.stages.study_figures import main as figures

    base = {"test_prompts": 4}
    for name, kls in (("metrics", [0, 1, 3]), ("seed1", [0, 2, 6])):
        pts = [{**p, "reward_queries": 32 * p["step"]} for p in curve(kls, [0.0, 0.5, 0.2])]
        for p in pts:
            for w in ("gold", "proxy"):
                p[f"{w}_ci_low"], p[f"{w}_ci_high"] = p[f"{w}_mean"] - 0.1, p[f"{w}_mean"] + 0.1
        write(tmp_path / name, "overoptimisation.json", {**base, "superhf": pts})
    out = tmp_path / "figs"
    written = figures(
        [
            "--metrics",
            str(tmp_path / "metrics"),
            "--seed-run",
            f"s1={tmp_path / 'seed1'}",
            "--out",
            str(out),
        ]
    )
    assert [p.name for p in written] == ["overoptimisation.png", "overopt_seeds.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    with pytest.raises(MissingInputError, match="seed2/overoptimisation.json"):
        figures(
            [
                "--metrics",
                str(tmp_path / "metrics"),
                "--seed-run",
                f"s2={tmp_path / 'seed2'}",
                "--out",
                str(out),
            ]
        )


def test_the_curves_title_says_best_of_n_pool_has_fewer_prompts(tmp_path: Path) -> None:
    def pts(method: str, **extra) -> list[dict]:
        out = curve([0, 1], [0.0, 0.5])
        for p in out:
            p.update(method=method, reward_queries=4 * p["step"], **extra)
            for w in ("gold", "proxy"):
                p[f"{w}_ci_low"], p[f"{w}_ci_high"] = p[f"{w}_mean"] - 0.1, p[f"{w}_mean"] + 0.1
        return out

    overopt = {"test_prompts": 320, "superhf": pts("superhf"), "best_of_n": pts("best_of_n")}
    write(tmp_path, "overoptimisation.json", overopt)
    assert "## Over-optimisation curves (n=320 prompts per point)\n" in render_study(tmp_path)
    overopt["best_of_n"] = pts("best_of_n", prompts=128)
    write(tmp_path, "overoptimisation.json", overopt)
    title = (
        "## Over-optimisation curves (n=320 prompts per point; best-of-n: the first 128 of them)"
    )
    assert title in render_study(tmp_path)


def equal_kl():
    import importlib.util

    spec = importlib.util.spec_from_file_location("equal_kl", REPO / "results/hh/equal_kl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_seeds_gain_at_a_kl_weighs_the_points_of_its_bracket() -> None:
    ek = equal_kl()
    kl = [0.0, 1.0, 3.0]
    c, from_base = ek.gain_weights(kl, 2.0)  # halfway from the KL-1 point to the KL-3 one
    assert np.allclose(c, [-1.0, 0.5, 0.5]) and not from_base
    c, from_base = ek.gain_weights(kl, 0.5)  # a line from the base: the base counted once
    assert np.allclose(c, [-0.5, 0.5, 0.0]) and from_base
    c, from_base = ek.gain_weights(kl, 1.0)  # on a point
    assert np.allclose(c, [-1.0, 1.0, 0.0]) and not from_base
    assert ek.gain_weights(kl, 4.0) is None
    pts = [
        {"kl": k, "gold_mean": y, "gold_ci_low": y - ek.Z * e, "gold_ci_high": y + ek.Z * e}
        for k, y, e in zip(kl, [0.0, 0.2, 0.6], [0.1, 0.2, 0.3])
    ]
    mean, se, _ = ek.method_gain(pts, "gold", 2.0)
    assert mean == pytest.approx(0.4)
    assert se == pytest.approx((0.1**2 + 0.25 * 0.2**2 + 0.25 * 0.3**2) ** 0.5)
    mean, se, _ = ek.method_gain(pts, "gold", 0.5)  # w (y1 - y0): w^2 (se0^2 + se1^2)
    assert se == pytest.approx(0.5 * (0.1**2 + 0.2**2) ** 0.5)


def test_the_hh_equal_kl_reading_is_what_its_pieces_and_curves_give() -> None:
    hh = REPO / "results" / "hh"
    if not (hh / "equal_kl.md").is_file():
        pytest.skip("no committed equal-KL reading")
    out = subprocess.run(
        [sys.executable, str(hh / "equal_kl.py")], capture_output=True, text=True, check=True
    )
    assert out.stdout == (hh / "equal_kl.md").read_text()
    assert out.stdout in (hh / "README.md").read_text()
