"""The hh study's inputs as Markdown tables, rendered from its metrics: how prepare split the
data (``metrics/data.json``) and how the two reward models were trained
(``metrics/reward_model.json``). Pure: dicts in, Markdown out (no I/O, no model).
"""

from __future__ import annotations

from typing import Any

PARTS = ("reward_train", "reward_heldout", "policy", "validation", "eval")
WHAT = {
    "reward_train": "reward models' training pairs",
    "reward_heldout": "reward models' held-out pairs",
    "policy": "policy (training) prompts",
    "validation": "validation prompts (the sweeps' selection set)",
    "eval": "evaluation prompts",
}


def data_table(data: dict[str, Any]) -> str:
    """Each part of the split by first prompt: its first prompts, rows per hh-rlhf subset,
    and preference pairs where the part keeps them; then the extra policy prompts."""
    subsets = list(data["datasets"])
    head = " | ".join(s.replace("_", "-") for s in subsets)
    lines = [
        f"| part | first prompts | rows: {head} | pairs |",
        "|---|---|" + "---|" * len(subsets) + "---|",
    ]
    for name in PARTS:
        part = data["parts"][name]
        rows = " | ".join(str(part.get(f"rows_{s}", 0)) for s in subsets)
        pairs = part.get("pairs", "-")
        lines.append(f"| {name}: {WHAT[name]} | {part['prompts']} | {rows} | {pairs} |")
    total = " | ".join(str(data["datasets"][s]["rows"]) for s in subsets)
    lines.append(f"| all ({data['distinct_prompts']} distinct first prompts) | - | {total} | - |")
    for name, extra in data.get("extra_policy_prompts", {}).items():
        cell = (
            f"+{extra['kept']} ({extra['read']} read, {extra['dropped_repeat_or_overlap']} dropped)"
        )
        lines.append(f"| policy, extra: {name} | {cell} |" + " - |" * (len(subsets) + 1))
    return "\n".join(lines) + "\n"


def reward_training_table(rm: dict[str, Any]) -> str:
    """The proxy and the gold: backbone, parameters (and how many were trained, where
    fewer than all), training pairs and their labels, steps,
    and the mean Bradley-Terry loss over the first and the last quarter of the steps."""
    lines = [
        "| model | backbone | parameters | training pairs | labels | steps | loss: first quarter "
        "-> last quarter |",
        "|---|---|---|---|---|---|---|",
    ]
    relabelled = rm.get("relabelled")
    for which in ("proxy", "gold"):
        m = rm.get(which)
        if not m or "steps" not in m:
            continue
        labels = "human"
        if which == "proxy" and relabelled:
            labels = (
                f"gold's ({relabelled['swapped']} of {relabelled['pairs']} swapped, "
                f"{relabelled['share_swapped']:.1%})"
            )
        params = f"{m['parameters'] / 1e6:.1f}M" if "parameters" in m else "n/a"
        trainable = m.get("trainable_parameters")
        if trainable and "parameters" in m and trainable < m["parameters"]:
            params += f" ({trainable / 1e6:.1f}M trained)"
        loss = f"{m['loss_first_quarter']:.4f} -> {m['loss_last_quarter']:.4f}"
        backbone = m.get("backbone", rm.get("name", "n/a"))
        lines.append(
            f"| {which} | {backbone} | {params} | {m['train_pairs']} | {labels} | {m['steps']} "
            f"| {loss} |"
        )
    return "\n".join(lines) + "\n"
