"""Markdown tables from the GPU check's JSON files (``gpu_device.sh`` writes them to $OUT).

python benchmarks/gpu_summary.py $OUT > $OUT/summary.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def stages_table(name: str, d: dict) -> list[str]:
    rows = [f"### {name} (launcher `{d['launcher']}`)", "", "| stage | rc | seconds | device |",
            "|---|---|---|---|"]  # fmt: skip
    for r in d["stages"]:
        dev = "; ".join(x.split(": ", 1)[-1] for x in r["device_lines"][:2]) or "-"
        rows.append(f"| {r['stage']} | {r['rc']} | {r['seconds']} | {dev} |")
    return rows + [""]


def bench_table(d: dict) -> list[str]:
    rows = [f"### gpu.py ({d['machine']}, settings {d['settings']})", "",
            f"materialise_s {d.get('materialise_s', float('nan')):.1f}", "",
            "| phase | figures |", "|---|---|"]  # fmt: skip
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("machine", "settings"):
            shown = ", ".join(f"{a} {b:.4g}" for a, b in v.items() if isinstance(b, float))
            rows.append(f"| {k} | {shown} |")
    return rows + [""]


def main() -> None:
    out = Path(sys.argv[1])
    lines = ["## GPU check", "", "```", (out / "env.txt").read_text().strip(), "```", ""]
    for f in ("tiny", "default", "fsdp", "deepspeed_zero2"):
        if (out / f"{f}.json").is_file():
            lines += stages_table(f, json.loads((out / f"{f}.json").read_text()))
        else:
            lines += [f"### {f}: no figures (failed before its first stage ended; see log)", ""]
    if (out / "gpu_paper.json").is_file():
        lines += bench_table(json.loads((out / "gpu_paper.json").read_text()))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
