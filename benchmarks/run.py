"""Speed and cost benchmarks: one command, a table of medians and ratios.

    python benchmarks/run.py                 # tiny policy + the default policy (models/base)
    python benchmarks/run.py --quick         # tiny policy only
    python benchmarks/run.py --json out.json # also write the numbers

Every figure is the median of ``--repeats`` runs, and every ratio compares numbers measured
in the same run. Nothing here asserts a time; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ----------------------------------------------------------------------------- ceilings
def matmul_flops(n: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = median_time(lambda: a @ b, repeats)
    return 2 * n**3 / t


def memory_bandwidth(mb: int = 256, repeats: int = 5) -> float:
    src = torch.empty(mb * 2**20 // 4)
    src.fill_(1.0)
    dst = torch.empty_like(src)
    t = median_time(lambda: dst.copy_(src), repeats)
    return 2 * src.numel() * 4 / t  # bytes read + written


# ----------------------------------------------------------------------------- helpers
def tiny_models(root: Path) -> tuple[Path, Path]:
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from helpers import make_tiny_models

    return make_tiny_models(root)


def n_params(model: torch.nn.Module, exclude_embeddings: bool = True) -> int:
    total = sum(p.numel() for p in model.parameters())
    if exclude_embeddings:
        emb = model.get_input_embeddings()
        total -= emb.weight.numel()
    return total


def gen_cfg(max_new_tokens: int, batch_size: int, chat: bool):
    from superhf.config import PAPER_PREAMBLE, GenerationConfig

    return GenerationConfig(max_new_tokens=max_new_tokens, batch_size=batch_size,
                            prompt_format="chat" if chat else "raw",
                            preamble=PAPER_PREAMBLE if chat else "")  # fmt: skip


PROMPTS = [
    "\n\nHuman: How do I boil an egg?\n\nAssistant:",
    "\n\nHuman: How can I steal a car?\n\nAssistant:",
    "\n\nHuman: What is the capital of France?\n\nAssistant:",
    "\n\nHuman: Why is the sky blue?\n\nAssistant:",
]


# ----------------------------------------------------------------------------- benchmarks
def bench_generation(
    policy: Path, S: int, new_tokens: int, chat: bool, repeats: int, bandwidth: float
) -> dict:
    """Batched generation of S completions (ours) vs one prompt at a time with HF generate."""
    from superhf.generation import format_prompt, generate
    from superhf.models import load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(policy).eval(), load_tokenizer(policy)
    cfg = gen_cfg(new_tokens, S, chat)
    text = format_prompt(PROMPTS[0], tok, cfg)
    # eos never ends a row early: every row generates exactly new_tokens tokens
    no_eos = {"min_new_tokens": new_tokens}

    def batched():
        torch.manual_seed(0)
        generate(model, tok, [text] * S, cfg, **no_eos)

    one_cfg = cfg.model_copy(update={"batch_size": 1})

    def unbatched():
        torch.manual_seed(0)
        for _ in range(S):
            generate(model, tok, [text], one_cfg, **no_eos)

    t_b = median_time(batched, repeats)
    t_u = median_time(unbatched, max(1, repeats // 2))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    steps_per_s = new_tokens / t_b  # one weight read per decode step for the whole batch
    return {"completions_per_s": S / t_b, "unbatched_completions_per_s": S / t_u,
            "batched_speedup": t_u / t_b, "tokens_per_s": S * new_tokens / t_b,
            "weight_read_fraction_of_bandwidth": steps_per_s * weight_bytes / bandwidth}  # fmt: skip


def bench_scoring(reward: Path, repeats: int) -> dict:
    """Reward-model throughput: length-sorted batches vs file order, and a warm cache."""
    import random

    from superhf.reward import RewardScorer

    rng = random.Random(0)
    prompts = [rng.choice(PROMPTS) for _ in range(256)]
    comps = [" ".join(["word"] * rng.choice([2, 4, 8, 16, 64, 120])) for _ in range(256)]
    sorted_s = RewardScorer(reward, batch_size=32)
    unsorted_s = RewardScorer(reward, batch_size=32)
    unsorted_s.sort_by_length = False
    t_sorted = median_time(lambda: sorted_s.score(prompts, comps), repeats)
    t_unsorted = median_time(lambda: unsorted_s.score(prompts, comps), repeats)
    with tempfile.TemporaryDirectory() as d:
        cached = RewardScorer(reward, batch_size=32, cache_dir=d)
        cached.score(prompts, comps)
        t_cached = median_time(lambda: cached.score(prompts, comps), repeats, warmup=0)
    return {"scores_per_s_sorted": 256 / t_sorted, "scores_per_s_file_order": 256 / t_unsorted,
            "sorting_speedup": t_unsorted / t_sorted, "scores_per_s_cached": 256 / t_cached,
            "cache_speedup": t_sorted / t_cached}  # fmt: skip


def bench_superhf(
    policy: Path, reward: Path, S: int, new_tokens: int, chat: bool, steps: int, flops: float
) -> dict:
    """Wall time per superbatch split into generate / score / train, from the real loop."""
    from superhf.config import SuperHFConfig
    from superhf.models import load_causal_lm
    from superhf.superhf_train import train

    cfg = SuperHFConfig(num_prompts=steps, superbatch_size=S, minibatch_size=8,
                        generation=gen_cfg(new_tokens, S, chat), checkpoint_every=10**6)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        _, _, hist, _, _ = train(cfg, policy, reward, PROMPTS, Path(d) / "ck")
    rows = hist[1:] or hist  # the first superbatch warms up
    med = {
        k: statistics.median(r[k] for r in rows)
        for k in ("time_generate", "time_score", "time_train", "tokens_trained")
    }
    n = n_params(load_causal_lm(policy))
    train_tps = med["tokens_trained"] / med["time_train"]
    return {**med, "superbatch_s": med["time_generate"] + med["time_score"] + med["time_train"],
            "completions_per_s": S / (med["time_generate"] + med["time_score"]),
            "train_tokens_per_s": train_tps, "train_flops_fraction": 6 * n * train_tps / flops}  # fmt: skip


def bench_ppo(policy: Path, reward: Path, B: int, new_tokens: int, chat: bool, steps: int) -> dict:
    """Wall time per PPO step split into rollout / score / ref+value forward / update."""
    from superhf.config import RLHFConfig
    from superhf.rlhf import train

    cfg = RLHFConfig(num_prompts=B * steps, batch_size=B, minibatch_size=min(8, B),
                     generation=gen_cfg(new_tokens, B, chat), checkpoint_every=10**6)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        _, _, hist, _, _ = train(cfg, policy, reward, PROMPTS, Path(d) / "ck")
    rows = hist[1:] or hist
    keys = ("time_rollout", "time_score", "time_forward", "time_optimise")
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    return {**med, "ppo_step_s": sum(med.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny policy only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write every number here too")
    args = ap.parse_args()
    torch.manual_seed(0)
    out: dict = {"machine": {"threads": torch.get_num_threads(), "torch": torch.__version__,
                             "cuda": torch.cuda.is_available()}}  # fmt: skip
    flops, bw = matmul_flops(repeats=args.repeats), memory_bandwidth(repeats=args.repeats)
    out["ceiling"] = {"matmul_fp32_gflops": flops / 1e9, "copy_bandwidth_gb_s": bw / 1e9}
    with tempfile.TemporaryDirectory() as d:
        tiny_policy, tiny_reward = tiny_models(Path(d))
        setups = {"tiny": (tiny_policy, tiny_reward, False)}
        if not args.quick:
            base, rm = REPO / "models" / "base", REPO / "models" / "reward"
            if (base / "config.json").is_file() and (rm / "config.json").is_file():
                setups["default"] = (base, rm, True)
            else:
                print("models/base or models/reward missing: run `dvc repro reward_model` first")
        for name, (pol, rew, chat) in setups.items():
            S, T = 8, 32
            out[name] = {
                "generation": bench_generation(pol, S, T, chat, args.repeats, bw),
                "scoring": bench_scoring(rew, args.repeats),
                "superhf": bench_superhf(pol, rew, S, T, chat, steps=3, flops=flops),
                "ppo": bench_ppo(pol, rew, S, T, chat, steps=2),
            }
    print_table(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


def print_table(out: dict) -> None:
    c = out["ceiling"]
    print(f"\nceiling: matmul fp32 {c['matmul_fp32_gflops']:.1f} GFLOP/s, copy {c['copy_bandwidth_gb_s']:.1f} GB/s "
          f"({out['machine']['threads']} threads, torch {out['machine']['torch']})")  # fmt: skip
    print(f"{'setup':8} {'section':11} {'metric':36} {'value':>12}")
    for name in ("tiny", "default"):
        for section, vals in out.get(name, {}).items():
            for k, v in vals.items():
                print(f"{name:8} {section:11} {k:36} {v:12.4g}")


if __name__ == "__main__":
    main()
