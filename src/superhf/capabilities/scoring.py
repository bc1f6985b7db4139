"""The log-likelihood core every standard task goes through: requests tokenised as
lm-eval does, contexts shared between the requests that continue them, padded batches."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from superhf.core import tail_forward_inputs

DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback when a config names no context length


def model_max_length(model) -> int:
    """The model's context length, looked up as lm-eval's ``hf`` model does (``n_positions``,
    ``max_position_embeddings``, ``n_ctx`` of the text config), else 2048."""
    cfg = getattr(model.config, "text_config", None) or model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    return DEFAULT_MAX_LENGTH


def encode_request(tok, ctx: str, cont: str, max_length: int) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) of one request, tokenised separately.

    Truncation follows lm-eval: context + continuation keep their last ``max_length + 1``
    tokens, the model sees all but the last one, so a context of exactly ``max_length``
    tokens is not cut. The continuation is cut only when it alone is longer than that.
    """
    c_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    x_ids = tok(cont, add_special_tokens=False)["input_ids"]
    if not c_ids:  # a first token needs something to condition on
        c_ids = [tok.eos_token_id]
    ids = (c_ids + x_ids)[-(max_length + 1) :]
    n = min(len(x_ids), len(ids) - 1)
    return ids[: len(ids) - n], ids[len(ids) - n :]


@torch.inference_mode()
def loglikelihood(
    model,
    tok,
    requests: Sequence[tuple[str, str]],
    batch_size: int = 16,
    max_length: int | None = None,
    share_context: bool = True,
) -> list[tuple[float, bool]]:
    """(sum log p(continuation | context), continuation is the greedy prediction) per request.

    Context and continuation are tokenised separately and concatenated (as lm-eval does),
    so the continuation's tokens do not depend on how the context ends. Long contexts lose
    their beginning (``max_length``: the model's context length by default, as lm-eval).

    With ``share_context`` a context is run once for all the requests that continue it:
    requests whose model input is identical (single-token choices) share one row, and
    multi-token choices after the same context reuse its key/value cache. The scores equal
    one forward per request up to float rounding (tested).
    """
    max_length = max_length or model_max_length(model)
    if share_context:  # a request asked twice (HHH repeats answers across pairs) runs once
        uniq = list(dict.fromkeys(requests))
        if len(uniq) < len(requests):
            got = dict(zip(uniq, loglikelihood(model, tok, uniq, batch_size, max_length)))
            return [got[r] for r in requests]
    encoded = [encode_request(tok, c, x, max_length) for c, x in requests]
    out: list[tuple[float, bool]] = [(0.0, False)] * len(encoded)
    single, shared = list(range(len(encoded))), []
    if share_context:
        by_ctx: dict[tuple[int, ...], list[int]] = {}
        for i, (c_ids, x_ids) in enumerate(encoded):
            if len(x_ids) > 1:
                by_ctx.setdefault(tuple(c_ids), []).append(i)
        # longest contexts first, so that a forward's contexts have similar lengths
        groups = sorted(
            (g for g in by_ctx.values() if len(g) > 1), key=lambda g: -len(encoded[g[0]][0])
        )
        in_group = {i for g in groups for i in g}
        single = [i for i in single if i not in in_group]
        shared = groups
    _score_rows(model, tok, encoded, single, batch_size, out, dedupe=share_context)
    # contexts of similar length share a forward (at most batch_size continuations, one
    # group may exceed it), so that left padding stays a small share of the work
    ctx_lens = [len(encoded[g[0]][0]) for g in shared]
    for chunk in padded_batches(ctx_lens, [len(g) for g in shared], batch_size):
        _score_prefix_groups(model, tok, encoded, [shared[j] for j in chunk], batch_size, out)
    return out


PAD_SLACK = 1.25  # a batch's padded tokens stay within this factor of its real tokens


