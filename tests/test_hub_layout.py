"""Local mirrors of the hub layouts the paper profile reads, driven through the very same
``datasets.load_dataset`` / ``from_pretrained`` calls the hub path makes (offline).

- datasets: a folder laid out like ``openai/webgpt_comparisons@refs/convert/parquet``
  (``default/train/0000.parquet``) and like ``Anthropic/hh-rlhf`` (red-team-attempts is one
  gzipped JSON array; harmless-base has train and test JSON-lines files).
- models: a hub cache (``models--org--name``) whose ``main`` has ``pytorch_model.bin`` only and
  whose ``refs/pr/3`` has ``model.safetensors`` only, read by hub id and revision with
  ``HF_HUB_OFFLINE=1``, exactly as ``theblackcat102/pythia-1b-deduped-sft`` and
  ``OpenAssistant/reward-model-deberta-v3-large-v2`` are laid out (../shared/REFERENCE.md).
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from superhf import data, data_sources
from superhf.config.base_policy import BasePolicyConfig
from superhf.config.prepare import PrepareConfig
from superhf.config.reward_model import RewardModelConfig
from superhf.materialise import build_base_policy, materialise_pretrained
from superhf.models import ModelLoadError, load_causal_lm, load_reward_model, read_meta
from superhf.reward import RewardScorer, encode
from superhf.tiny import tiny_causal_lm, tiny_reward_backbone, tiny_tokenizer

HH = {
    "chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast.",
    "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: No.",
}
RED = {"transcript": "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help.", "rating": 0}
WEBGPT = {
    "question": {"dataset": "eli5", "id": "q", "full_text": "Why is the sky blue?"},
    "quotes_0": {"title": [], "extract": []},
    "answer_0": "Rayleigh scattering.",
    "tokens_0": [],
    "score_0": 1.0,
    "quotes_1": {"title": [], "extract": []},
    "answer_1": "Because.",
    "tokens_1": [],
    "score_1": -1.0,
}


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "ds-cache")


def mirror_datasets(root: Path, n: int = 6) -> tuple[Path, Path]:
    """``root/hh-rlhf`` and ``root/webgpt_comparisons`` laid out like the hub repos."""
    hh = root / "hh-rlhf"
    (hh / "red-team-attempts").mkdir(parents=True)
    with gzip.open(hh / "red-team-attempts" / "red_team_attempts.jsonl.gz", "wt") as f:
        json.dump([RED] * n, f, indent=1)  # one JSON array, as on the hub, not JSON lines
    for sub in ("harmless-base", "helpful-base"):
        (hh / sub).mkdir()
        for split in ("train", "test"):
            with gzip.open(hh / sub / f"{split}.jsonl.gz", "wt") as f:
                f.writelines(json.dumps(HH) + "\n" for _ in range(n))
    web = root / "webgpt_comparisons"
    (web / "default" / "train").mkdir(parents=True)  # the parquet conversion branch's layout
    pq.write_table(pa.Table.from_pylist([WEBGPT] * n), web / "default" / "train" / "0000.parquet")
    return hh, web


def test_hub_datasets_load_through_load_dataset(tmp_path: Path) -> None:
    hh, web = mirror_datasets(tmp_path)
    cfg = PrepareConfig(source="hub", hh_rlhf_hub_id=str(hh), webgpt_hub_id=str(web),
                        test_size_per_dataset=2)  # fmt: skip
    assert cfg.webgpt_revision == "refs/convert/parquet"  # the branch that has no script
    red = data_sources.read_hub(cfg, "red_team")
    assert list(red) == ["train"] and red["train"] == [RED] * 6  # train only, array parsed
    harmless = data_sources.read_hub(cfg, "harmless_base")
    assert len(harmless["train"]) == len(harmless["test"]) == 6
    web_rows = data_sources.read_hub(cfg, "webgpt")["train"]
    assert len(web_rows) == 6 and web_rows[0]["question"]["full_text"] == "Why is the sky blue?"
    prompts, pairs, metrics = data.run(cfg)
    assert metrics["datasets"]["red_team"]["kept_test"] == 2
    assert metrics["datasets"]["webgpt"]["pairs_train"] == 4
    webgpt_pair = next(p for p in pairs["train"] if p["dataset"] == "webgpt")
    assert webgpt_pair["chosen"] == "Rayleigh scattering."
    assert {p["dataset"] for p in prompts["train"]} == set(cfg.datasets)


def test_every_dataset_id_and_revision_reaches_load_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    calls = []

    def fake(path, *args, **kw):
        calls.append((path, kw.get("revision"), kw.get("data_dir")))
        return {"train": [], "test": []} if "split" not in kw else []

    monkeypatch.setattr(datasets, "load_dataset", fake)
    cfg = PrepareConfig(source="hub", hh_rlhf_hub_id="me/hh", hh_rlhf_revision="v1",
                        webgpt_hub_id="me/web", webgpt_revision="abc")  # fmt: skip
    for ds in cfg.datasets:
        data_sources.read_hub(cfg, ds)
    assert ("me/web", "abc", None) in calls
    assert ("me/hh", "v1", "red-team-attempts") in calls


# ----------------------------------------------------------------------------- models
def snapshot(repo: Path, commit: str, ref: str, files: dict[str, object]) -> Path:
    """One revision of a hub cache repo: ``refs/<ref>`` -> ``snapshots/<commit>/``."""
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, what in files.items():
        if name == "pytorch_model.bin":
            torch.save(what.state_dict(), snap / name)
            what.config.save_pretrained(snap)
        elif name == "model.safetensors":
            what.save_pretrained(snap)
        else:
            what.save_pretrained(snap)  # a tokenizer
    (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snap


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    # read at import: the conftest's environment variable may come too late
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_bin_only_main_and_safetensors_on_a_pr_branch(
    hub_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tok = tiny_tokenizer()
    main_lm, pr_lm = tiny_causal_lm(tok, seed=0), tiny_causal_lm(tok, seed=1)
    repo = hub_cache / "models--org--policy"
    snapshot(repo, "a" * 40, "main", {"pytorch_model.bin": main_lm, "tok": tok})
    snapshot(repo, "b" * 40, "refs/pr/3", {"model.safetensors": pr_lm, "tok": tok})
    assert not list((repo / "snapshots" / ("a" * 40)).glob("*.safetensors"))
    with caplog.at_level(logging.INFO, logger="superhf.models"):
        model, _ = build_base_policy(BasePolicyConfig(source="hub", name="org/policy"))
    assert (
        "org/policy: read pytorch_model.bin (torch.load weights_only=True) weights" in caplog.text
    )
    for k, v in main_lm.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="superhf.models"):
        model = load_causal_lm("org/policy", revision="refs/pr/3")
    assert "org/policy@refs/pr/3: read safetensors weights" in caplog.text
    for k, v in pr_lm.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_bin_is_read_with_weights_only(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tiny_tokenizer()
    snapshot(hub_cache / "models--org--p", "c" * 40, "main",
             {"pytorch_model.bin": tiny_causal_lm(tok, seed=0), "tok": tok})  # fmt: skip
    seen = []
    real = torch.load

    def spy(*args, **kw):
        seen.append(kw.get("weights_only"))
        return real(*args, **kw)

    monkeypatch.setattr(torch, "load", spy)
    load_causal_lm("org/p")
    assert seen and all(w is True for w in seen)


def test_reward_and_gold_revisions_are_materialised(hub_cache: Path, tmp_path: Path) -> None:
    """Proxy safetensors on refs/pr/3 (main: .bin), gold on refs/pr/1: each by its revision."""
    tok = tiny_tokenizer(cls=True)
    proxy, gold = tiny_reward_backbone(tok, seed=3), tiny_reward_backbone(tok, seed=4)
    repo = hub_cache / "models--org--rm-large"
    snapshot(repo, "d" * 40, "main", {"pytorch_model.bin": proxy, "tok": tok})
    snapshot(repo, "e" * 40, "refs/pr/3", {"model.safetensors": proxy, "tok": tok})
    snapshot(hub_cache / "models--org--rm-base", "f" * 40, "refs/pr/1",
             {"model.safetensors": gold, "tok": tok})  # fmt: skip
    cfg = RewardModelConfig(source="hub", name="org/rm-large", revision="refs/pr/3",
                            gold_name="org/rm-base", gold_revision="refs/pr/1",
                            input_format="pair", max_length=64)  # fmt: skip
    materialise_pretrained(cfg, cfg.name, tmp_path / "r", revision=cfg.revision)
    materialise_pretrained(cfg, cfg.gold_name, tmp_path / "g", revision=cfg.gold_revision)
    assert read_meta(tmp_path / "g")["revision"] == "refs/pr/1"
    with pytest.raises(ModelLoadError):  # rm-base has no main branch at all
        load_reward_model("org/rm-base")
    r, g = RewardScorer(tmp_path / "r"), RewardScorer(tmp_path / "g")
    prompts, comps = ["\n\nHuman: hi\n\nAssistant:"] * 2, ["hello there", "go away"]
    proxy.eval(), gold.eval()
    with torch.no_grad():
        for scorer, ref in ((r, proxy), (g, gold)):
            assert scorer.input_format == "pair"
            enc = encode(tok, prompts, comps, "pair", 64)
            want = ref(**enc).logits[:, 0].tolist()
            assert scorer.score(prompts, comps) == pytest.approx(want, abs=1e-5)
    main_bin = load_reward_model("org/rm-large")  # main: .bin only, still the same weights
    for k, v in proxy.state_dict().items():
        assert torch.equal(main_bin.state_dict()[k], v), k
