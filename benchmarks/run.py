"""Speed and cost benchmarks: one command, a table of medians and ratios.

    python benchmarks/run.py                 # tiny policy + the default policy (models/base)
    python benchmarks/run.py --quick         # tiny policy only
    python benchmarks/run.py --json out.json # also write the numbers

Every figure is the median of ``--repeats`` runs, and every ratio compares numbers measured
in the same run. Nothing here asserts a time; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
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
    from superhf.config.common import PAPER_PREAMBLE, GenerationConfig

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
    from superhf.generation import generate
    from superhf.models import load_causal_lm, load_tokenizer
    from superhf.prompting import format_prompt

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

    def separate_prefills():
        torch.manual_seed(0)
        generate(model, tok, [text] * S, cfg, share_prefill=False, **no_eos)

    t_b = median_time(batched, repeats)
    t_u = median_time(unbatched, max(1, repeats // 2))
    out = {}
    if "share_prefill" in inspect.signature(generate).parameters:  # not in older code
        t_sep = median_time(separate_prefills, repeats)
        out = {
            "separate_prefill_completions_per_s": S / t_sep,
            "shared_prefill_speedup": t_sep / t_b,
        }
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    steps_per_s = new_tokens / t_b  # one weight read per decode step for the whole batch
    return {"completions_per_s": S / t_b, "unbatched_completions_per_s": S / t_u,
            "batched_speedup": t_u / t_b, **out, "tokens_per_s": S * new_tokens / t_b,
            "weight_read_fraction_of_bandwidth": steps_per_s * weight_bytes / bandwidth}  # fmt: skip


def bench_evaluation(policy: Path, repeats: int) -> dict:
    """The evaluate stage's model work on the packaged fixture sets: every capability
    benchmark (log-likelihood scoring and SQuAD generation) and the KL log-probs."""
    from superhf.capabilities import tasks as bm
    from superhf.capabilities.suite import load_benchmarks
    from superhf.config.evaluate import EvaluateConfig
    from superhf.eval_samples import sequence_logprobs
    from superhf.models import load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(policy).eval(), load_tokenizer(policy)
    data = load_benchmarks(EvaluateConfig())  # the packaged fixture sets
    t_bench = median_time(lambda: bm.run_all(model, tok, data, bm.StandardRun()), repeats, warmup=0)
    texts = [p for p in PROMPTS for _ in range(6)]
    comps = [" ".join(["word"] * (4 + 3 * i)) for i in range(len(texts))]
    t_lp = median_time(lambda: sequence_logprobs(model, tok, texts, comps), repeats)
    return {"benchmarks_s": t_bench, "kl_logprobs_s": t_lp}


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
    from superhf.config.superhf import SuperHFConfig
    from superhf.models import load_causal_lm
    from superhf.superhf_trainer import train

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


def bench_ppo(
    policy: Path, reward: Path, B: int, new_tokens: int, chat: bool, steps: int, flops: float
) -> dict:
    """Wall time per PPO step split into rollout / score / ref+value forward / update."""
    from superhf.config.rlhf import RLHFConfig
    from superhf.models import load_causal_lm
    from superhf.ppo_trainer import train

    cfg = RLHFConfig(num_prompts=B * steps, batch_size=B, minibatch_size=min(8, B),
                     generation=gen_cfg(new_tokens, B, chat), checkpoint_every=10**6)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        _, _, hist, _, _ = train(cfg, policy, reward, PROMPTS, Path(d) / "ck")
    rows = hist[1:] or hist
    keys = ("time_rollout", "time_score", "time_forward", "time_optimise")
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    out = {**med, "ppo_step_s": sum(med.values())}
    if "batch_tokens" in rows[0]:  # useful work after the rollout: ref forward + epochs x fwd/bwd
        n, tokens = (
            n_params(load_causal_lm(policy)),
            statistics.median(r["batch_tokens"] for r in rows),
        )
        work = (2 + 6 * cfg.ppo_epochs) * n * tokens
        out["train_flops_fraction"] = work / (med["time_forward"] + med["time_optimise"]) / flops
    return out


def bench_kernels(policy: Path, chat: bool, repeats: int) -> dict:
    """The single operations behind three changes, each against what it replaced, on the
    policy's real shapes: the AdamW step, top-p filtering of one decode step's logits, and
    one decode step's LM head."""
    from transformers import TopPLogitsWarper

    from superhf.decoding import RowsTimesWeightHead, TopPFromTopK
    from superhf.models import load_causal_lm

    model = load_causal_lm(policy)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out = {}
    for name, fused in (("foreach", False), ("fused", True)):
        opt = torch.optim.AdamW(params, lr=1e-9, fused=fused)
        out[f"adamw_step_{name}_s"] = median_time(opt.step, repeats)
    out["adamw_fused_speedup"] = out["adamw_step_foreach_s"] / out["adamw_step_fused_s"]
    from superhf.models import load_tokenizer
    from superhf.prompting import format_prompt, tokenize_prompts

    tok, head = load_tokenizer(policy), model.get_output_embeddings()
    texts = [format_prompt(p, tok, gen_cfg(32, 8, chat)) for p in PROMPTS]
    with torch.inference_mode():
        for rows in (8, 32):
            # a decode step's real inputs: the last hidden state and next-token logits
            enc = tokenize_prompts(tok, [texts[i % len(texts)] for i in range(rows)], 256)
            x = model(**enc, output_hidden_states=True).hidden_states[-1][:, -1:]
            scores = head(x)[:, -1].float()
            ids = enc["input_ids"]
            sort, topk = TopPLogitsWarper(0.9), TopPFromTopK(0.9)
            t_sort = median_time(partial(sort, ids, scores), repeats)
            t_topk = median_time(partial(topk, ids, scores), repeats)
            t_lin = median_time(partial(head, x), repeats)
            t_rxw = median_time(partial(RowsTimesWeightHead(head), x), repeats)
            out[f"top_p_sort_{rows}rows_ms"] = 1e3 * t_sort
            out[f"top_p_topk_{rows}rows_ms"] = 1e3 * t_topk
            out[f"lm_head_x_wT_{rows}rows_ms"] = 1e3 * t_lin
            out[f"lm_head_w_xT_{rows}rows_ms"] = 1e3 * t_rxw
    for p in params:
        p.grad = None
    return out