def padded_batches(
    lengths: Sequence[int],
    weights: Sequence[int] | None = None,
    max_weight: int = 16,
    slack: float = PAD_SLACK,
) -> list[list[int]]:
    """Consecutive batches of indices over ``lengths`` sorted longest first: a batch ends
    when its weight (rows by default) would pass ``max_weight`` or its padded size (rows x
    the longest) would pass ``slack`` x its real tokens. An item heavier than
    ``max_weight`` gets a batch of its own."""
    weights = weights or [1] * len(lengths)
    if list(lengths) != sorted(lengths, reverse=True):
        raise ValueError("padded_batches expects lengths sorted longest first")
    batches: list[list[int]] = []
    cur: list[int] = []
    real = weight = 0
    for i, n in enumerate(lengths):
        if cur:
            rows = len(cur) + 1
            over_pad = rows * lengths[cur[0]] > slack * (real + n)
            if weight + weights[i] > max_weight or over_pad:
                batches.append(cur)
                cur, real, weight = [], 0, 0
        cur.append(i)
        real += n
        weight += weights[i]
    if cur:
        batches.append(cur)
    return batches


def _score_rows(model, tok, encoded, which, batch_size, out, dedupe: bool) -> None:
    """One forward row per distinct model input (context + continuation minus its last
    token); the logits of the last ``len(continuation)`` columns score each request."""
    rows: dict[tuple[int, ...], list[int]] = {}
    for i in which:
        c_ids, x_ids = encoded[i]
        inp = tuple(c_ids + x_ids[:-1])
        rows.setdefault(inp if dedupe else (i, *inp), []).append(i)
    keys = sorted(rows, key=lambda k: -len(k))
    device = next(model.parameters()).device
    lengths = [len(k) - (0 if dedupe else 1) for k in keys]
    batches = padded_batches(lengths, None, batch_size)
    for batch in tqdm(batches, desc="log-likelihood", disable=None, delay=2, leave=False):
        chunk = [keys[j] for j in batch]
        inps = [k if dedupe else k[1:] for k in chunk]
        width = max(len(x) for x in inps)
        # left padding puts every continuation at the right end, so logits are computed for
        # the last `keep` columns only (position_ids make the padding invisible)
        keep = max(len(encoded[i][1]) for k in chunk for i in rows[k])
        ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, inp in enumerate(inps):
            ids[r, width - len(inp) :] = torch.tensor(inp)
            attn[r, width - len(inp) :] = 1
        logits = model(**tail_forward_inputs(ids.to(device), attn.to(device), keep)).logits
        logp = F.log_softmax(logits.float(), dim=-1)
        for r, k in enumerate(chunk):
            for i in rows[k]:
                x_ids = encoded[i][1]
                lp = logp[r, keep - len(x_ids) :]
                out[i] = _ll_greedy(lp, x_ids, device)


def _ll_greedy(lp: torch.Tensor, x_ids: list[int], device) -> tuple[float, bool]:
    target = torch.tensor(x_ids, device=device)
    ll = lp.gather(-1, target[:, None]).sum().item()
    return ll, bool(torch.equal(lp.argmax(-1), target))


