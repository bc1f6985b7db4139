"""Evaluation in pieces: what one ``evaluate`` run measured, and how pieces combine into the
outputs of a single run. Pure: dicts in, dicts out (no model, no torch).

A piece holds the blocks of the models it evaluated (``results``), their scored completions
(``rows``) and, for the over-optimisation curves, the points of the snapshots it scored, each
trained method's final step and the best-of-n pool of a range of prompts. A run that
evaluates everything is one piece; ``combine`` turns a list of pieces into (results, rows,
curves) in the order one run writes them: the models in ``--model`` order, then
``samplers``, then the table's best-of-n. Each trained method's curve is the base (step 0),
its snapshots and its final model, the first and last taken from the models' own blocks,
wherever they were measured.

The best-of-n curve may be drawn in several pieces, each a range of its prompts (each
prompt's pool has its own seed, so a prompt's draws do not depend on the range). A range
holds, per n, each of its prompts' expected proxy and gold reward (``pool_range``); the
points (means and bootstrap intervals over prompts) are computed only once the ranges are
joined in prompt order (``pool_curve``), so any split gives the points of one run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from superhf.errors import BadInputError
from superhf.overopt import signed_sqrt
from superhf.stats import summary

PIECE_FORMAT = 2  # 2: the best-of-n curve as per-prompt values of a range (1: as points)
OLD_FORMATS = (1,)  # still merged when they hold no best-of-n curve (the rest is unchanged)
KL_KINDS = ("estimate", "upper_bound")  # a sampled estimate (with kl_se), or best-of-n's bound
CURVE_PIECE = "best_of_n_curve"  # the name that selects the best-of-n pool curve for a piece


def curve_point(
    method: str,
    step: int,
    queries: int,
    kl: tuple[float, float | None, str],
    rewards: tuple[list[float] | dict, list[float] | dict],
    boot: tuple[int, int],
    **extra: Any,
) -> dict:
    """One point of an over-optimisation curve; ``kl`` is (value, standard error, kind of
    ``KL_KINDS``); ``rewards`` (proxy, gold) as per-prompt values or summaries; ``boot``:
    (bootstrap resamples, seed) for values. ``sqrt_kl`` is signed."""
    value, se, kind = kl
    if kind not in KL_KINDS:
        raise ValueError(f"kl kind must be one of {KL_KINDS}, got {kind!r}")
    row: dict[str, Any] = {
        "method": method,
        "step": step,
        "reward_queries": queries,
        "kl": value,
        "kl_se": se,
        "kl_kind": kind,
        "sqrt_kl": signed_sqrt(value),
        **extra,
    }
    for which, vals in zip(("proxy", "gold"), rewards):
        s = vals if isinstance(vals, dict) else summary(vals, *boot)
        row.update({f"{which}_{k}": s[k] for k in ("mean", "ci_low", "ci_high")})
    return row


def method_curve(method: str, results: dict, snaps: dict, boot: tuple[int, int]) -> list[dict]:
    """A trained method's curve: the base at step 0, the snapshot points, the final model
    (its KL and unwarped rewards from ``results[method]``, its step from ``snaps``)."""
    for name in ("base", method):
        if name not in results:
            raise BadInputError(f"the curve of {method!r} needs {name!r}, evaluated in no piece")
    base, final, meta = results["base"], results[method], snaps["finals"][method]
    first = curve_point(
        method,
        0,
        0,
        (0.0, 0.0, "estimate"),
        (base["unwarped"]["proxy"], base["unwarped"]["gold"]),
        boot,
    )
    last = curve_point(
        method,
        meta["step"],
        meta["reward_queries"],
        (final["kl_to_base"], final["kl_to_base_se"], "estimate"),
        (final["unwarped"]["proxy"], final["unwarped"]["gold"]),
        boot,
    )
    return [first, *snaps["points"][method], last]


def curves_of(results: dict, snaps: dict, boot: tuple[int, int]) -> dict[str, list[dict]]:
    """Every curve: each trained method's (``method_curve``), then best-of-n's, if drawn."""
    curves = {m: method_curve(m, results, snaps, boot) for m in snaps["points"]}
    if snaps.get("best_of_n"):
        curves["best_of_n"] = pool_curve(snaps["best_of_n"], boot)
    return curves


def pool_range(start: int, total: int, curve: list[dict]) -> dict:
    """The best-of-n pool of the curve's prompts ``start`` up to ``stop`` (of ``total``):
    ``curve`` is ``superhf.overopt.best_of_n_curve``'s over them (per n: n, kl and each
    prompt's expected proxy and gold), ``stop`` follows from its length."""
    stop = start + len(curve[0]["proxy"])
    if not 0 <= start < stop <= total:
        raise ValueError(f"prompts {start}:{stop} are not a range of the curve's {total}")
    return {"start": start, "stop": stop, "of": total, "curve": curve}


