"""One generation module for SuperHF, PPO and evaluation: prompt formatting, batched
sampling with the KV cache, and trimming a completion where the model starts the next turn.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import (
    DynamicCache,
    DynamicLayer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from superhf.config import GenerationConfig
from superhf.core import tail_forward_inputs
from superhf.params import ParamsError

# trim "later" (today's rule): the next turn starts at "Human:", "Assistant:", or a
# "\n\n<Name>:" of one to three words.
TURN_RE = re.compile(r"Human:|Assistant:|\n\n[^\s:]+(?: [^\s:]+){0,2}:")
# trim "paper": the paper-era regex (../shared/REFERENCE.md): cuts at the first newline,
# double quote or hyphen too (single-line answers), and at the bare word "Human".
PAPER_TRIM_RE = re.compile(r'\n\n[^:]+:|\n|"|-|Human|Assistant')
TRIM_RES = {"later": TURN_RE, "paper": PAPER_TRIM_RE}
_ROLE_RE = re.compile(r"\n\n(Human|Assistant):")


def trim_point(text: str, mode: str = "later") -> int | None:
    """Character index where ``text`` is cut under trim ``mode``; None when it is not cut."""
    if mode == "none":
        return None
    m = TRIM_RES[mode].search(text)
    return m.start() if m else None


def trim_completion(text: str, mode: str = "later") -> str:
    """Cut ``text`` at the first sign of a new dialogue turn (``mode``), and strip it."""
    cut = trim_point(text, mode)
    return (text if cut is None else text[:cut]).strip()


def cut_ids_at_trim(
    ids: Sequence[int], decode: Callable[[list[int]], str], mode: str = "later"
) -> list[int]:
    """The sampled ``ids`` a trimmed completion consists of: all of them when the trim cuts
    nothing (a sampled EOS included), else the shortest prefix whose decoded text covers
    the text kept before the cut (no re-tokenisation: the tokens are the policy's own).
    ``decode`` turns ids into text as the completion was decoded (special tokens skipped).
    """
    ids = list(ids)
    raw = decode(ids)
    cut = trim_point(raw, mode)
    if cut is None:
        return ids
    kept = raw[:cut].rstrip()
    if not kept.strip():
        return []
    for n in range(1, len(ids) + 1):
        if decode(ids[:n]).startswith(kept):
            return ids[:n]
    return ids


@dataclass(frozen=True)
class Completion:
    """One sampled completion: ``text`` is trimmed and stripped (what is scored and shown);
    ``ids`` are the sampled token ids cut at the trim point (what is trained on and what
    the KL diagnostic scores); ``sampled_ids`` are every sampled id, up to and including a
    sampled EOS, without padding."""

    text: str
    ids: list[int]
    sampled_ids: list[int]


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


def check_context(model_dir: str | Path, cfg: GenerationConfig, key: str) -> None:
    """Before any model loads: prompt budget plus new tokens must fit the model's context
    (``config.json``'s position limit); ``key`` names the params section in the error."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    names = ("max_position_embeddings", "n_positions", "n_ctx")
    limit = next((config[n] for n in names if isinstance(config.get(n), int)), None)
    need = cfg.max_prompt_tokens + cfg.max_new_tokens
    if limit is not None and need > limit:
        raise ParamsError(
            f"{key}.max_prompt_tokens + {key}.max_new_tokens = {need} tokens, more than the "
            f"{limit}-token context of {model_dir}"
        )


def format_prompt(prompt: str, tokenizer: PreTrainedTokenizerBase, cfg: GenerationConfig) -> str:
    """The text the policy sees: preamble + raw dialogue, or the model's chat template."""
    if cfg.prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ParamsError(
                "generation.prompt_format is 'chat' but the tokenizer has no template"
            )
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
    (the most likely token always stays). Only the ``ks[0]`` most likely tokens are looked
    at; rows whose top ``k`` hold less than ``top_p`` of the mass try the next, larger
    ``k``, and after the last the full sort. On CPU, sorting a 49k vocabulary costs about
    5x a top-1024, and a top-1024 about 2.5x a top-256 (benchmarks/RESULTS.md). The
    packaged policy's nucleus at top-p 0.9 measured 53 tokens (median of 64 rows) and at
    most 159, so 256 settles nearly every row; a first tier of 64 or 128 sent many rows on
    to the second and was slower (88-100 ms a step at 64 rows against 28 ms for 256).
    The kept logits are written into a fresh ``-inf`` tensor (measured: a 64 x 49k
    ``masked_fill`` took 12 ms a step, a fill plus a scatter of the kept entries ~1 ms).
    """

    def __init__(self, top_p: float, k: int | tuple[int, ...] = (256, 1024)) -> None:
        self.top_p, self.ks = top_p, (k,) if isinstance(k, int) else tuple(k)
        self.full = TopPLogitsWarper(top_p)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = scores.float().softmax(-1)
        out = torch.full_like(scores, -float("inf"))
        rows = torch.arange(scores.shape[0], device=scores.device)  # rows not yet settled
        for tier, k in enumerate(self.ks):
            # the first tier reads every row in place: copying 64 rows of 49k (probs[rows])
            # costs 8 ms, as much as the softmax; later tiers take the few rows left
            p, s = (probs, scores) if tier == 0 else (probs[rows], scores[rows])
            top, idx = p.topk(min(k, scores.shape[-1]), dim=-1)
            cum = top.cumsum(-1)
            keep_sorted = (cum - top) < self.top_p
            keep_sorted[:, 0] = True
            done = cum[:, -1] >= self.top_p  # the whole nucleus lies inside this top k
            kept = s.gather(1, idx).masked_fill(~(keep_sorted & done[:, None]), -float("inf"))
            if tier == 0:
                out.scatter_(1, idx, kept)
            else:
                out[rows[done]] = out[rows[done]].scatter_(1, idx[done], kept[done])
            rows = rows[~done]
            if not len(rows):
                return out
        out[rows] = self.full(input_ids[rows], scores[rows])  # nucleus wider than every k
        return out


class RepetitionPenalty(LogitsProcessor):
    """transformers' ``RepetitionPenaltyLogitsProcessor`` (a seen token's logit divided by
    ``penalty`` when positive, multiplied when negative), in one gather and one scatter.
    Theirs pads the 49k-wide scores by a column and slices it off again (two extra copies,
    and a strided result every later processor reads): measured 21 ms a step at 64 rows
    against ~2 ms for this (benchmarks/RESULTS.md). Same values (tests/test_sampling.py)."""

    def __init__(self, penalty: float) -> None:
        self.penalty = penalty
        self.theirs = RepetitionPenaltyLogitsProcessor(penalty)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if int(input_ids.max()) >= scores.shape[-1]:  # ids past the head: theirs drops them
            return self.theirs(input_ids, scores)
        score = scores.gather(1, input_ids)
        score = torch.where(score < 0, score * self.penalty, score / self.penalty)
        return scores.scatter(1, input_ids, score)


def sampling_processors(cfg: GenerationConfig) -> LogitsProcessorList:
    """Temperature, then top-k, then top-p, in transformers' own order. They are passed as
    custom processors with ``generate``'s own warpers off: transformers runs custom
    processors before its temperature warper, so a custom top-p there would pick its
    nucleus from the untempered distribution."""
    procs = LogitsProcessorList()
    if cfg.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(cfg.temperature))
    if cfg.top_k > 0:
        procs.append(TopKLogitsWarper(cfg.top_k))
    if cfg.top_p < 1.0:
        procs.append(TopPFromTopK(cfg.top_p))
    return procs


def decode_processors(cfg: GenerationConfig, do_sample: bool = True) -> LogitsProcessorList:
    """Every processor a decode step runs on the logits: the repetition penalty, then (when
    sampling) ``sampling_processors``. ``generate_ids`` passes these with ``generate``'s own
    penalty and warpers off."""
    procs = LogitsProcessorList()
    if cfg.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(cfg.repetition_penalty))
    if do_sample:
        procs.extend(sampling_processors(cfg))
    return procs


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


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of a buffer with spare room, so a
    decode step writes its one new position in place instead of ``torch.cat`` copying the
    whole cache. Measured (benchmarks/RESULTS.md): at 64 rows ``cat`` was 24% of a decode
    step's forward. Attention sees the same values and shape as with ``cat``, so what is
    sampled is unchanged (tests/test_sampling.py)."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        old = self.keys.shape[-2] if self.keys.numel() else 0
        new = old + key_states.shape[-2]
        buf = getattr(self, "_buffers_kv", None)
        reuse = (
            buf is not None
            and new <= buf[0].shape[-2]
            and self.keys.numel() > 0
            and self.keys.data_ptr() == buf[0].data_ptr()  # not replaced by batch_select etc.
            and self.keys.shape[:2] == buf[0].shape[:2]
        )
        if not reuse:  # double the room: a decode of T tokens reallocates O(log T) times
            shape = (*key_states.shape[:2], 2 * new, key_states.shape[-1])
            buf = tuple(
                torch.empty(shape, dtype=key_states.dtype, device=key_states.device)
                for _ in range(2)
            )
            if old:
                buf[0][:, :, :old] = self.keys
                buf[1][:, :, :old] = self.values
            self._buffers_kv = buf
        buf[0][:, :, old:new] = key_states
        buf[1][:, :, old:new] = value_states
        self.keys, self.values = buf[0][:, :, :new], buf[1][:, :, :new]
        return self.keys, self.values


def growing_cache(model: PreTrainedModel) -> DynamicCache:
    """A ``DynamicCache`` for ``model`` whose full-attention layers are ``GrowingLayer``s
    (sliding-window layers, if any, keep transformers' own class)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [GrowingLayer() if type(x) is DynamicLayer else x for x in cache.layers]
    return cache


def prefill_shared(model: PreTrainedModel, enc: dict[str, torch.Tensor], rows: torch.Tensor):
    """Run every distinct prompt (all tokens but its last) through the model once, then copy
    its KV cache to each row that samples from it. ``generate`` given this cache feeds only
    the last prompt token, so S completions of one prompt cost one prefill, not S."""
    cache = growing_cache(model)
    ids, attn = enc["input_ids"][:, :-1], enc["attention_mask"][:, :-1]
    model(**tail_forward_inputs(ids, attn, 1), use_cache=True, **{cache_kwarg(model): cache})
    cache.batch_select_indices(rows)
    return cache


def sampled_ids(new_tokens: torch.Tensor, eos_id: int | None) -> list[list[int]]:
    """Each row's sampled ids: up to and including its first EOS (the padding after it
    dropped), or all of them when it never sampled EOS."""
    out = []
    for row in new_tokens.tolist():
        if eos_id is not None and eos_id in row:
            row = row[: row.index(eos_id) + 1]
        out.append(row)
    return out


@torch.inference_mode()
def generate_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    *,
    do_sample: bool = True,
    share_prefill: bool = True,
    **extra: object,
) -> list[list[int]]:
    """Sample one completion per formatted prompt text: its new token ids (``sampled_ids``).

    Batches of ``cfg.batch_size`` rows, KV cache on. Rows with the same prompt (SuperHF's
    superbatch, best-of-n) share one prefill (``prefill_shared``) unless ``share_prefill``
    is False. The caller seeds torch's RNG. ``extra`` goes to ``model.generate`` (the
    benchmarks pass ``min_new_tokens``).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[list[int]] = []
    kwargs = dict(
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )
    # generate's own repetition penalty and warpers off: ours run, in order, in their place
    if do_sample:
        kwargs.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    kwargs["logits_processor"] = decode_processors(cfg, do_sample)
    with fast_cpu_head(model):
        batches = range(0, len(texts), cfg.batch_size)
        for start in tqdm(
            batches, desc="generate", unit="batch", disable=None, delay=2, leave=False
        ):
            chunk = list(texts[start : start + cfg.batch_size])
            distinct = list(dict.fromkeys(chunk)) if share_prefill else chunk
            inputs = tokenize_prompts(tokenizer, distinct, cfg.max_prompt_tokens).to(device)
            cached = {cache_kwarg(model): growing_cache(model)}
            if len(distinct) < len(chunk):  # tokenized once per prompt, then one row per text
                where = {t: i for i, t in enumerate(distinct)}
                rows = torch.tensor([where[t] for t in chunk], device=device)
                if int(inputs["attention_mask"].sum(1).min()) >= 2:
                    cached[cache_kwarg(model)] = prefill_shared(model, inputs, rows)
                inputs = {k: v[rows] for k, v in inputs.items()}
            seqs = model.generate(**inputs, **kwargs, **cached, **extra)
            out += sampled_ids(seqs[:, inputs["input_ids"].shape[1] :], tokenizer.eos_token_id)
    model.train(was_training)
    return out


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    **kwargs: object,
) -> list[str]:
    """Sample one raw completion (new tokens only, decoded) per formatted prompt text;
    arguments as ``generate_ids``."""
    ids = generate_ids(model, tokenizer, texts, cfg, **kwargs)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def sample_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: GenerationConfig,
    **kwargs: object,
) -> list[Completion]:
    """Sample, then trim each completion under ``cfg.trim``: its text and its sampled ids
    cut at the trim point (``cut_ids_at_trim``). Arguments as ``generate_ids``."""
    rows = generate_ids(model, tokenizer, texts, cfg, **kwargs)

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    return [
        Completion(
            trim_completion(decode(ids), cfg.trim), cut_ids_at_trim(ids, decode, cfg.trim), ids
        )
        for ids in rows
    ]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of whitespace tokens (0 when there are none)."""
    grams = [
        tuple(words[i : i + n])
        for words in (t.split() for t in texts)
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0