def _score_prefix_groups(
    model, tok, encoded, groups: list[list[int]], batch_size: int, out
) -> None:
    """The contexts of a few groups in one left-padded forward with a cache; then the groups'
    continuations, longest first in batches of similar length, each over a copy of the
    cached contexts."""
    device = next(model.parameters()).device
    ctxs = [encoded[g[0]][0] for g in groups]
    width = max(map(len, ctxs))
    ids = torch.full((len(ctxs), width), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(ctxs), width), dtype=torch.long)
    for r, c in enumerate(ctxs):
        ids[r, width - len(c) :] = torch.tensor(c)
        attn[r, width - len(c) :] = 1
    ids, attn = ids.to(device), attn.to(device)
    first = model(**tail_forward_inputs(ids, attn, 1), use_cache=True)
    first_lp = F.log_softmax(first.logits[:, -1].float(), dim=-1)  # predicts token 0
    cache_key = "cache" if "cache" in first else "past_key_values"  # renamed in transformers 5
    cache = first.get(cache_key)
    members = sorted(
        ((r, i) for r, g in enumerate(groups) for i in g), key=lambda m: -len(encoded[m[1]][1])
    )
    batches = padded_batches([len(encoded[i][1]) - 1 for _, i in members], None, batch_size)
    for b, batch in enumerate(batches):
        sub = [members[j] for j in batch]
        owner = torch.tensor([r for r, _ in sub], device=device)
        conts = [encoded[i][1][:-1] for _, i in sub]  # the last token is only a target
        cw = max(map(len, conts))
        logits = None
        if cw:
            c = cache if b == len(batches) - 1 else copy.deepcopy(cache)
            c.batch_select_indices(owner)
            x = torch.full((len(sub), cw), tok.pad_token_id, dtype=torch.long, device=device)
            xa = torch.zeros((len(sub), cw), dtype=torch.long, device=device)
            for r, t in enumerate(conts):
                x[r, : len(t)] = torch.tensor(t)
                xa[r, : len(t)] = 1  # right padding: pads come after every real token
            mask = torch.cat([attn[owner], xa], dim=1)
            pos = attn.sum(1)[owner, None] + torch.arange(cw, device=device)[None]
            logits = model(
                input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True, **{cache_key: c}
            ).logits
        for r, (o, i) in enumerate(sub):
            x_ids = encoded[i][1]
            lp = first_lp[o][None]
            if len(x_ids) > 1:
                lp = torch.cat([lp, F.log_softmax(logits[r, : len(x_ids) - 1].float(), dim=-1)])
            out[i] = _ll_greedy(lp, x_ids, device)


HHH_CHUNK = 128  # columns whose full-vocabulary log-probs exist at once (paper HHH scorer)


@torch.inference_mode()
def dialogue_logprob_sums(
    model, seqs: list[list[int]], pad_id: int, bs: int = 8, chunk: int | None = None
) -> list[float]:
    """sum_t log p(ids[t] | ids[<t]) over t >= 1 of each sequence, ``bs`` rows per forward.

    Whole dialogues are long: the vocabulary-sized logits of every position of a batch of
    8 need tens of GB. The forward returns hidden states only; the LM head, the
    log-softmax and the gather of the target tokens run ``chunk`` columns at a time, so
    at most ``bs x chunk x vocab`` log-probs exist at once. Same sums as one full
    log-softmax (tested). ``chunk`` defaults to ``HHH_CHUNK``."""
    chunk = chunk or HHH_CHUNK
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    batches = padded_batches([len(seqs[i]) for i in order], None, bs)
    out = [0.0] * len(seqs)
    for batch in tqdm(batches, desc="log-likelihood", disable=None, delay=2, leave=False):
        rows = [seqs[order[j]] for j in batch]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for r, x in enumerate(rows):  # left padding; position_ids make it invisible
            ids[r, width - len(x) :], attn[r, width - len(x) :] = torch.tensor(x), 1
        fwd = tail_forward_inputs(ids.to(device), attn.to(device), 0)
        fwd.pop("logits_to_keep")
        hidden = model.base_model(**fwd).last_hidden_state
        total = torch.zeros(len(rows), device=device)
        m = fwd["attention_mask"]  # a real token predicted from a real one
        for c in range(0, width - 1, chunk):
            logp = F.log_softmax(head(hidden[:, c : c + chunk]).float(), dim=-1)
            target = fwd["input_ids"][:, c + 1 : c + 1 + chunk]
            picked = logp[:, : target.shape[1]].gather(-1, target[..., None]).squeeze(-1)
            total += (picked * m[:, c : c + target.shape[1]] * m[:, c + 1 : c + 1 + chunk]).sum(-1)
        for r, j in enumerate(batch):
            out[order[j]] = float(total[r])
    return out
