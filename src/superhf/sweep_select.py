"""Choosing a sweep's setting without looking at gold (issue 24): each setting's curve of
snapshots, evaluated on the validation prompts, is cut at a KL budget, and the setting whose
best snapshot within the budget has the highest **proxy** reward wins. Pure: only each
point's ``step``, ``kl`` and ``proxy_mean`` are read, so no gold number can sway the choice.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from superhf.overopt import signed_sqrt
from superhf.piece_times import cost_table


def measured(points: Sequence[Mapping[str, Any]]) -> list[tuple[int, float, float]]:
    """(step, KL, proxy) of each point with both numbers, in step order."""
    out = []
    for p in sorted(points, key=lambda p: p["step"]):
        kl, proxy = p["kl"], p["proxy_mean"]
        if not (kl is None or proxy is None or math.isnan(kl) or math.isnan(proxy)):
            out.append((p["step"], kl, proxy))
    return out


def best_within(points: Sequence[Mapping[str, Any]], kl_budget: float) -> dict | None:
    """The point with the highest proxy mean among those whose KL is within ``kl_budget``
    (the earliest step on a tie); None when none is."""
    best = None
    for step, kl, proxy in measured(points):
        if kl <= kl_budget and (best is None or proxy > best["proxy_mean"]):
            best = {"step": step, "kl": kl, "proxy_mean": proxy}
    return best


def proxy_at(points: Sequence[Mapping[str, Any]], kl_budget: float) -> float | None:
    """A sensitivity check, not the choice: the proxy where the curve (in step order) first
    crosses ``kl_budget``, linear in sqrt(KL) between the last point within it and the first
    beyond it; None when no point is beyond it (the run never reached the budget)."""
    before = None
    for _, kl, proxy in measured(points):
        if kl <= kl_budget:
            before = (kl, proxy)
        elif before is not None:  # a KL estimate may be negative: the signed sqrt axis
            (k0, r0), (k1, r1) = before, (kl, proxy)
            x0, x1 = signed_sqrt(k0), signed_sqrt(k1)
            return r0 + (signed_sqrt(kl_budget) - x0) / (x1 - x0) * (r1 - r0)
    return None


def select_setting(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], kl_budget: float
) -> tuple[str | None, list[dict]]:
    """(winning setting, one row per setting in the given order: its best point within the
    budget, or None). A tie goes to the setting listed first."""
    rows = [{"setting": name, "best": best_within(pts, kl_budget)} for name, pts in curves.items()]
    scored = [r for r in rows if r["best"] is not None]
    win = max(scored, key=lambda r: r["best"]["proxy_mean"], default=None)  # first on a tie
    return (win["setting"] if win else None), rows


def sweep_table(
    rows: Sequence[Mapping[str, Any]],
    winner: str | None,
    kl_budget: float,
    at_budget: Mapping[str, float | None] | None = None,
) -> str:
    """The committed sweep table: each setting's best snapshot within the budget, and when
    ``at_budget`` is given (setting -> ``proxy_at``), the interpolated proxy at the budget."""
    extra = at_budget is not None
    lines = [
        f"| setting | best step within KL <= {kl_budget:g} | KL | proxy (validation) | chosen |"
        + (f" proxy at KL = {kl_budget:g}, interpolated (not the rule) |" if extra else ""),
        "|---|---|---|---|---|" + ("---|" if extra else ""),
    ]
    for r in rows:
        b = r["best"]
        cells = f"{b['step']} | {b['kl']:.3f} | {b['proxy_mean']:.4f}" if b else "- | - | -"
        line = f"| {r['setting']} | {cells} | {'yes' if r['setting'] == winner else ''} |"
        if extra:
            at = at_budget.get(r["setting"])
            line += f" {'not reached' if at is None else f'{at:.4f}'} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def read_curve(file: str | Path, method: str, name: str) -> list[dict]:
    """A setting's curve from its evaluate overoptimisation.json; a one-line error names the
    setting, file and point that is missing or malformed."""
    if not Path(file).is_file():
        raise SystemExit(f"sweep_select: --setting {name}: no file {file}")
    data = json.loads(Path(file).read_text())
    curve = data.get(method) if isinstance(data, dict) else None
    if not curve:
        raise SystemExit(f"sweep_select: {file} has no '{method}' curve")
    for i, point in enumerate(curve):
        missing = {"step", "kl", "proxy_mean"} - set(point)
        if missing:
            raise SystemExit(f"sweep_select: {file}: point {i} lacks {sorted(missing)}")
    return curve


def stale_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """The dotted keys of ``overrides`` (a setting's, with its method's ``common``) whose
    value differs in ``params`` (the params.yaml the setting ran with)."""
    stale = []
    for key, want in overrides.items():
        node: Any = params
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not _same(node, want):
            stale.append(key)
    return stale


def _same(a: Any, b: Any) -> bool:
    """Equal, numbers by value: PyYAML reads ``2e-05`` (no dot) as a string."""
    try:
        return a == b or float(a) == float(b)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class MethodSweep:
    """One method's sweep as committed: its curves, the rule's rows, the interpolated proxy
    at the budget, why there is no choice yet (``note``) and the choice (None without)."""

    curves: dict[str, list[dict]]
    rows: list[dict]
    at: dict[str, float | None]
    note: str
    chosen: str | None


def method_sweep(spec: Mapping[str, Any], method: str, folder: Path, budget: float) -> MethodSweep:
    """``method``'s sweep from its ``spec`` (``common`` and ``settings`` of the settings
    file) and the curves ``folder/METHOD-SETTING.overopt.json`` that exist. No choice while a
    setting has not run, or ran (its ``METHOD-SETTING.params.yaml``) with other values than
    the file's ``common`` and its overrides; the note says which."""
    names = list(spec["settings"])
    files = {n: folder / f"{method}-{n}.overopt.json" for n in names}
    curves = {n: read_curve(f, method, n) for n, f in files.items() if f.is_file()}
    winner, rows = select_setting(curves, budget)
    missing = [n for n in names if n not in curves]
    note = f"Not run yet: {', '.join(missing)}.\n\n" if missing else ""
    stale = {}  # settings that ran with other overrides than the file's (e.g. an older grid)
    for n in curves:
        ran = folder / f"{method}-{n}.params.yaml"
        want = {**spec.get("common", {}), **spec["settings"][n]}
        keys = stale_overrides(yaml.safe_load(ran.read_text()), want) if ran.is_file() else []
        if keys:
            stale[n] = keys
    if stale:
        listed = "; ".join(f"{n} ({', '.join(k)})" for n, k in stale.items())
        note += f"Ran with other overrides than the file's now: {listed}.\n\n"
    if missing or stale:
        note += "No choice until every setting has run with the overrides of the file.\n\n"
    at = {n: proxy_at(c, budget) for n, c in curves.items()}
    return MethodSweep(curves, rows, at, note, None if missing or stale else winner)


