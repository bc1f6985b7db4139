"""One generation module for SuperHF, PPO and evaluation: prompt formatting, batched
sampling with the KV cache, and trimming a completion where the model starts the next turn.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm
from transformers import (
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TopPLogitsWarper,
)

from superhf.config import GenerationConfig
from superhf.core import tail_forward_inputs

# The next turn starts at "Human:", "Assistant:", or a "\n\n<Name>:" of one to three words.
# (The paper's code cut at "\n\n[^:]+:|Human|Assistant", which also cut a reply that merely
# mentions the word "Human".)
TURN_RE = re.compile(r"Human:|Assistant:|\n\n[^\s:]+(?: [^\s:]+){0,2}:")
_ROLE_RE = re.compile(r"\n\n(Human|Assistant):")


def trim_completion(text: str) -> str:
    """Cut ``text`` at the first sign of a new dialogue turn, and strip it."""
    m = TURN_RE.search(text)
    return (text[: m.start()] if m else text).strip()


def dialogue_messages(prompt: str) -> list[dict[str, str]]:
    """``\\n\\nHuman: a\\n\\nAssistant: b ...`` -> chat messages (the last empty turn dropped)."""
    parts = _ROLE_RE.split(prompt)
    messages = []
    for role, text in zip(parts[1::2], parts[2::2]):
        text = text.strip()
        if text:
            messages.append({"role": "user" if role == "Human" else "assistant", "content": text})
    if not messages:
        messages.append({"role": "user", "content": prompt.strip()})
    return messages


def format_prompt(prompt: str, tokenizer: PreTrainedTokenizerBase, cfg: GenerationConfig) -> str:
    """The text the policy sees: preamble + raw dialogue, or the model's chat template."""
    if cfg.prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("generation.prompt_format is 'chat' but the tokenizer has no template")
        messages = dialogue_messages(prompt)
        if cfg.preamble:
            messages = [{"role": "system", "content": cfg.preamble}, *messages]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return cfg.preamble + prompt if cfg.preamble else prompt


def tokenize_prompts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_prompt_tokens: int
) -> dict[str, torch.Tensor]:
    """Left-padded prompt batch; long prompts lose their beginning, never their end."""
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    return tokenizer(
        list(texts),
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_prompt_tokens,
        add_special_tokens=False,
    )


class TopPFromTopK(LogitsProcessor):
    """Nucleus (top-p) filtering with the result of transformers' ``TopPLogitsWarper``,
    without sorting the whole vocabulary at every decode step.

    A token is kept when the probability mass of the tokens above it is below ``top_p``
    (the most likely token always stays). Only the ``k`` most likely tokens are looked at;
    a row whose top ``k`` hold less than ``top_p`` of the mass falls back to the full sort.
    On CPU, sorting a 49k vocabulary costs about 5x the top-k (benchmarks/RESULTS.md).
    """

    def __init__(self, top_p: float, k: int = 1024) -> None:
        self.top_p, self.k = top_p, k
        self.full = TopPLogitsWarper(top_p)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(self.k, scores.shape[-1])
        probs = scores.float().softmax(-1)
        top, idx = probs.topk(k, dim=-1)
        cum = top.cumsum(-1)
        keep_sorted = (cum - top) < self.top_p
        keep_sorted[:, 0] = True
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, idx, keep_sorted)
        out = scores.masked_fill(~keep, -float("inf"))
        flat = cum[:, -1] < self.top_p  # rows whose nucleus is wider than k: full sort
        if bool(flat.any()):
            out[flat] = self.full(input_ids[flat], scores[flat])
        return out


class RowsTimesWeightHead(torch.nn.Module):
    """A linear LM head computed as ``(W @ x.T).T``. For the few rows of a decode step, CPU
    BLAS runs this orientation of the same product 1.6-2x faster than ``x @ W.T``
    (benchmarks/RESULTS.md); ``generate`` swaps it in on CPU only, sharing the weight."""

    def __init__(self, head: torch.nn.Linear) -> None:
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = (self.head.weight @ flat.T).T
        if self.head.bias is not None:
            out = out + self.head.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


