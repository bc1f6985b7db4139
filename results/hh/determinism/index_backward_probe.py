"""Run to run on CPU (2 threads): the gradient of advanced indexing with repeated indices
(hidden_states[:, logits_to_keep] in a transformers model, whose backward is index_put_ with
accumulate) against unique positions with index_select (backward index_add_), the change of
packing.logit_positions / packed_logprobs. Its output: index_backward_probe.txt."""

import torch
import torch.nn.functional as F

torch.manual_seed(0)
H, V, S, L = 512, 2000, 16, 30
predict_at, targets = [], []
pos = 21
for _ in range(S):  # S rows of one prompt (its last token at 20), L response tokens each
    predict_at += [20] + list(range(pos, pos + L - 1))
    pos += L
    targets += [7] + torch.randint(V, (L - 1,)).tolist()  # every row's first token the same
idx, tgt = torch.tensor(predict_at), torch.tensor(targets)
h0, W = torch.randn(1, pos, H), torch.randn(V, H) / H**0.5
weights = torch.linspace(-1, 1, len(predict_at))


def grad(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    h = h0.clone().requires_grad_()
    if kind == "index (as before)":
        logits = h[:, idx, :][0] @ W.T
        logp = F.log_softmax(logits, -1).gather(-1, tgt[:, None])[:, 0]
    else:
        u, inv = idx.unique(sorted=True, return_inverse=True)
        logp = F.log_softmax(h[:, u, :][0] @ W.T, -1).reshape(-1).index_select(0, inv * V + tgt)
    (logp * weights).sum().backward()
    return h.grad.clone(), logp.detach()


before = grad("index (as before)")[1]
for kind in ("index (as before)", "unique + index_select"):
    first, logp = grad(kind)
    n = sum(not torch.equal(grad(kind)[0], first) for _ in range(100))
    print(
        f"{kind}: the gradient differs from the first in {n} of 100 backwards; "
        f"max |logp - before| {float((logp - before).abs().max()):.2e}; "
        f"threads {torch.get_num_threads()}"
    )
