"""Sampling against the machine's matmul bound, measured in the same process.

    python benchmarks/sampling.py [--model models/base] [--repeats 3] [--profile]

For 64 rows (4 prompts x 16 completions, SuperHF's superbatch shape) and 16 rows (1 x 16),
32 new tokens each (``min_new_tokens`` forces all 32), the default profile's sampler (chat
template and preamble, top-p 0.9, repetition penalty 1.05), it prints

    bound = 2 x params x (distinct prompt tokens + rows x new tokens) / matmul FLOP/s

(the time the work would take at the fp32 1024^3 matmul rate, measured right before each
sampling run) and ``bound / time``: the fraction of the compute bound that ``generate_ids``
reaches. Medians over ``--repeats``. ``--profile`` adds where a decode step's time goes
(a hand-written copy of the decode loop,\neach part timed; the rest is ``generate``'s own overhead).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "\n\nHuman: How do I boil an egg?\n\nAssistant:",
    "\n\nHuman: How can I steal a car?\n\nAssistant:",
    "\n\nHuman: What is the capital of France?\n\nAssistant:",
    "\n\nHuman: Why is the sky blue?\n\nAssistant:",
]
NEW_TOKENS = 32


def matmul_flops(n: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def sampler_cfg(rows: int, sampler: str = "multinomial"):
    from superhf.config.common import PAPER_PREAMBLE, GenerationConfig

    return GenerationConfig(
        max_new_tokens=NEW_TOKENS,
        batch_size=rows,
        top_p=0.9,
        repetition_penalty=1.05,
        prompt_format="chat",
        preamble=PAPER_PREAMBLE,
        sampler=sampler,
    )


def one_shape(model, tok, n_prompts: int, per_prompt: int, repeats: int,
              sampler: str = "multinomial") -> dict:  # fmt: skip
    from superhf.generation import generate_ids
    from superhf.prompting import format_prompt, tokenize_prompts

    cfg = sampler_cfg(n_prompts * per_prompt, sampler)
    texts = [format_prompt(p, tok, cfg) for p in PROMPTS[:n_prompts]]
    rows = [t for t in texts for _ in range(per_prompt)]
    prompt_tokens = int(tokenize_prompts(tok, texts, 256)["attention_mask"].sum())
    params = sum(p.numel() for p in model.parameters())  # tied head counted once
    flop = 2 * params * (prompt_tokens + len(rows) * NEW_TOKENS)
    ratios, times, bounds = [], [], []
    for _ in range(repeats):
        flops = matmul_flops()
        torch.manual_seed(0)
        t = time.perf_counter()
        generate_ids(model, tok, rows, cfg, min_new_tokens=NEW_TOKENS)
        took = time.perf_counter() - t
        times.append(took)
        bounds.append(flop / flops)
        ratios.append(flop / flops / took)
    t = statistics.median(times)
    return {"rows": len(rows), "seconds": t, "new_tokens_per_s": len(rows) * NEW_TOKENS / t,
            "bound_s": statistics.median(bounds), "ratio": statistics.median(ratios)}  # fmt: skip


class Clock:
    """Seconds spent inside each timed module (forward hooks; nested modules excluded)."""

    def __init__(self, model) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        parts = {"attention block (q/k/v/o proj, cache update, sdpa)": "self_attn",
                 "MLP block": "mlp"}  # fmt: skip
        self.handles = []
        for lay in model.model.layers:
            for name, attr in parts.items():
                self.watch(getattr(lay, attr), name)
        self.watch(model.get_output_embeddings(), "LM head")

    def watch(self, mod, name: str) -> None:
        start = {}
        self.handles.append(mod.register_forward_pre_hook(
            lambda *_: start.__setitem__("t", time.perf_counter())))  # fmt: skip
        self.handles.append(mod.register_forward_hook(
            lambda *_: self.spent.__setitem__(name, self.spent[name] + time.perf_counter() - start["t"])))  # fmt: skip

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def breakdown(model, tok, n_prompts: int, per_prompt: int) -> dict:
    """One decode, written out step by step as ``generate`` runs it (prefill shared once,
    then per step: forward of the last token, the processors, softmax + multinomial), each
    part timed; ``generate_ids``'s own time for the same rows is measured next to it."""
    from superhf.decoding import decode_processors, fast_cpu_head
    from superhf.generation import cache_kwarg, generate_ids, prefill_shared
    from superhf.prompting import format_prompt, tokenize_prompts

    cfg = sampler_cfg(n_prompts * per_prompt)
    texts = [format_prompt(p, tok, cfg) for p in PROMPTS[:n_prompts]]
    rows = [t for t in texts for _ in range(per_prompt)]
    torch.manual_seed(0)
    t = time.perf_counter()
    generate_ids(model, tok, rows, cfg, min_new_tokens=NEW_TOKENS)
    total = time.perf_counter() - t
    enc = tokenize_prompts(tok, texts, cfg.max_prompt_tokens)
    idx = torch.arange(n_prompts).repeat_interleave(per_prompt)
    procs = decode_processors(cfg)
    spent: dict[str, float] = defaultdict(float)
    with torch.inference_mode(), fast_cpu_head(model):
        t = time.perf_counter()
        cache = prefill_shared(model, enc, idx)
        spent["prefill (shared)"] = time.perf_counter() - t
        ids, attn = enc["input_ids"][idx], enc["attention_mask"][idx]
        pos = attn.sum(1, keepdim=True) - 1
        clock = Clock(model)
        step_in = ids[:, -1:]
        for _ in range(NEW_TOKENS):
            t0 = time.perf_counter()
            out = model(input_ids=step_in, attention_mask=attn, position_ids=pos,
                        use_cache=True, logits_to_keep=1, **{cache_kwarg(model): cache})  # fmt: skip
            t1 = time.perf_counter()
            scores = procs(ids, out.logits[:, -1].float())
            t2 = time.perf_counter()
            nxt = torch.multinomial(scores.softmax(-1), 1)
            t3 = time.perf_counter()
            ids = torch.cat([ids, nxt], 1)
            attn = torch.cat([attn, torch.ones_like(nxt)], 1)
            pos, step_in = pos + 1, nxt
            spent["forward"] += t1 - t0
            spent["logits processors (repetition penalty, top-p)"] += t2 - t1
            spent["softmax + multinomial"] += t3 - t2
        clock.close()
    fwd = spent.pop("forward")
    spent.update(clock.spent)
    spent["rest of the forward (norms, rotary, masks, Python)"] = fwd - sum(clock.spent.values())
    hand = sum(spent.values())
    spent["generate's own overhead (generate_ids - this loop)"] = max(total - hand, 0.0)
    return {"generate_ids_s": total, "loop_s": hand, "parts": dict(spent)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "base"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also break a decode step down")
    ap.add_argument("--sampler", nargs="+", default=["multinomial"],
                    choices=["multinomial", "inverse_cdf"],
                    help="generation.sampler values, each timed on every shape")  # fmt: skip
    args = ap.parse_args()
    from superhf.models import load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(args.model).eval(), load_tokenizer(args.model)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    for n_prompts, per in ((4, 16), (1, 16)):
        for sampler in args.sampler:
            r = one_shape(model, tok, n_prompts, per, args.repeats, sampler)
            print(f"{sampler:>12} {r['rows']:3d} rows: {r['seconds']:.2f} s, {r['new_tokens_per_s']:.0f} new "
              f"tokens/s, bound {r['bound_s']:.2f} s, bound/time {r['ratio']:.2f}")  # fmt: skip
    if args.profile:
        for n_prompts, per in ((4, 16), (1, 16)):
            p = breakdown(model, tok, n_prompts, per)
            print(f"where {n_prompts * per} rows' time goes: generate_ids {p['generate_ids_s']:.2f}"
                  f" s, the same decode written out {p['loop_s']:.2f} s")  # fmt: skip
            whole = max(p["generate_ids_s"], p["loop_s"])
            for k, v in sorted(p["parts"].items(), key=lambda kv: -kv[1]):
                print(f"  {v / whole:6.1%} {v:6.2f} s  {k}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
