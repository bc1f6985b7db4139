"""Evaluate in pieces: ``--only ... --piece-out`` per piece, ``evaluate_merge`` combines
them, and the combined outputs are those of one run over everything; the best-of-n pool in
ranges of its prompts (``--curve-prompts``) joins into the curve of one run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params

from superhf.errors import BadInputError
from superhf.eval_pieces import CURVE_PIECE, PIECE_FORMAT, combine, pool_range
from superhf.models import load_tokenizer, save_model
from superhf.overopt import best_of_n_kl
from superhf.stages import evaluate, evaluate_merge
from superhf.tiny import tiny_causal_lm


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Tiny base, two trained methods (one with a snapshot), prompts and params."""
    root = tmp_path_factory.mktemp("pieces")
    policy, reward = make_tiny_models(root)
    tok = load_tokenizer(policy)
    for name, seed in (("superhf", 3), ("rlhf", 4)):
        save_model(tiny_causal_lm(tok, seed=seed), tok, root / name, {"source": "tiny"})
        (root / name / "superhf_meta.json").write_text(json.dumps({"step": 4, "reward_queries": 8}))
    snaps = root / "superhf_snaps"
    snaps.mkdir()
    shutil.copytree(policy, snaps / "s2")
    (snaps / "index.json").write_text(json.dumps([{"step": 2, "reward_queries": 4, "path": "s2"}]))
    prompts = root / "test.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "dataset": "x"}) + "\n" for p in PROMPTS))
    section = {
        "generation": TINY_GEN,
        "best_of_n": 2,
        "best_of_n_curve": 2,
        "bootstrap_samples": 20,
        "samples_per_prompt": 2,
        "score_cache": False,
        "benchmarks": {"enabled": False},
    }
    params = write_params(root / "p.yaml", evaluate=section)
    args = [
        "--params",
        str(params),
        "--prompts",
        str(prompts),
        "--model",
        f"base={policy}",
        "--model",
        f"superhf={root / 'superhf'}",
        "--model",
        f"rlhf={root / 'rlhf'}",
        "--reward",
        str(reward),
        "--gold",
        str(reward),
        "--snapshots",
        f"superhf={snaps}",
    ]
    return root, args


def outputs(folder: Path) -> list[str]:
    return [
        "--metrics",
        str(folder / "eval.json"),
        "--table",
        str(folder / "table4.md"),
        "--completions",
        str(folder / "c.jsonl"),
        "--overopt",
        str(folder / "o.json"),
        "--overopt-plots",
        str(folder / "overopt"),
    ]


@pytest.fixture(scope="module")
def one_run(setup) -> Path:
    """The outputs of one run over everything."""
    root, args = setup
    evaluate.main([*args, *outputs(root / "one")])
    return root / "one"


OVEROPT_FILES = ("o.json", *(f"overopt/{m}.csv" for m in ("superhf", "rlhf", "best_of_n")))


def test_pieces_combine_into_the_outputs_of_one_run(setup, one_run) -> None:
    root, args = setup
    pieces = []
    for i, only in enumerate([["base", "best_of_n"], ["superhf"], ["rlhf", "best_of_n_curve"]]):
        pieces += ["--piece", str(root / f"piece{i}.json")]
        picks = [x for name in only for x in ("--only", name)]
        evaluate.main([*args, *picks, "--piece-out", pieces[-1]])
    params = args[args.index("--params") + 1]
    evaluate_merge.main(["--params", params, *pieces, *outputs(root / "merged")])
    for name in ("eval.json", "table4.md", "c.jsonl", *OVEROPT_FILES):
        one, merged = (root / d / name for d in ("one", "merged"))
        assert merged.read_text() == one.read_text(), name
    ev = json.loads((root / "one" / "eval.json").read_text())
    assert list(ev)[:5] == ["base", "superhf", "rlhf", "samplers", "best_of_n"]
    curves = json.loads((root / "one" / "o.json").read_text())
    assert [p["step"] for p in curves["superhf"]] == [0, 2, 4] and "rlhf" not in curves


