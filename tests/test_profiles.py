"""Issue 12, part 5: the two paper profiles. Every value of ../shared/REFERENCE.md's tables
resolves from the matching profile, through the code `python -m superhf.profile` runs:
``paper`` = Tables 2 and 3 as printed, ``paper-run`` = the runs the paper links."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from superhf.config.common import PAPER_PREAMBLE
from superhf.params import ParamsError
from superhf.profile import resolve

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "REFERENCE.md"


class Ours:
    """A cell REFERENCE.md leaves empty ("-"): the profile's value is our choice, ``value``."""

    def __init__(self, value: Any) -> None:
        self.value = value


# REFERENCE.md "SuperHF" table: row label -> (params keys, Table 2 value, linked run's value);
# Ours(v): the column has no value ("-") and the profile keeps v. A row with several keys
# lists one value per key.
SUPERHF_ROWS: dict[str, tuple[tuple[str, ...], tuple, tuple]] = {
    "prompts": (("superhf.num_prompts",), (2000,), (2000,)),
    "top-K": (("superhf.top_k",), (1,), (1,)),
    "learning rate": (("superhf.optim.lr",), (1e-5,), (1e-6,)),
    "scheduler / warmup": (("superhf.optim.scheduler", "superhf.optim.warmup_steps"),
                           ("cosine", 100), ("cosine", 100)),
    "max new tokens": (("superhf.generation.max_new_tokens",), (64,), (64,)),
    "superbatch / minibatch": (("superhf.superbatch_size", "superhf.minibatch_size"),
                               (32, 8), (32, 8)),
    "precision": (("superhf.optim.mixed_precision",), ("fp32",), ("fp32",)),
    "repetition penalty / temperature / top_p": (
        ("superhf.generation.repetition_penalty", "superhf.generation.temperature",
         "superhf.generation.top_p"), (1.05, 1.0, 0.9), (1.05, 1.0, 0.95)),
    "length_penalty": (("superhf.length_penalty",), (Ours(0.0),), (0.01,)),
    "inverse_loss_penalty": (("superhf.inverse_loss_penalty",), (Ours(0.0),), (0.01,)),
    "reward-model max length": (("reward_model.max_length",), (Ours(512),), (1024,)),
}  # fmt: skip

# Prose facts of the linked SuperHF run (REFERENCE.md, bullets under the table).
SUPERHF_RUN_FACTS = {
    "superhf.generation.top_k": 50,  # never set: transformers 4.26's default
    "superhf.generation.trim": "paper",
    "superhf.generation.prompt_format": "raw",
    "superhf.generation.preamble": PAPER_PREAMBLE,
    "superhf.append_eos": False,
    "superhf.keep_sampled_eos": False,  # no EOS was ever a target
    "superhf.reward_mean_over": "nonempty",  # Figure 2 left empty completions out
    "superhf.optim.weight_decay": 0.01,  # torch AdamW's default
    "superhf.prompt_accumulation": 1,
    "reward_model.input_format": "upstream",
}

# Table 3 as printed: both profiles.
TABLE3 = {"rlhf.adap_kl_ctrl": True, "rlhf.init_kl_coef": 0.2, "rlhf.target": 6, "rlhf.horizon": 10000,
          "rlhf.gamma": 1, "rlhf.lam": 0.95, "rlhf.cliprange": 0.2, "rlhf.cliprange_value": 0.2,
          "rlhf.vf_coef": 0.1, "rlhf.ppo_epochs": 4, "rlhf.optim.max_grad_norm": None,
          "rlhf.generation.top_p": 1.0}  # fmt: skip

# The RLHF run behind Figure 3 (rlhf_config.yaml@57593d0): paper-run only.
RLHF_RUN = {"rlhf.optim.lr": 1.41e-5, "rlhf.batch_size": 32, "rlhf.minibatch_size": 8,
            "rlhf.generation.max_new_tokens": 32, "rlhf.num_prompts": 2000,
            "rlhf.optim.scheduler": "linear", "rlhf.optim.warmup_steps": 20,
            "rlhf.generation.top_k": 0, "rlhf.generation.top_p": 1.0,
            "rlhf.generation.repetition_penalty": 1.0, "rlhf.whiten_advantages": "minibatch",
            "rlhf.generation.trim": "paper", "rlhf.response": "upstream", "rlhf.value_head": "trl",
            "rlhf.drop_last": True, "rlhf.max_prompt_chars": 1024}  # fmt: skip