# ----------------------------------------------------------------------------- the peer
TRL_VERSION = "1.12.0"  # the last TRL with a PPOTrainer (trl.experimental.ppo)


class SeqClsScorer:
    """Our side's reward: the peer's sequence-classification model on prompt + completion."""

    hash = "peer-seqcls-reward"

    def __init__(self, path: Path) -> None:
        from transformers import AutoModelForSequenceClassification

        from superhf.models import load_tokenizer

        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).eval()
        self.tok = load_tokenizer(path)

    @torch.inference_mode()
    def score(self, prompts: list[str], completions: list[str]) -> list[float]:
        self.tok.padding_side = "right"
        enc = self.tok([p + c for p, c in zip(prompts, completions)], return_tensors="pt",
                       padding=True, add_special_tokens=False)  # fmt: skip
        return self.model(**enc).logits[:, 0].tolist()


def peer_models(root: Path, B: int, new_tokens: int, epochs: int, lr: float) -> Path:
    """The tiny policy and a same-tokenizer reward/value model, written once for both sides."""
    from transformers import GPTNeoXForSequenceClassification

    from superhf.models import save_model
    from superhf.tiny import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    policy = tiny_causal_lm(tok, seed=0)
    save_model(policy, tok, root / "policy", {"source": "tiny"})
    torch.manual_seed(1)
    cfg = policy.config.__class__(**{**policy.config.to_dict(), "num_labels": 1})
    reward = GPTNeoXForSequenceClassification(cfg).eval()
    reward.save_pretrained(root / "reward")
    tok.save_pretrained(root / "reward")
    setup = {"prompts": PROMPTS, "batch_size": B, "minibatch_size": B, "ppo_epochs": epochs,
             "new_tokens": new_tokens, "lr": lr}  # fmt: skip
    (root / "setup.json").write_text(json.dumps(setup))
    return root