def test_pieces_that_name_only_their_own_models_combine_into_one_run(setup, one_run) -> None:
    """A study's methods arrive over sessions: each piece's command names the base and its
    own model only, and the pieces still give the outputs of one run over everything; a
    name given two folders is refused."""
    root, args = setup

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    base = ["--params", value("--params"), "--prompts", value("--prompts"),
            "--model", value("--model")]  # fmt: skip
    common = ["--reward", value("--reward"), "--gold", value("--gold")]
    commands = {
        "base": [*base, *common, "--only", "base", "--only", "best_of_n"],
        "superhf": [*base, "--model", f"superhf={root / 'superhf'}", *common,
                    "--snapshots", f"superhf={root / 'superhf_snaps'}", "--only", "superhf"],
        "rlhf": [*base, "--model", f"rlhf={root / 'rlhf'}", *common,
                 "--only", "rlhf", "--only", "best_of_n_curve"],
    }  # fmt: skip
    pieces = []
    for name, command in commands.items():
        pieces += ["--piece", str(root / f"own_{name}.json")]
        evaluate.main([*command, "--piece-out", pieces[-1]])
    params = value("--params")
    evaluate_merge.main(["--params", params, *pieces, *outputs(root / "own")])
    for name in ("eval.json", "table4.md", "c.jsonl", *OVEROPT_FILES):
        assert (root / "own" / name).read_text() == (one_run / name).read_text(), name
    clash = root / "clash.json"
    evaluate.main([*base[:-1], f"base={root / 'rlhf'}", *common, "--only", "base",
                   "--piece-out", str(clash)])  # fmt: skip
    with pytest.raises(BadInputError, match="model 'base' is .* in piece 0 but .* in piece 1"):
        evaluate_merge.main(
            ["--params", params, "--piece", pieces[3], "--piece", str(clash), *outputs(root / "x")]
        )


def test_pieces_refuse_overlaps_and_other_params(setup, tmp_path: Path) -> None:
    root, args = setup
    with pytest.raises(BadInputError, match="--only needs --piece-out"):
        evaluate.main([*args, "--only", "base", *outputs(tmp_path)])
    with pytest.raises(BadInputError, match="--only nobody"):
        evaluate.main([*args, "--only", "nobody", "--piece-out", str(tmp_path / "x.json")])
    piece = tmp_path / "base.json"
    evaluate.main([*args, "--only", "base", "--piece-out", str(piece)])
    params = args[args.index("--params") + 1]
    with pytest.raises(BadInputError, match="'base' was evaluated in pieces 0 and 1"):
        evaluate_merge.main(
            [
                "--params",
                params,
                "--piece",
                str(piece),
                "--piece",
                str(piece),
                *outputs(tmp_path / "m"),
            ]
        )
    other = write_params(tmp_path / "q.yaml", evaluate={"bootstrap_samples": 7})
    with pytest.raises(BadInputError, match="another evaluate section"):
        evaluate_merge.main(
            ["--params", str(other), "--piece", str(piece), *outputs(tmp_path / "m")]
        )
    with pytest.raises(BadInputError, match="no piece evaluated superhf, rlhf, best_of_n, curve"):
        evaluate_merge.main(["--params", params, "--piece", str(piece), *outputs(tmp_path / "m")])
    assert not (tmp_path / "m").exists()  # nothing written by a refused merge
    # a study in progress merges what it has: here only the base
    evaluate_merge.main(
        ["--params", params, "--piece", str(piece), "--partial", *outputs(tmp_path / "p")]
    )
    merged = json.loads((tmp_path / "p" / "eval.json").read_text())
    assert "base" in merged and not {"superhf", "rlhf", "best_of_n"} & merged.keys()


def test_the_pool_in_ranges_of_prompts_merges_into_the_curve_of_one_run(setup, one_run) -> None:
    """Prompts 3:4, the models, then prompts 0:3 (out of order): the merged curve is the
    plain run's, byte for byte (and so a piece over all prompts', see the test above)."""
    root, args = setup
    only = [
        ["--only", CURVE_PIECE, "--curve-prompts", "3:4"],
        [x for name in ("base", "best_of_n", "superhf", "rlhf") for x in ("--only", name)],
        ["--only", CURVE_PIECE, "--curve-prompts", "0:3"],
    ]
    pieces = []
    for i, picks in enumerate(only):
        pieces += ["--piece", str(root / f"range{i}.json")]
        evaluate.main([*args, *picks, "--piece-out", pieces[-1]])
    ranges = json.loads((root / "range0.json").read_text())["snapshots"]["best_of_n"]
    assert [(r["start"], r["stop"], r["of"]) for r in ranges] == [(3, 4, 4)]
    params = args[args.index("--params") + 1]
    evaluate_merge.main(["--params", params, *pieces, *outputs(root / "ranges")])
    for name in ("eval.json", *OVEROPT_FILES):
        assert (root / "ranges" / name).read_text() == (one_run / name).read_text(), name
    bon = json.loads((one_run / "o.json").read_text())["best_of_n"]
    assert [p["prompts"] for p in bon] == [4, 4] and "missing_prompts" not in bon[0]
    # prompts 0:3 alone: refused as a whole, merged with --partial as a curve short of 3:4
    with pytest.raises(BadInputError, match=r"curve of best_of_n_curve \(prompts 3:4\)"):
        evaluate_merge.main(["--params", params, *pieces[2:], *outputs(root / "short")])
    evaluate_merge.main(["--params", params, *pieces[2:], "--partial", *outputs(root / "short")])
    short = json.loads((root / "short" / "o.json").read_text())["best_of_n"]
    assert [(p["prompts"], p["missing_prompts"]) for p in short] == [(3, [[3, 4]])] * 2


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            ["--curve-prompts", "0:2"],
            "--curve-prompts needs --only best_of_n_curve and --piece-out",
        ),
        (["--only", "base", "--curve-prompts", "0:2"], "--curve-prompts needs --only"),
        (["--only", CURVE_PIECE, "--curve-prompts", "2:2"], "--curve-prompts 2:2: an empty range"),
        (["--only", CURVE_PIECE, "--curve-prompts", "3:1"], "--curve-prompts 3:1: an empty range"),
        (["--only", CURVE_PIECE, "--curve-prompts", "0-2"], "--curve-prompts expects START:STOP"),
        (["--only", CURVE_PIECE, "--curve-prompts=-1:2"], "--curve-prompts expects START"),
        (["--only", CURVE_PIECE, "--curve-prompts", "2:5"], "--curve-prompts 2:5: the curve has 4"),
    ],
)
def test_curve_prompts_refused_before_any_model_loads(setup, tmp_path, monkeypatch, extra, error):
    root, args = setup
    monkeypatch.setattr(evaluate, "RewardScorer", lambda *a, **k: pytest.fail("a model loaded"))
    piece = [] if extra[0] == "--curve-prompts" else ["--piece-out", str(tmp_path / "x.json")]
    with pytest.raises(BadInputError, match=error):
        evaluate.main([*args, *extra, *piece, *outputs(tmp_path)])


