"""Numbers the README's reading quotes beside its tables, computed from the committed
completions (base samples, 2 per prompt): within-prompt proxy-gold agreement and each
reward's correlation with completion length. Run: python results/hh/reading_checks.py"""

import json
from pathlib import Path
from statistics import correlation

from superhf.judges import wilson

completions = Path(__file__).parent / "metrics/eval_completions.jsonl"
rows = [json.loads(line) for line in completions.read_text().splitlines()]
base = [r for r in rows if r["model"] == "base"]
by_prompt: dict[str, list[dict]] = {}
for r in base:
    by_prompt.setdefault(r["prompt"], []).append(r)
pairs = [(a, b) for a, b in by_prompt.values()]
hits = sum((a["proxy"] > b["proxy"]) == (a["gold"] > b["gold"]) for a, b in pairs)
agree, (low, high) = hits / len(pairs), wilson(hits, len(pairs))
print(
    f"base: proxy and gold agree on the better of a prompt's 2 samples: {agree:.3f} [{low:.3f}, {high:.3f}] of {len(pairs)}"
)
length = [len(r["completion"]) for r in base]
for key in ("proxy", "gold"):
    print(f"base: r({key}, length in chars) = {correlation([r[key] for r in base], length):.3f}")
