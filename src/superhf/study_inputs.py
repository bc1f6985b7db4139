"""The hh study's inputs as Markdown tables, rendered from its metrics: how prepare split the
data (``metrics/data.json``), how the two reward models were trained and how they did on
held-out pairs (``metrics/reward_model.json``). Pure: dicts in, Markdown out (no I/O, no
model).
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


def interval_cell(mean: float, low: float, high: float, signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"{mean:{f}} [{low:{f}}, {high:{f}}]"


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


def heldout_table(rm: dict[str, Any]) -> str:
    """Held-out pair accuracy (human labels) of the proxy and the gold with Wilson
    intervals, the length-only baselines and the two models' agreement."""
    h = rm["heldout"]
    lines = ["| on held-out pairs | train pairs | accuracy [95% Wilson] | n |", "|---|---|---|---|"]
    for which in ("proxy", "gold"):
        if which in h:
            a = h[which]
            train = rm.get(which, {}).get("train_pairs", "pretrained")
            cell = interval_cell(a["accuracy"], a["ci_low"], a["ci_high"])
            lines.append(f"| {which} | {train} | {cell} | {a['n']} |")
    for name, a in h.get("length_baselines", {}).items():
        cell = interval_cell(a["accuracy"], a["ci_low"], a["ci_high"])
        lines.append(f"| length only: {name.replace('_', ' ')} | - | {cell} | {a['n']} |")
    if "agreement" in h:
        a = h["agreement"]
        cell = interval_cell(a["agreement"], a["ci_low"], a["ci_high"])
        lines.append(f"| proxy and gold agree | - | {cell} | {a['n']} |")
    return "\n".join(lines) + "\n"


def policy_pairs_table(pp: dict[str, Any]) -> str:
    """The proxy's pairs of base-policy samples (``reward_model.policy_pairs``): how many
    were made and dropped, and the proxy's accuracy on the held-out ones (gold labels)."""
    dropped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in pp["dropped"].items())
    lines = [
        "| policy prompts | pairs (dropped) | train / held out | gold prefers the longer | "
        "proxy on held-out policy pairs [95% Wilson] |",
        "|---|---|---|---|---|",
    ]
    longer, held = pp["gold_longer_wins"], pp.get("proxy_heldout")
    cell = lambda a: interval_cell(a["accuracy"], a["ci_low"], a["ci_high"])  # noqa: E731
    lines.append(
        f"| {pp['prompts']} | {pp['pairs']} ({dropped or 'none'}) | "
        f"{pp['train_pairs']} / {pp['heldout_pairs']} | {cell(longer)} | "
        + (f"{cell(held)} (n={held['n']}) |" if held else "- |")
    )
    return "\n".join(lines) + "\n"


def gold_recipes_table(recipes: dict[str, dict[str, Any]]) -> str:
    """Each gold recipe tried (name -> its run's ``reward_model.json``): the gold's training,
    held-out accuracy, and the proxy it labelled (accuracy, agreement, labels swapped)."""
    lines = [
        "| gold recipe | trained / all parameters | steps | loss: first quarter -> last "
        "quarter | gold accuracy | proxy accuracy | agreement | proxy labels swapped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ci = lambda r, k="accuracy": interval_cell(r[k], r["ci_low"], r["ci_high"])  # noqa: E731
    for name, rm in recipes.items():
        gold, held = rm["gold"], rm["heldout"]
        trained = gold.get("trainable_parameters", gold["parameters"])
        params = f"{trained / 1e6:.1f}M / {gold['parameters'] / 1e6:.1f}M"
        loss = f"{gold['loss_first_quarter']:.4f} -> {gold['loss_last_quarter']:.4f}"
        swapped = rm.get("relabelled", {}).get("share_swapped")
        lines.append(
            f"| {name} | {params} | {gold['steps']} | {loss} | {ci(held['gold'])} | "
            f"{ci(held['proxy'])} | {ci(held['agreement'], 'agreement')} | "
            + (f"{swapped:.1%} |" if swapped is not None else "- |")
        )
    return "\n".join(lines) + "\n"
