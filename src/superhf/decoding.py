"""What a decode step runs: the logits processors (repetition penalty, temperature, top-k,
top-p, the inverse-CDF draw) in ``decode_processors``'s order, and a faster LM head on CPU.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from superhf.config.common import GenerationConfig


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


class InverseCDFSample(LogitsProcessor):
    """Draws each row's next token from ``softmax(scores)`` by inverse CDF (one uniform per
    row against the cumulative probabilities) and returns scores that are 0 at the drawn
    token and ``-inf`` elsewhere, so greedy decoding emits it.

    The same distribution as ``torch.multinomial``, other tokens for a seed. Why: CPU
    ``multinomial`` draws an Exp(1) variate for every vocabulary entry (3.1 M draws a step at
    64 rows x 49152, ~90 ms: a fifth of a decode step, benchmarks/RESULTS.md); this draws 64.
    """

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float(), dim=-1)
        cdf = probs.cumsum(-1)
        u = torch.rand(len(scores), 1, device=scores.device) * cdf[:, -1:]
        idx = torch.searchsorted(cdf, u, right=True)  # first token whose cdf exceeds u
        # u * total can round up to total: then the most likely token (never a 0-prob one)
        idx = torch.where(idx < scores.shape[-1], idx, probs.argmax(-1, keepdim=True))
        return torch.full_like(scores, float("-inf")).scatter_(1, idx, 0.0)


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