def pool_gaps(ranges: Sequence[dict]) -> list[tuple[int, int]]:
    """The prompts of the curve (start, stop) that no range holds (ranges do not overlap)."""
    gaps, at = [], 0
    for r in sorted(ranges, key=lambda r: r["start"]):
        if r["start"] > at:
            gaps.append((at, r["start"]))
        at = max(at, r["stop"])
    total = ranges[0]["of"] if ranges else 0
    return [*gaps, (at, total)] if at < total else gaps


def pool_curve(ranges: Sequence[dict], boot: tuple[int, int]) -> list[dict]:
    """Best-of-n's curve points from its ranges, in any order: per n, each prompt's values
    joined in prompt order, then ``curve_point`` over them (reward-model queries: n per
    prompt; KL: the upper bound). ``prompts`` is how many prompts a point averages; a curve
    with prompts no range holds (a ``--partial`` merge) says which in ``missing_prompts``."""
    ranges = sorted(ranges, key=lambda r: r["start"])
    gaps = pool_gaps(ranges)
    missing = {"missing_prompts": [list(g) for g in gaps]} if gaps else {}
    points = []
    for i, c in enumerate(ranges[0]["curve"]):
        proxy = [v for r in ranges for v in r["curve"][i]["proxy"]]
        gold = [v for r in ranges for v in r["curve"][i]["gold"]]
        points.append(
            curve_point(
                "best_of_n",
                c["n"],
                c["n"] * len(proxy),
                (c["kl"], None, "upper_bound"),
                (proxy, gold),
                boot,
                n=c["n"],
                prompts=len(proxy),
                **missing,
            )
        )
    return points


def _merge_snaps(pieces: Sequence[dict]) -> dict | None:
    """The snapshot points, final steps and best-of-n curve of every piece, in one dict."""
    parts = [p["snapshots"] for p in pieces if p.get("snapshots") is not None]
    if not parts:
        return None
    out: dict[str, Any] = {"points": {}, "finals": {}, "best_of_n": None}
    for part in parts:
        for key in ("points", "finals"):
            out[key].update(part[key])
        if part.get("best_of_n"):  # the pool's ranges, joined by ``pool_curve``
            out["best_of_n"] = [*(out["best_of_n"] or []), *part["best_of_n"]]
    order = joined(pieces)["expected"]["curves"]  # --snapshots order, as one run
    out["points"] = {m: out["points"][m] for m in order if m in out["points"]}
    return out


def pool_ranges(pieces: Sequence[dict]) -> list[tuple[dict, int]]:
    """Every range of the best-of-n pool in the pieces, with the index of its piece."""
    return [
        (r, i)
        for i, p in enumerate(pieces)
        for r in ((p.get("snapshots") or {}).get("best_of_n") or [])
    ]


def check_format(piece: dict, i: int) -> None:
    """This format, or an old one that holds nothing whose layout changed since."""
    fmt = piece.get("format")
    if fmt in OLD_FORMATS and CURVE_PIECE in piece.get("curves_drawn", ()):
        raise BadInputError(
            f"piece {i}: format {fmt} holds a best-of-n curve drawn in one seeded call over "
            f"all its prompts; draw it again (format {PIECE_FORMAT}: a seed per prompt)"
        )
    if fmt != PIECE_FORMAT and fmt not in OLD_FORMATS:
        raise BadInputError(f"piece {i}: not an evaluate piece (format {PIECE_FORMAT})")


def joined(pieces: Sequence[dict]) -> dict:
    """The fingerprint of the run the pieces make up: piece 0's, with every piece's models
    (name -> folder) and what each expected a whole run to measure, in piece order. Pieces
    may name different models (a study's methods arrive over sessions), but one name is one
    folder in all of them."""
    models: dict[str, str] = {}
    expected: dict[str, list] = {"results": [], "curves": []}
    for p in pieces:
        fp = p["fingerprint"]
        models.update({n: f for n, f in fp.get("models", {}).items() if n not in models})
        for key in expected:
            expected[key] += [n for n in fp["expected"][key] if n not in expected[key]]
    for key, last in (("results", "best_of_n"), ("curves", CURVE_PIECE)):  # as one run's
        if last in expected[key]:  # order: the best-of-n after every model
            expected[key].remove(last)
            expected[key].append(last)
    return {**pieces[0]["fingerprint"], "models": models, "expected": expected}