def pool_piece(start: int, values: list[float], fmt: int = PIECE_FORMAT) -> dict:
    """A piece that drew only the best-of-n pool of prompts start.. of 4 (no model)."""
    curve = [
        {
            "n": n,
            "kl": best_of_n_kl(n),
            "proxy": [v * n for v in values],
            "gold": [-v for v in values],
        }
        for n in (1, 2)
    ]
    return {
        "format": fmt,
        "fingerprint": {"evaluate": {}, "expected": {"results": [], "curves": [CURVE_PIECE]}},
        "models": [],
        "results": {},
        "samplers": [],
        "rows": [],
        "snapshots": {"points": {}, "finals": {}, "best_of_n": [pool_range(start, 4, curve)]},
        "curves_drawn": [CURVE_PIECE],
        "test_prompts": 4,
    }


def test_pool_ranges_join_in_prompt_order_whatever_the_order_of_pieces() -> None:
    whole = combine([pool_piece(0, [0.1, 0.7, 0.3, 0.4])], (50, 0))[2]
    for pieces in (
        [pool_piece(0, [0.1]), pool_piece(1, [0.7, 0.3]), pool_piece(3, [0.4])],
        [pool_piece(3, [0.4]), pool_piece(0, [0.1]), pool_piece(1, [0.7, 0.3])],
    ):
        joined = combine(pieces, (50, 0))[2]
        assert json.dumps(joined) == json.dumps(whole)
    assert [(p["n"], p["reward_queries"], p["prompts"]) for p in whole["best_of_n"]] == [
        (1, 4, 4),
        (2, 8, 4),
    ]


def test_pool_ranges_that_overlap_or_leave_a_gap_are_refused() -> None:
    with pytest.raises(BadInputError, match=r"prompts 0:2 and 1:3 .* overlap \(pieces 1 and 0\)"):
        combine([pool_piece(1, [0.5, 0.6]), pool_piece(0, [0.1, 0.2])], (50, 0))
    with pytest.raises(BadInputError, match="overlap"):  # the same range twice
        combine([pool_piece(0, [0.1]), pool_piece(0, [0.1])], (50, 0), partial=True)
    gap = [pool_piece(0, [0.1]), pool_piece(3, [0.4])]
    with pytest.raises(
        BadInputError, match=r"no piece evaluated curve of best_of_n_curve \(prompts 1:3\)"
    ):
        combine(gap, (50, 0))
    with pytest.raises(BadInputError, match=r"\(prompts 2:4\)"):  # a missing tail
        combine([pool_piece(0, [0.1, 0.2])], (50, 0))
    short = combine(gap, (50, 0), partial=True)[2]["best_of_n"]
    assert [(p["prompts"], p["missing_prompts"]) for p in short] == [(2, [[1, 3]])] * 2


def test_old_pieces_merge_only_without_a_best_of_n_curve() -> None:
    old = pool_piece(0, [0.1, 0.2, 0.3, 0.4], fmt=1)
    with pytest.raises(BadInputError, match="piece 0: format 1 holds a best-of-n curve"):
        combine([old], (50, 0))
    no_curve = {**old, "snapshots": {"points": {}, "finals": {}, "best_of_n": None}}
    no_curve["curves_drawn"] = []  # as results/hh/pieces/base.json (piece 7a, format 1)
    curves = combine([no_curve, pool_piece(0, [0.1, 0.2, 0.3, 0.4])], (50, 0))[2]
    assert [p["prompts"] for p in curves["best_of_n"]] == [4, 4]
    with pytest.raises(BadInputError, match="not an evaluate piece"):
        combine([pool_piece(0, [0.1, 0.2, 0.3, 0.4], fmt=3)], (50, 0))
