from __future__ import annotations

from pathlib import Path

import pytest

from superhf.config.prepare import PrepareConfig
from superhf.config.sections import SECTIONS
from superhf.config.superhf import SuperHFConfig
from superhf.params import ParamsError, load_section, parse_section, read_params

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


def test_repo_params_validate_and_equal_the_default_profile() -> None:
    from superhf.profile import resolve

    data = read_params(REPO / "params.yaml")
    for name, model in SECTIONS.items():
        parse_section(name, data[name], model, source="params.yaml")
    assert data == resolve("default"), "params.yaml drifted: run python -m superhf.profile default"


def test_paper_profile_is_the_paper() -> None:
    """Tables 2 and 3 of the paper (see ../shared/REFERENCE.md), resolved without a network."""
    from superhf.profile import resolve

    p = resolve("paper")
    s, r = p["superhf"], p["rlhf"]
    assert (s["num_prompts"], s["top_k"], s["superbatch_size"], s["minibatch_size"]) == (
        2000,
        1,
        32,
        8,
    )
    assert s["optim"] == {"lr": 1e-5, "scheduler": "cosine", "warmup_steps": 100, "weight_decay": 0.0,
                          "max_grad_norm": None, "mixed_precision": "fp32"}  # fmt: skip
    g = s["generation"]
    assert (g["max_new_tokens"], g["temperature"], g["top_p"], g["repetition_penalty"]) == (
        64,
        1.0,
        0.9,
        1.05,
    )
    assert g["preamble"].startswith("A human user asks a question") and g["prompt_format"] == "raw"
    assert s["kl_coef"] == 0.0 and not s["lora"]["enabled"]
    table3 = {"adap_kl_ctrl": True, "init_kl_coef": 0.2, "target": 6.0, "horizon": 10000.0, "gamma": 1.0,
              "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 0.1, "ppo_epochs": 4,
              "batch_size": 32, "num_prompts": 2000}  # fmt: skip
    assert {k: r[k] for k in table3} == table3
    assert r["optim"]["max_grad_norm"] is None and r["generation"]["top_p"] == 1.0
    assert p["base_policy"] == {
        **p["base_policy"],
        "source": "hub",
        "name": "theblackcat102/pythia-1b-deduped-sft",
    }
    assert (
        p["reward_model"]["source"],
        p["reward_model"]["name"],
        p["reward_model"]["input_format"],
    ) == ("hub", "OpenAssistant/reward-model-deberta-v3-large-v2", "pair")
    assert p["prepare"]["source"] == "hub" and p["prepare"]["test_size_per_dataset"] == 2300
    assert p["prepare"]["max_prompt_chars"] == 1024 and len(p["prepare"]["datasets"]) == 4
    assert p["evaluate"]["best_of_n"] == 32 and p["evaluate"]["max_test_prompts"] is None


def test_profile_overlay_errors(tmp_path: Path) -> None:
    from superhf.profile import resolve

    (tmp_path / "bad.yaml").write_text("superhf:\n  lr: 1.0\n")
    with pytest.raises(ParamsError, match="unknown key superhf.lr"):
        resolve("bad", tmp_path)
    (tmp_path / "neg.yaml").write_text("superhf:\n  num_prompts: -1\n")
    with pytest.raises(ParamsError, match="superhf.num_prompts"):
        resolve("neg", tmp_path)
    with pytest.raises(ParamsError, match="known profiles"):
        resolve("nope", tmp_path)


def test_scientific_notation_without_dot_is_a_float(tmp_path: Path) -> None:
    p = write(tmp_path, "superhf:\n  optim:\n    lr: 1e-5\n")
    assert load_section("superhf", SuperHFConfig, p).optim.lr == pytest.approx(1e-5)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("prepare:\n  sorce: fixture\n", "prepare.sorce: unknown key; allowed keys are"),
        (
            "prepare:\n  source: web\n",
            "prepare.source: Input should be 'fixture', 'local' or 'hub'",
        ),
        (
            "prepare:\n  max_prompt_chars: -3\n",
            "prepare.max_prompt_chars: Input should be greater than 0",
        ),
        (
            "prepare:\n  max_prompt_chars: '1024'\n",
            "prepare.max_prompt_chars: Input should be a valid integer",
        ),
        ("prepare:\n  seed: 1.5\n", "prepare.seed"),
        ("prepare:\n  datasets: [webgpt, reddit]\n", "prepare.datasets.1: Input should be"),
        ("prepare:\n  datasets: []\n", "prepare.datasets"),
        ("prepare:\n  source: local\n", "data_dir is required"),
        ("prepare: [1, 2]\n", "section 'prepare' must be a mapping"),
        ("other: {}\n", "missing section 'prepare'"),
    ],
)
def test_bad_prepare_params(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_section("prepare", PrepareConfig, write(tmp_path, text))
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "superhf:\n  generation:\n    top_p: 1.5\n",
            "superhf.generation.top_p: Input should be less than or equal to 1",
        ),
        (
            "superhf:\n  superbatch_size: 4\n  top_k: 5\n",
            "top_k (5) must be <= superbatch_size (4)",
        ),
        ("superhf:\n  optim:\n    lr: -1.0\n", "superhf.optim.lr: Input should be greater than 0"),
        ("superhf:\n  optim:\n    lrr: 1.0\n", "superhf.optim.lrr: unknown key; allowed keys are"),
        (
            "superhf:\n  lora:\n    enabled: 'yes'\n",
            "superhf.lora.enabled: Input should be a valid boolean",
        ),
    ],
)
def test_bad_superhf_params(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ParamsError) as err:
        load_section("superhf", SuperHFConfig, write(tmp_path, text))
    assert needle in str(err.value)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        read_params(tmp_path / "nope.yaml")
    with pytest.raises(ParamsError, match="not valid YAML"):
        read_params(write(tmp_path, "a: [1,\n"))