def check_pieces(pieces: Sequence[dict]) -> None:
    """Known formats, the same params, reward models and prompts, one folder per model name,
    no model or snapshot curve evaluated twice, and no prompt of the best-of-n pool drawn in
    two pieces."""
    if not pieces:
        raise BadInputError("no piece to combine")
    seen: dict[str, int] = {}
    folders: dict[str, tuple[str, int]] = {}
    for i, p in enumerate(pieces):
        check_format(p, i)
        first, fp = pieces[0]["fingerprint"], p["fingerprint"]
        differ = [k for k in first if k not in ("models", "expected") and fp.get(k) != first[k]]
        if differ:
            raise BadInputError(f"piece {i} differs from piece 0 in {', '.join(differ)}")
        for name, folder in fp.get("models", {}).items():
            was, j = folders.setdefault(name, (folder, i))
            if was != folder:
                raise BadInputError(
                    f"model {name!r} is {was} in piece {j} but {folder} in piece {i}"
                )
        curves = [f"curve of {c}" for c in p["curves_drawn"] if c != CURVE_PIECE]
        for name in [*p["results"], *curves]:
            if name in seen:
                raise BadInputError(f"{name!r} was evaluated in pieces {seen[name]} and {i}")
            seen[name] = i
    ranges = sorted(pool_ranges(pieces), key=lambda ri: ri[0]["start"])
    for (a, i), (b, j) in zip(ranges, ranges[1:]):
        if b["start"] < a["stop"]:
            raise BadInputError(
                f"prompts {a['start']}:{a['stop']} and {b['start']}:{b['stop']} of the "
                f"best-of-n curve overlap (pieces {i} and {j})"
            )


def check_complete(pieces: Sequence[dict]) -> None:
    """Every model and curve the run would measure (the pieces' ``expected``, joined) is in
    some piece."""
    expected = joined(pieces)["expected"]
    got = {n for p in pieces for n in p["results"]}
    missing = [n for n in expected["results"] if n not in got]
    drawn = {c for p in pieces for c in p["curves_drawn"]}
    missing += [f"curve of {c}" for c in expected["curves"] if c not in drawn]
    gaps = pool_gaps([r for r, _ in pool_ranges(pieces)])
    if CURVE_PIECE in drawn and gaps:
        where = ", ".join(f"{a}:{b}" for a, b in gaps)
        missing.append(f"curve of {CURVE_PIECE} (prompts {where})")
    if missing:
        raise BadInputError(f"no piece evaluated {', '.join(missing)}")


def merge(pieces: Sequence[dict], partial: bool = False) -> dict:
    """The pieces as one piece, models in ``--model`` order (then the table's best-of-n);
    ``partial`` merges what they hold without requiring every model and curve (a best-of-n
    curve short of some prompts is then drawn from those it has, its points saying which
    are missing: ``pool_curve``)."""
    check_pieces(pieces)
    if not partial:
        check_complete(pieces)
    blocks = {name: r for p in pieces for name, r in p["results"].items()}
    fingerprint = joined(pieces)
    order = [*fingerprint["models"], "samplers", "best_of_n"]
    rows = {name: [] for name in order}
    for p in pieces:
        for r in p["rows"]:
            rows[r["model"]].append(r)
    return {
        **pieces[0],
        "fingerprint": fingerprint,
        "models": list(fingerprint["models"]),
        "results": {name: blocks[name] for name in order if name in blocks},
        "rows": [r for name in order for r in rows[name]],
        "snapshots": _merge_snaps(pieces),
        "curves_drawn": list(dict.fromkeys(c for p in pieces for c in p["curves_drawn"])),
    }


def combine(
    pieces: Sequence[dict], boot: tuple[int, int], partial: bool = False
) -> tuple[dict, list, dict | None]:
    """(results, rows, curves) of one run from its pieces; curves None when no piece drew
    any (no ``--overopt``). ``partial``: see ``merge``."""
    one = merge(pieces, partial)
    results = dict(one["results"])
    results["samplers"] = one["samplers"]
    if "best_of_n" in results:  # after samplers, where a single run puts it
        results["best_of_n"] = results.pop("best_of_n")
    snaps = one["snapshots"]
    curves = curves_of(results, snaps, boot) if snaps is not None else None
    return results, one["rows"], curves