@contextmanager
def fast_cpu_head(model: PreTrainedModel):
    """Use ``RowsTimesWeightHead`` for the duration (CPU and a plain linear head only)."""
    head = model.get_output_embeddings()
    device = next(model.parameters()).device
    if device.type != "cpu" or type(head) is not torch.nn.Linear:
        yield
        return
    model.set_output_embeddings(RowsTimesWeightHead(head))
    try:
        yield
    finally:
        model.set_output_embeddings(head)


def cache_kwarg(model: PreTrainedModel) -> str:
    """The name this transformers version gives the KV-cache argument (``cache`` from 5.x's
    rename on, ``past_key_values`` before it)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return (
        "cache"
        if "cache" in inspect.signature(type(base).forward).parameters
        else "past_key_values"
    )


def prefill_shared(model: PreTrainedModel, enc: dict[str, torch.Tensor], rows: torch.Tensor):
    """Run every distinct prompt (all tokens but its last) through the model once, then copy
    its KV cache to each row that samples from it. ``generate`` given this cache feeds only
    the last prompt token, so S completions of one prompt cost one prefill, not S."""
    cache = DynamicCache(config=model.config)
    ids, attn = enc["input_ids"][:, :-1], enc["attention_mask"][:, :-1]
    model(**tail_forward_inputs(ids, attn, 1), use_cache=True, **{cache_kwarg(model): cache})
    cache.batch_select_indices(rows)
    return cache


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    *,
    do_sample: bool = True,
    share_prefill: bool = True,
    **extra: object,
) -> list[str]:
    """Sample one raw completion (new tokens only, decoded) per formatted prompt text.

    Batches of ``cfg.batch_size`` rows, KV cache on. Rows with the same prompt (SuperHF's
    superbatch, best-of-n) share one prefill (``prefill_shared``) unless ``share_prefill``
    is False. The caller seeds torch's RNG. ``extra`` goes to ``model.generate`` (the
    benchmarks pass ``min_new_tokens``).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    kwargs = dict(
        max_new_tokens=cfg.max_new_tokens,
        repetition_penalty=cfg.repetition_penalty,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )
    if do_sample:
        kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=1.0, top_k=0)
        if cfg.top_p < 1.0:  # after temperature, as transformers orders its own warper
            kwargs["logits_processor"] = LogitsProcessorList([TopPFromTopK(cfg.top_p)])
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with fast_cpu_head(model):
        batches = range(0, len(texts), cfg.batch_size)
        for start in tqdm(
            batches, desc="generate", unit="batch", disable=None, delay=2, leave=False
        ):
            chunk = list(texts[start : start + cfg.batch_size])
            distinct = list(dict.fromkeys(chunk)) if share_prefill else chunk
            inputs = tokenize_prompts(tokenizer, distinct, cfg.max_prompt_tokens).to(device)
            cached = {}
            if len(distinct) < len(chunk):  # tokenized once per prompt, then one row per text
                where = {t: i for i, t in enumerate(distinct)}
                rows = torch.tensor([where[t] for t in chunk], device=device)
                if int(inputs["attention_mask"].sum(1).min()) >= 2:
                    cached[cache_kwarg(model)] = prefill_shared(model, inputs, rows)
                inputs = {k: v[rows] for k, v in inputs.items()}
            seqs = model.generate(**inputs, **kwargs, **cached, **extra)
            new = seqs[:, inputs["input_ids"].shape[1] :]
            out += tokenizer.batch_decode(new, skip_special_tokens=True)
    model.train(was_training)
    return out


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of whitespace tokens (0 when there are none)."""
    grams = [
        tuple(words[i : i + n])
        for words in (t.split() for t in texts)
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0
