"""Numbers the README's reading quotes beside its tables, computed from the committed
completions (base samples, 2 per prompt): within-prompt proxy-gold agreement and each
reward's correlation with completion length. Run: python results/hh/reading_checks.py"""

from pathlib import Path

from superhf.io import read_jsonl
from superhf.judges import agreement, correlation

base = [r for r in read_jsonl(Path(__file__).parent / "metrics/eval_completions.jsonl")
        if r["model"] == "base"]  # fmt: skip
by_prompt: dict[str, list[dict]] = {}
for r in base:
    by_prompt.setdefault(r["prompt"], []).append(r)
a, b = zip(*by_prompt.values())  # each prompt's sample 0 and sample 1
both = agreement(*[([r[k] for r in a], [r[k] for r in b]) for k in ("proxy", "gold")])
print(
    "base: proxy and gold agree on the better of a prompt's 2 samples: "
    f"{both['agreement']:.3f} [{both['ci_low']:.3f}, {both['ci_high']:.3f}] of {both['n']}"
)
length = [len(r["completion"]) for r in base]
for key in ("proxy", "gold"):
    c = correlation([r[key] for r in base], length)  # 95% bootstrap over the samples
    print(f"base: r({key}, length in chars) = {c['pearson']:.3f} "
          f"[{c['pearson_ci_low']:.3f}, {c['pearson_ci_high']:.3f}] over {c['n']} samples")  # fmt: skip
