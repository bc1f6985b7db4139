"""What each piece of a real-data study cost (issue 24): its wall time and peak memory, read
from the ``/usr/bin/time -v`` reports that ``results/hh/run_piece.sh`` keeps beside its results,
as a Markdown table per method's sweep. No model code: report files in, Markdown out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path


def gnu_time(text: str) -> tuple[float, float | None]:
    """(wall seconds, peak RSS in GB or None) from a ``/usr/bin/time -v`` report, or, where
    the report itself is missing, the wall time between run_piece.sh's start and end lines."""
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    peak = int(rss[1]) / 1e6 if rss else None
    if wall:
        return sum(float(x) * 60**i for i, x in enumerate(reversed(wall[1].split(":")))), peak
    stamps = [re.search(rf"^{w} (\S+Z)", text, re.M) for w in ("start", "end")]
    if not all(stamps):
        raise ValueError("not a /usr/bin/time -v report (no wall clock line, no start and end)")
    t0, t1 = (datetime.fromisoformat(m[1].replace("Z", "+00:00")) for m in stamps)
    return (t1 - t0).total_seconds(), peak


def cost_table(method: str, curves: Mapping[str, Sequence[Mapping]], times: Path) -> str:
    """Each setting's last step and what its piece cost, from ``times/sweep-METHOD-SETTING.txt``
    (training; plus each ``...-resume-STEP.txt`` of a training paused and resumed) and
    ``...-evaluate.txt`` (its evaluation), and the base's evaluation when it ran once for the
    method (``sweep-base-METHOD-evaluate.txt``); '-' where one is missing."""
    lines = [
        "| setting | last step | training (min) | evaluation (min) | peak RSS (GB) |",
        "|---|---|---|---|---|",
    ]
    for name, curve in curves.items():
        cells, peak = [], 0.0
        stem = f"sweep-{method}-{name}"
        parts = {
            "": [times / f"{stem}.txt", *sorted(times.glob(f"{stem}-resume-*.txt"))],
            "-evaluate": [times / f"{stem}-evaluate.txt"],
        }
        for files in parts.values():
            if files[0].is_file():
                reports = [gnu_time(f.read_text()) for f in files]
                cells.append(f"{sum(wall for wall, _ in reports) / 60:.1f}")
                peak = max([peak, *(rss or 0.0 for _, rss in reports)])
            else:
                cells.append("-")
        last = max(p["step"] for p in curve)
        rss = f"{peak:.1f}" if peak else "-"
        lines.append(f"| {name} | {last} | {' | '.join(cells)} | {rss} |")
    base = times / f"sweep-base-{method}-evaluate.txt"  # run_piece.sh: the base once a method
    if base.is_file():
        wall, rss = gnu_time(base.read_text())
        cell = "-" if rss is None else f"{rss:.1f}"
        lines.append(f"| the base, once for every setting | - | - | {wall / 60:.1f} | {cell} |")
    return "\n".join(lines) + "\n"
