"""Peak memory of the paper-protocol HHH scorer (Table 4's Helpful/Honest/Harmless columns
as ``tests/evaluate_lm.py@6035753`` measured them) on the default policy, one subset per
process, at the paper's batch of 8.

    /usr/bin/time -v python benchmarks/hhh_memory.py --subset helpful

The real HHH files are BIG-bench ``task.json`` files (``../shared/data/eval`` layout); each
row becomes the hub's (input, choices, labels) row the paper scorer reads. Prints the
accuracy and this process's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from superhf.capabilities.columns import PAPER_HHH
from superhf.capabilities.loaders import load_hhh
from superhf.capabilities.paper import PAPER_BATCH, paper_hhh_accuracy, paper_hhh_pairs
from superhf.capabilities.scoring import HHH_CHUNK
from superhf.config.base_policy import BasePolicyConfig
from superhf.materialise import build_base_policy

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subset", choices=PAPER_HHH, required=True)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "eval"))
    ap.add_argument("--batch-size", type=int, default=PAPER_BATCH)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = [{"input": r["input"], "targets": {"choices": r["choices"], "labels": r["labels"]}}
            for r in load_hhh(Path(args.data))[args.subset]]  # fmt: skip
    rows = [r for r in rows if len(r["targets"]["choices"]) == 2]  # the script's two-choice rows
    model, tok = build_base_policy(BasePolicyConfig())
    model.eval()
    t0 = time.perf_counter()
    got = paper_hhh_accuracy(model, tok, paper_hhh_pairs(rows), args.batch_size)
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    longest = max(len(tok("\n\nHuman: " + r["input"] + "\n\nAssistant: " + c)["input_ids"])
                  for r in rows for c in r["targets"]["choices"])  # fmt: skip
    print(json.dumps({"subset": args.subset, "pairs": len(rows), "longest_tokens": longest,
                      "batch_size": args.batch_size, "chunk": HHH_CHUNK, **got,
                      "seconds": round(seconds, 1), "peak_rss_gib": round(peak_gb, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
