"""Evaluation in pieces: what one ``evaluate`` run measured, and how pieces combine into the
outputs of a single run. Pure: dicts in, dicts out (no model, no torch).

A piece holds the blocks of the models it evaluated (``results``), their scored completions
(``rows``) and, for the over-optimisation curves, the points of the snapshots it scored, each
trained method's final step and the best-of-n curve. A run that evaluates everything is one
piece; ``combine`` turns a list of pieces into (results, rows, curves) in the order one run
writes them: the models in ``--model`` order, then ``samplers``, then the table's best-of-n.
Each trained method's curve is the base (step 0), its snapshots and its final model, the
first and last taken from the models' own blocks, wherever they were measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from superhf.errors import BadInputError
from superhf.overopt import signed_sqrt
from superhf.stats import summary

PIECE_FORMAT = 1
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
    if snaps.get("best_of_n") is not None:
        curves["best_of_n"] = snaps["best_of_n"]
    return curves


def _merge_snaps(pieces: Sequence[dict]) -> dict | None:
    """The snapshot points, final steps and best-of-n curve of every piece, in one dict."""
    parts = [p["snapshots"] for p in pieces if p.get("snapshots") is not None]
    if not parts:
        return None
    out: dict[str, Any] = {"points": {}, "finals": {}, "best_of_n": None}
    for part in parts:
        for key in ("points", "finals"):
            out[key].update(part[key])
        if part.get("best_of_n") is not None:
            out["best_of_n"] = part["best_of_n"]
    order = pieces[0]["fingerprint"]["expected"]["curves"]  # --snapshots order, as one run
    out["points"] = {m: out["points"][m] for m in order if m in out["points"]}
    return out


def check_pieces(pieces: Sequence[dict]) -> None:
    """One format, the same params and prompts, no model (or curve) evaluated twice."""
    if not pieces:
        raise BadInputError("no piece to combine")
    seen: dict[str, int] = {}
    for i, p in enumerate(pieces):
        if p.get("format") != PIECE_FORMAT:
            raise BadInputError(f"piece {i}: not an evaluate piece (format {PIECE_FORMAT})")
        first = pieces[0]["fingerprint"]
        differ = [k for k in first if p["fingerprint"].get(k) != first[k]]
        if differ:
            raise BadInputError(f"piece {i} differs from piece 0 in {', '.join(differ)}")
        for name in [*p["results"], *(f"curve of {c}" for c in p["curves_drawn"])]:
            if name in seen:
                raise BadInputError(f"{name!r} was evaluated in pieces {seen[name]} and {i}")
            seen[name] = i


def check_complete(pieces: Sequence[dict]) -> None:
    """Every model and curve one run would measure (the fingerprint's ``expected``) is in
    some piece."""
    expected = pieces[0]["fingerprint"]["expected"]
    got = {n for p in pieces for n in p["results"]}
    missing = [n for n in expected["results"] if n not in got]
    drawn = {c for p in pieces for c in p["curves_drawn"]}
    missing += [f"curve of {c}" for c in expected["curves"] if c not in drawn]
    if missing:
        raise BadInputError(f"no piece evaluated {', '.join(missing)}")


def merge(pieces: Sequence[dict], partial: bool = False) -> dict:
    """The pieces as one piece, models in ``--model`` order (then the table's best-of-n);
    ``partial`` merges what they hold without requiring every model and curve."""
    check_pieces(pieces)
    if not partial:
        check_complete(pieces)
    blocks = {name: r for p in pieces for name, r in p["results"].items()}
    order = [*pieces[0]["models"], "samplers", "best_of_n"]
    rows = {name: [] for name in order}
    for p in pieces:
        for r in p["rows"]:
            rows[r["model"]].append(r)
    return {
        **pieces[0],
        "results": {name: blocks[name] for name in order if name in blocks},
        "rows": [r for name in order for r in rows[name]],
        "snapshots": _merge_snaps(pieces),
        "curves_drawn": [c for p in pieces for c in p["curves_drawn"]],
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
