"""PPO's policy: a causal LM with a scalar value head on its last hidden state (TRL 0.4's
design), the model the PPO loop trains."""

from __future__ import annotations

import torch


class PolicyWithValueHead(torch.nn.Module):
    """A causal LM plus a scalar value head on its last hidden state. ``head`` zero: a
    zero-initialised linear head; trl: TRL 0.4's, PyTorch's default init after dropout 0.1
    (active in train mode, as TRL's head was during the rollout forward too)."""

    def __init__(self, policy: torch.nn.Module, head: str = "zero") -> None:
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.dropout = torch.nn.Dropout(0.1 if head == "trl" else 0.0)
        self.value_head = torch.nn.Linear(hidden, 1)
        if head == "zero":
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, position_ids=None, logits_to_keep: int = 0):
        """(logits, values) for the last ``logits_to_keep`` columns (0: all of them)."""
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=logits_to_keep,
            output_hidden_states=True,
        )
        hidden = (
            out.hidden_states[-1][:, -logits_to_keep:] if logits_to_keep else out.hidden_states[-1]
        )
        values = self.value_head(self.dropout(hidden.float())).squeeze(-1)
        return out.logits, values
