"""Rows that share a prompt, packed into one sequence so that the prompt is computed once.

RLOO and GRPO score S completions of each prompt. A forward over S left-padded
``prompt + response`` rows computes the prompt S times (and the padding). Packed, a
minibatch is one sequence: each distinct prompt once, then each row's response tokens, with
a block attention mask (a prompt token sees its own prompt's earlier tokens; a response
token sees its whole prompt and its own response's earlier tokens) and every token at the
position it has in its own row. Each response token then gets the log-prob of the padded
forward (up to float rounding), and the gradient, summed over rows, is the same.

``pack_shared_prompts`` builds the inputs from the padded layout (pure tensor code);
``logit_positions`` names the positions whose logits the forward keeps, each once;
``packed_logprobs`` picks each scored token's log-prob from them; ``scatter_logprobs`` puts
the packed log-probs back into the ``[rows, seq-1]`` layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Packed:
    """One packed sequence and where each scored token's log-prob goes.

    input_ids, position_ids: ``[1, T]``; block, parent: ``[T]`` (each token's block, and
    the prompt block a response block reads; a prompt block is its own parent);
    predict_at: ``[N]`` the position whose logits predict scored token n; targets: ``[N]``
    its token id; rows, cols: ``[N]`` where it sits in the ``[rows, seq-1]`` layout.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    block: torch.Tensor
    parent: torch.Tensor
    predict_at: torch.Tensor
    targets: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor

    def attention_mask(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The ``[1, 1, T, T]`` mask: bool (True where a query may attend: SDPA's), or with
        a ``dtype`` additive (0 there, the dtype's minimum elsewhere: eager attention's)."""
        allowed = block_causal(self.block, self.parent)[None, None]
        if dtype is None:
            return allowed
        zero = torch.zeros((), dtype=dtype, device=allowed.device)
        low = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
        return torch.where(allowed, zero, low)


def block_causal(block: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """``[T, T]`` bool: query q may attend key k when k <= q and k is in q's block or in
    the block q's block reads (its prompt)."""
    n = block.shape[0]
    causal = torch.ones(n, n, dtype=torch.bool, device=block.device).tril()
    same = block[None, :] == block[:, None]
    reads = block[None, :] == parent[:, None]
    return causal & (same | reads)


def pack_shared_prompts(ids: torch.Tensor, attn: torch.Tensor, mask: torch.Tensor) -> Packed:
    """Pack left-padded ``prompt + response`` rows (``ids``, ``attn`` ``[rows, W]``; the
    response's targets ``mask`` ``[rows, W-1]``, as ``ppo_rollout.rollout_batch`` builds
    them) into one sequence, each distinct prompt (by its tokens) once."""
    targets = torch.cat([torch.zeros_like(mask[:, :1]), mask], 1).bool()
    present = attn.bool()
    tokens: list[int] = []
    positions: list[int] = []
    block: list[int] = []
    parent: list[int] = []
    prompts: dict[tuple[int, ...], tuple[int, int, int]] = {}  # tokens -> start, length, block
    predict_at: list[int] = []
    scored: list[int] = []
    rows: list[int] = []
    cols: list[int] = []
    for r in range(ids.shape[0]):
        row_ids = ids[r].tolist()
        prompt_cols = (present[r] & ~targets[r]).nonzero().flatten().tolist()
        response_cols = targets[r].nonzero().flatten().tolist()
        if not prompt_cols:
            raise ValueError(f"row {r}: no prompt tokens to pack")
        if response_cols and response_cols[0] <= prompt_cols[-1]:
            raise ValueError(f"row {r}: a response token before the end of its prompt")
        key = tuple(row_ids[c] for c in prompt_cols)
        if key not in prompts:
            b = _next_block(block)
            prompts[key] = (len(tokens), len(key), b)
            tokens += key
            positions += range(len(key))
            block += [b] * len(key)
            parent += [b] * len(key)
        start, length, pb = prompts[key]
        if not response_cols:
            continue
        b = _next_block(block)
        first = len(tokens)
        tokens += [row_ids[c] for c in response_cols]
        positions += range(length, length + len(response_cols))
        block += [b] * len(response_cols)
        parent += [pb] * len(response_cols)
        for k, c in enumerate(response_cols):
            predict_at.append(start + length - 1 if k == 0 else first + k - 1)
            scored.append(row_ids[c])
            rows.append(r)
            cols.append(c - 1)

    def as_tensor(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=ids.device)

    return Packed(
        input_ids=as_tensor(tokens)[None],
        position_ids=as_tensor(positions)[None],
        block=as_tensor(block),
        parent=as_tensor(parent),
        predict_at=as_tensor(predict_at),
        targets=as_tensor(scored),
        rows=as_tensor(rows),
        cols=as_tensor(cols),
    )


def _next_block(block: list[int]) -> int:
    return block[-1] + 1 if block else 0


def logit_positions(packed: Packed) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions, at): the positions whose logits the scored tokens need, each once and in
    order (the forward's ``logits_to_keep``), and for each scored token the index of its
    position among them. The first response token of every row that shares a prompt is
    predicted at that prompt's last token, so ``predict_at`` repeats it; kept with repeats,
    the model's ``hidden_states[:, logits_to_keep]`` would sum the repeats' gradients in its
    backward (index_put_ with accumulate), which on CPU adds them from parallel threads in
    whatever order the threads reach them: the training is then not bit for bit run to run
    (results/hh/README.md, "Sweeps"; ``results/hh/determinism/index_backward_probe.py``)."""
    positions, at = torch.unique(packed.predict_at, sorted=True, return_inverse=True)
    return positions, at


def packed_logprobs(logits: torch.Tensor, at: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets[n]) under the logits row ``at[n]`` (``logits`` ``[positions, vocab]``):
    ``[N]`` in float32, taken with ``index_select``, whose backward (index_add_) sums the
    gradients of repeated rows and tokens in a fixed order on CPU (a serial loop for a 1-D
    tensor; on CUDA it adds atomically). A target id past the vocabulary would read the next
    row; the embedding lookup of the same ids refuses it first."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.reshape(-1).index_select(0, at * logp.shape[-1] + targets)


def scatter_logprobs(packed: Packed, logp: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The packed tokens' log-probs ``logp`` ``[N]`` in the ``[rows, seq-1]`` layout
    (zeros elsewhere), differentiable in ``logp``."""
    out = torch.zeros(shape, dtype=logp.dtype, device=logp.device)
    return out.index_put((packed.rows, packed.cols), logp)