def sweep_report(settings: Mapping[str, Any], folder: Path, times: Path | None = None) -> str:
    """Every method's sweep table (``method_sweep``) from a sweep settings file
    (``kl_budget`` and, per method, its ``common`` and ``settings``), with each setting's
    cost when ``times`` (the pieces' time reports) is given."""
    budget = settings["kl_budget"]
    parts = []
    for method, spec in settings.items():
        if method == "kl_budget":
            continue
        sw = method_sweep(spec, method, folder, budget)
        if not sw.curves:
            continue
        table = sweep_table(sw.rows, sw.chosen, budget, sw.at)
        cost = "" if times is None else "\n" + cost_table(method, sw.curves, times)
        parts.append(f"## {method}\n\n{sw.note}{table}{cost}")
    return "\n".join(parts)


def holds_choice(settings: Mapping[str, Any], folder: Path, method: str, params: Mapping) -> str:
    """The chosen setting of ``method`` when ``params`` holds its overrides (not the sweep's
    ``common``: the final runs have their own grid and stop); a ``ValueError`` saying why
    not otherwise."""
    if method not in settings or method == "kl_budget":
        raise ValueError(f"no method {method!r} in the sweep settings")
    spec = settings[method]
    sw = method_sweep(spec, method, folder, settings["kl_budget"])
    if sw.chosen is None:
        why = " ".join(sw.note.split()) or "no setting has run"
        raise ValueError(f"{method}'s sweep has chosen no setting yet: {why}")
    keys = stale_overrides(params, spec["settings"][sw.chosen])
    if keys:
        raise ValueError(
            f"params differ from {method}'s chosen setting {sw.chosen!r} in {', '.join(keys)}"
        )
    return sw.chosen


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m superhf.sweep_select",
        description="Choose a sweep's setting by proxy reward on the validation prompts within "
        "a KL budget (never by gold); print the sweep table",
    )
    ap.add_argument(
        "--setting",
        nargs=2,
        action="append",
        metavar=("NAME", "FILE"),
        help="a setting and its evaluate overoptimisation.json on the validation prompts (repeat)",
    )
    ap.add_argument("--method", help="the curve's key in each file, e.g. superhf")
    ap.add_argument("--kl-budget", type=float, help="nats (evaluate's KL)")
    ap.add_argument(
        "--report",
        nargs=2,
        metavar=("SETTINGS", "FOLDER"),
        help="instead: every method of a sweep settings file (results/hh/sweep_settings.yaml), "
        "its curves read from FOLDER/METHOD-SETTING.overopt.json",
    )
    ap.add_argument(
        "--holds-choice",
        nargs=2,
        metavar=("METHOD", "PARAMS"),
        help="with --report: print METHOD's chosen setting if PARAMS (a params.yaml) holds its "
        "overrides; exit 1 with why not otherwise (no choice yet, or other values)",
    )
    ap.add_argument(
        "--times",
        help="with --report: the folder of the pieces' time reports (sweep-METHOD-SETTING.txt)",
    )
    args = ap.parse_args(argv)
    if args.report:
        settings_file, folder = args.report
        if not Path(settings_file).is_file():
            raise SystemExit(f"sweep_select: --report: no file {settings_file}")
        settings = yaml.safe_load(Path(settings_file).read_text())
        if args.holds_choice:
            method, params = args.holds_choice
            try:
                print(
                    holds_choice(
                        settings, Path(folder), method, yaml.safe_load(Path(params).read_text())
                    )
                )
            except ValueError as e:
                raise SystemExit(f"sweep_select: {e}") from None
            return
        times = Path(args.times) if args.times else None
        print(sweep_report(settings, Path(folder), times), end="")
        return
    if not (args.setting and args.method and args.kl_budget is not None):
        ap.error("--setting, --method and --kl-budget are required without --report")
    curves = {name: read_curve(file, args.method, name) for name, file in args.setting}
    winner, rows = select_setting(curves, args.kl_budget)
    print(sweep_table(rows, winner, args.kl_budget), end="")


if __name__ == "__main__":
    main()
