"""RLOO/GRPO's update with and without packed prompts (``rloo.pack_prompts``), one run.

A step of the hh profile: P = 2 prompts x S = 16 completions of up to 32 tokens, in
minibatches of 8. Timed per step, as ``pg_trainer.group_step`` spends it: the policy's and
the reference's log-probs (no grad) and one forward + backward over every minibatch.
Padded and packed alternate within each repeat (same rows), so the ratio is from one run.
The log-probs of the two are compared too (max absolute difference over response tokens).

    python benchmarks/packed_prompts.py --policy models/base --prompts data/prompts/train.jsonl \\
        --json benchmarks/packed-prompts-DATE.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from superhf.config.group_pg import RLOOConfig
from superhf.core import shifted_logprobs, tail_columns, tail_forward_inputs
from superhf.models import load_causal_lm, load_tokenizer
from superhf.packing import pack_shared_prompts, scatter_logprobs
from superhf.ppo_rollout import rollout_batch
from superhf.prompting import format_prompt


def padded_logprobs(model, ids, attn, mask) -> torch.Tensor:
    targets = torch.cat([torch.zeros_like(mask[:, :1]), mask], 1).bool()
    keep = max(2, tail_columns(targets))
    logits = model(**tail_forward_inputs(ids, attn, keep)).logits
    out = torch.zeros_like(mask)
    out[:, -(keep - 1) :] = shifted_logprobs(logits, ids[:, -keep:])
    return out * mask


def packed_logprobs(model, ids, attn, mask) -> torch.Tensor:
    pk = pack_shared_prompts(ids, attn, mask)
    fwd = {"input_ids": pk.input_ids, "position_ids": pk.position_ids,
           "attention_mask": pk.attention_mask(None), "logits_to_keep": pk.predict_at}  # fmt: skip
    logits = model(**fwd).logits
    logp = torch.log_softmax(logits[0].float(), -1).gather(-1, pk.targets[:, None])[:, 0]
    return scatter_logprobs(pk, logp, tuple(mask.shape))


def one_step(model, fn, ids, attn, mask, mb: int) -> tuple[float, float, torch.Tensor]:
    """(seconds for two no-grad passes, seconds for forward + backward, log-probs)."""
    batches = [slice(s, s + mb) for s in range(0, ids.shape[0], mb)]
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(2):  # the policy's old log-probs and the reference's
            logp = torch.cat([fn(model, ids[b], attn[b], mask[b]) for b in batches])
    t1 = time.perf_counter()
    for b in batches:
        fn(model, ids[b], attn[b], mask[b]).sum().backward()
    model.zero_grad(set_to_none=True)
    return t1 - t0, time.perf_counter() - t1, logp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", required=True)
    ap.add_argument("--prompts", required=True, help="JSONL with a 'prompt' field")
    ap.add_argument("--prompt-format", default="chat", help="generation.prompt_format (hh: chat)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = RLOOConfig.model_validate(
        {"generation": {"prompt_format": args.prompt_format, "max_new_tokens": 32}}
    )
    tok, model = load_tokenizer(args.policy), load_causal_lm(args.policy)
    model.train()
    rows = [json.loads(line) for line in Path(args.prompts).read_text().splitlines()]
    gen = torch.Generator().manual_seed(0)
    P, S, mb, new = 2, 16, 8, cfg.generation.max_new_tokens
    times = {"padded": [], "packed": []}
    diffs, widths, packed_tokens = [], [], []
    for rep in range(args.repeats):
        texts = [format_prompt(rows[rep * P + j]["prompt"], tok, cfg.generation) for j in range(P)]
        lengths = torch.randint(new // 2, new + 1, (P * S,), generator=gen).tolist()
        responses = [torch.randint(3, len(tok), (n,), generator=gen).tolist() for n in lengths]
        ids, attn, mask = rollout_batch(
            tok, [x for x in texts for _ in range(S)], responses, cfg.generation.max_prompt_tokens
        )
        perm = torch.randperm(P * S, generator=gen)  # minibatches mix prompts, as the trainer's
        ids, attn, mask = ids[perm], attn[perm], mask[perm]
        widths.append(ids.shape[1])
        packed_tokens.append(
            statistics.mean(
                pack_shared_prompts(
                    ids[s : s + mb], attn[s : s + mb], mask[s : s + mb]
                ).input_ids.shape[1]
                for s in range(0, P * S, mb)
            )
        )
        got = {}
        for name, fn in (("padded", padded_logprobs), ("packed", packed_logprobs)):
            nograd, train, logp = one_step(model, fn, ids, attn, mask, mb)
            times[name].append({"no_grad_s": nograd, "train_s": train, "total_s": nograd + train})
            got[name] = logp
        diffs.append(float((got["padded"] - got["packed"]).abs().max()))
    med = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in times.items()
    }
    out = {
        "policy": args.policy,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rows": P * S,
        "minibatch": mb,
        "padded_width_median": statistics.median(widths),
        "packed_tokens_per_minibatch_median": statistics.median(packed_tokens),
        "padded_tokens_per_minibatch": statistics.median(widths) * mb,
        "max_abs_logprob_diff": max(diffs),
        "median": med,
        "ratio_padded_over_packed": {k: med["padded"][k] / med["packed"][k] for k in med["padded"]},
        "repeats": times,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "repeats"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