def trl_venv(where: Path) -> Path:
    """A throwaway virtualenv with trl==1.12.0 (it sees this environment's torch and
    transformers through --system-site-packages, so nothing heavy is downloaded)."""
    import subprocess
    import sys

    py = where / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(where)],
                       check=True)  # fmt: skip
    probe = subprocess.run([str(py), "-c", "import trl; print(trl.__version__)"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.stdout.strip() != TRL_VERSION:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"trl=={TRL_VERSION}"], check=True)  # fmt: skip
    return py


def bench_peer(venv: Path, B: int, new_tokens: int, steps: int) -> dict:
    """Our PPO step against TRL 1.12's PPOTrainer: same tiny policy, tokenizer, reward model,
    prompts, batch, epochs and response length; medians over the steps after the first."""
    import subprocess

    from superhf.config.common import GenerationConfig, OptimConfig
    from superhf.config.rlhf import RLHFConfig
    from superhf.ppo_trainer import train

    epochs, lr = 4, 1.41e-5
    with tempfile.TemporaryDirectory() as d:
        root = peer_models(Path(d), B, new_tokens, epochs, lr)
        gen = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, top_p=1.0,
                               repetition_penalty=1.0, batch_size=B, prompt_format="raw",
                               preamble="")  # fmt: skip
        cfg = RLHFConfig(num_prompts=B * steps, batch_size=B, minibatch_size=B, ppo_epochs=epochs,
                         generation=gen, optim=OptimConfig(lr=lr, scheduler="constant", warmup_steps=0),
                         checkpoint_every=10**6)  # fmt: skip
        _, _, hist, _, _ = train(cfg, root / "policy", None, PROMPTS, root / "ck",
                                 scorer=SeqClsScorer(root / "reward"))  # fmt: skip
        rows = hist[1:] or hist
        keys = ("time_rollout", "time_score", "time_forward", "time_optimise")
        ours = {k: statistics.median(r[k] for r in rows) for k in keys}
        ours["ppo_step_s"] = sum(ours.values())
        py = trl_venv(venv)
        subprocess.run([str(py), str(REPO / "benchmarks" / "peer_trl.py"), "--models", str(root),
                        "--steps", str(steps), "--json", str(root / "trl.json")], check=True,
                       capture_output=True)  # fmt: skip
        trl = json.loads((root / "trl.json").read_text())
    pairs = {"rollout": ("time_rollout", "rollout"), "score": ("time_score", "score"),
             "ref_value_forward": ("time_forward", "ref_value_forward"),
             "update": ("time_optimise", "update"), "step": ("ppo_step_s", "step_s")}  # fmt: skip
    out = {}
    for name, (o, t) in pairs.items():
        out[f"ours_{name}_s"] = ours[o]
        out[f"trl_{name}_s"] = trl[t]
        out[f"trl_over_ours_{name}"] = trl[t] / ours[o] if ours[o] else float("nan")
    out["trl_gc_collect_s"] = trl.get("gc", 0.0)  # in trl_step_s, not in trl_update_s
    return out


