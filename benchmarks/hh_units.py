"""Unit costs of the hh study on this machine: reward-model training steps (proxy MiniLM,
gold SmolLM2-135M head) and scoring throughput, on real hh pairs. Medians of a few steps.

    python benchmarks/hh_units.py --data ../shared/data --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from superhf.config.prepare import PrepareConfig
from superhf.config.reward_model import RewardModelConfig
from superhf.data_parts import run_parts
from superhf.materialise import load_reward_backbone
from superhf.profile import resolve
from superhf.reward import encode
from superhf.reward_training import train_reward_model


def time_training(cfg, name, pairs, batch, max_length, steps) -> float:
    model, tok = load_reward_backbone(cfg, 0, name=name)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        train_reward_model(model, tok, pairs[i * batch : (i + 1) * batch], epochs=1, lr=1e-5,
                           batch_size=batch, max_length=max_length, warmup_ratio=0.0)  # fmt: skip
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def time_scoring(cfg, name, pairs, batch, max_length) -> float:
    model, tok = load_reward_backbone(cfg, 0, name=name)
    model.eval()
    prompts, comps = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
    t = time.perf_counter()
    for i in range(0, len(pairs), batch):
        model(**encode(tok, prompts[i : i + batch], comps[i : i + batch], "text", max_length))
    return len(pairs) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    p = resolve("hh")
    _, pairs, m = run_parts(PrepareConfig(**{**p["prepare"], "data_dir": args.data}))
    cfg = RewardModelConfig(**p["reward_model"])
    g = cfg.gold_recipe
    out = {"torch_threads": torch.get_num_threads(), "train_pairs": m["train_pairs"]}
    out["proxy_step_s"] = time_training(
        cfg, cfg.name, pairs["train"], cfg.batch_size, cfg.max_length, args.steps
    )
    out["gold_step_s"] = time_training(
        cfg, g.backbone, pairs["train"], g.batch_size, g.max_length or cfg.max_length, args.steps
    )
    out["proxy_score_per_s"] = time_scoring(cfg, cfg.name, pairs["test"][:128], 64, cfg.max_length)
    out["gold_score_per_s"] = time_scoring(
        cfg, g.backbone, pairs["test"][:128], 32, g.max_length or cfg.max_length
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