def get(params: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        params = params[key]
    return params


@pytest.mark.parametrize("row", list(SUPERHF_ROWS))
@pytest.mark.parametrize("profile", ["paper", "paper-run"])
def test_superhf_table_resolves_from_its_profile(profile: str, row: str) -> None:
    keys, table2, run = SUPERHF_ROWS[row]
    want = table2 if profile == "paper" else run
    params = resolve(profile)
    for key, value in zip(keys, want):
        expected = value.value if isinstance(value, Ours) else value
        assert get(params, key) == expected, (profile, row, key)


@pytest.mark.parametrize("profile", ["paper", "paper-run"])
def test_table3_resolves_from_both_profiles(profile: str) -> None:
    params = resolve(profile)
    assert {k: get(params, k) for k in TABLE3} == TABLE3


def test_paper_run_has_the_linked_runs_extras() -> None:
    params = resolve("paper-run")
    assert {k: get(params, k) for k in SUPERHF_RUN_FACTS} == SUPERHF_RUN_FACTS
    assert {k: get(params, k) for k in RLHF_RUN} == RLHF_RUN
    assert get(params, "rlhf.generation.preamble") == PAPER_PREAMBLE[:-1] + ":"


def test_paper_keeps_the_printed_tables_and_our_defaults() -> None:
    params = resolve("paper")
    assert get(params, "superhf.length_penalty") == get(params, "superhf.inverse_loss_penalty") == 0
    assert get(params, "superhf.append_eos") is True
    assert get(params, "rlhf.whiten_advantages") == "batch"
    assert get(params, "superhf.generation.top_k") == 0
    assert get(params, "superhf.keep_sampled_eos") is True
    assert get(params, "superhf.reward_mean_over") == "all"
    assert get(params, "rlhf.response") == "sampled" and get(params, "rlhf.value_head") == "zero"
    assert get(params, "rlhf.drop_last") is False and get(params, "rlhf.max_prompt_chars") is None


def test_paper_run_uses_the_paper_profiles_models_and_data() -> None:
    paper, run = resolve("paper"), resolve("paper-run")
    for section in ("prepare", "base_policy"):
        assert run[section] == paper[section]
    for key in ("source", "name", "gold_name", "revision"):
        assert run["reward_model"][key] == paper["reward_model"][key]


def test_extends_loops_and_unknown_parents_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b\n")
    (tmp_path / "b.yaml").write_text("extends: a\n")
    (tmp_path / "c.yaml").write_text("extends: nope\n")
    with pytest.raises(ParamsError, match="loops"):
        resolve("a", tmp_path)
    with pytest.raises(ParamsError, match="no profile 'nope'"):
        resolve("c", tmp_path)


def _number(cell: str) -> Any:
    derived = re.search(r"\(= (\d+) ", cell)  # "`debug_max_prompts` 64000 (= 2000 superbatches"
    if derived:
        return float(derived.group(1))
    cell = cell.strip().strip("*").split(":")[0].strip().strip("*")
    if cell in ("–", "-", ""):
        return None
    lead = re.match(r"\d[\d.]*(e-?\d+)?\b", cell)  # "1024 tokens, right truncation"
    if lead:
        return float(lead.group(0))
    return cell.lower().replace('"no" (fp32)', "fp32")


@pytest.mark.skipif(not REFERENCE.is_file(), reason="../shared/REFERENCE.md is not beside the repo")
def test_transcribed_rows_are_reference_md_rows() -> None:
    """The table above is REFERENCE.md's SuperHF table: same labels, same numbers."""
    text = REFERENCE.read_text()
    for row, (keys, table2, run) in SUPERHF_ROWS.items():
        m = re.search(rf"^\| {re.escape(row)} \| (.*?) \| (.*?) \|$", text, re.M)
        assert m, f"REFERENCE.md has no row '{row}'"
        for cells, want in ((m.group(1), table2), (m.group(2), run)):
            got = [_number(c) for c in cells.split(" / ")] if len(keys) > 1 else [_number(cells)]
            assert len(got) == len(want), (row, cells)
            for g, w in zip(got, want):
                if isinstance(w, Ours):
                    assert g is None, (row, cells)  # an empty cell: the value is ours
                elif isinstance(w, (int, float)):
                    assert isinstance(g, float) and g == pytest.approx(w), (row, cells)
                else:
                    assert str(w).lower() in str(g), (row, cells)
