from __future__ import annotations

from pathlib import Path

import pytest

from superhf.config import SECTIONS, PrepareConfig, SuperHFConfig
from superhf.params import ParamsError, load_section, parse_section, read_params

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


def test_repo_params_and_profiles_validate() -> None:
    for path in [REPO / "params.yaml", *sorted((REPO / "profiles").glob("*.yaml"))]:
        data = read_params(path)
        assert set(data) >= set(SECTIONS), f"{path} lacks {set(SECTIONS) - set(data)}"
        for name, model in SECTIONS.items():
            parse_section(name, data[name], model, source=str(path))


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