SECTIONS = ("generation", "scoring", "superhf", "ppo", "evaluation", "kernels")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="tiny policy, the peer and the tiny pipeline only (minutes)")  # fmt: skip
    ap.add_argument("--setups", default="tiny,default", help="policies to run: tiny,default")
    ap.add_argument(
        "--sections", default=",".join(SECTIONS), help="subset of " + ",".join(SECTIONS)
    )
    ap.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                    help="TRL 1.12 PPOTrainer against our PPO step on the tiny model")  # fmt: skip
    ap.add_argument("--trl-venv", help="reuse this virtualenv for TRL (default: a throwaway one)")
    ap.add_argument("--pipeline", choices=("default", "tiny", "none"), default="default",
                    help="profile for the whole-pipeline run (wall time, peak memory, no-op)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write every number here too")
    args = ap.parse_args()
    if args.quick:
        args.setups, args.pipeline = "tiny", "tiny"
    sections = [x for x in args.sections.split(",") if x]
    torch.manual_seed(0)
    out: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    flops, bw = matmul_flops(repeats=args.repeats), memory_bandwidth(repeats=args.repeats)
    out["ceiling"] = {"matmul_fp32_gflops": flops / 1e9, "copy_bandwidth_gb_s": bw / 1e9}
    with tempfile.TemporaryDirectory() as d:
        tiny_policy, tiny_reward = tiny_models(Path(d))
        setups = {}
        if "tiny" in args.setups:
            setups["tiny"] = (tiny_policy, tiny_reward, False)
        if "default" in args.setups:
            base, rm = REPO / "models" / "base", REPO / "models" / "reward"
            if (base / "config.json").is_file() and (rm / "config.json").is_file():
                setups["default"] = (base, rm, True)
            else:
                print("models/base or models/reward missing: run `dvc repro reward_model` first")
        for name, (pol, rew, chat) in setups.items():
            out[name] = {}
            for section in sections:
                out[name][section] = run_section(section, pol, rew, chat, args.repeats, flops, bw)
                print(f"done: {name} {section}", flush=True)
    if args.peer:
        with tempfile.TemporaryDirectory() as d:
            venv = Path(args.trl_venv) if args.trl_venv else Path(d) / "trl-venv"
            out["peer"] = bench_peer(venv, 8, 32, steps=4)
        print("done: peer", flush=True)
    if args.pipeline != "none":
        out["pipeline"] = bench_pipeline(args.pipeline)
    print_table(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


def run_section(section: str, policy: Path, reward: Path, chat: bool, repeats: int, flops: float,
                bandwidth: float) -> dict:  # fmt: skip
    S, T = 8, 32  # completions per prompt (= PPO rollouts per step), new tokens
    if section == "generation":
        return bench_generation(policy, S, T, chat, repeats, bandwidth)
    if section == "scoring":
        return bench_scoring(reward, repeats)
    if section == "superhf":
        return bench_superhf(policy, reward, S, T, chat, steps=3, flops=flops)
    if section == "ppo":
        return bench_ppo(policy, reward, S, T, chat, steps=2, flops=flops)
    if section == "evaluation":
        return bench_evaluation(policy, max(1, repeats // 2))
    if section == "kernels":
        return bench_kernels(policy, chat, repeats)
    raise SystemExit(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")


def machine() -> dict:
    import os
    import platform

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "gpu": gpu}  # fmt: skip


def bench_pipeline(profile: str) -> dict:
    """benchmarks/pipeline.py in a child process: every stage's wall time and peak memory."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "pipeline.py"), "--profile",
                        profile, "--json", f"{d}/p.json"], check=True)  # fmt: skip
        return json.loads(Path(f"{d}/p.json").read_text())


def print_table(out: dict) -> None:
    m, c = out["machine"], out["ceiling"]
    print(f"\n{out['date']}: {m['cpu']}, {m['cores']} cores, {m['threads']} threads, torch {m['torch']}"
          f"{', ' + m['gpu'] if m['gpu'] else ''}")  # fmt: skip
    rows = [("ceiling", "", "matmul fp32 GFLOP/s", c["matmul_fp32_gflops"]),
            ("ceiling", "", "copy bandwidth GB/s", c["copy_bandwidth_gb_s"])]  # fmt: skip
    for name in ("tiny", "default"):
        for section, vals in out.get(name, {}).items():
            rows += [(name, section, k, v) for k, v in vals.items()]
    rows += [("tiny", "peer", k, v) for k, v in out.get("peer", {}).items()]
    if "pipeline" in out:
        pl = out["pipeline"]
        for stage, r in pl["stages"].items():
            rows += [(pl["profile"], "pipeline", f"{stage} wall s", r["wall_s"]),
                     (pl["profile"], "pipeline", f"{stage} peak RSS MiB", r["peak_rss_mib"])]  # fmt: skip
        rows += [(pl["profile"], "pipeline", "dvc repro total s", pl["total_s"]),
                 (pl["profile"], "pipeline", "no-op dvc repro s", pl["noop_repro_s"])]  # fmt: skip
    print(f"{'setup':8} {'section':11} {'figure':40} {'value':>12}")
    for setup, section, k, v in rows:
        print(f"{setup:8} {section:11} {k:40} {v:12.4g}")


if __name__ == "__main__":
    main()
