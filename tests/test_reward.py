from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, needs_shared

from superhf.config.reward_model import RewardModelConfig
from superhf.data_extract import extract_pair
from superhf.materialise import load_reward_backbone
from superhf.models import save_model
from superhf.reward import RewardScorer, ScoreCache, encode, last_human_turn, model_hash
from superhf.reward_training import bradley_terry_loss, pair_accuracy, train_reward_model
from superhf.stages import reward_model
from superhf.tiny import tiny_reward_backbone, tiny_tokenizer  # noqa: I001


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = tiny_tokenizer(cls=True)
    model = tiny_reward_backbone(tok, seed=3)
    out = tmp_path_factory.mktemp("rm") / "reward"
    save_model(model, tok, out, {"input_format": "text", "max_length": 48})
    return out


def test_bradley_terry_matches_naive() -> None:
    g = torch.Generator().manual_seed(0)
    c, r = torch.randn(7, generator=g), torch.randn(7, generator=g)
    naive = sum(-math.log(1 / (1 + math.exp(-(a - b)))) for a, b in zip(c.tolist(), r.tolist())) / 7
    assert bradley_terry_loss(c, r).item() == pytest.approx(naive, rel=1e-5)


def test_pair_accuracy_counts_ties_half() -> None:
    assert pair_accuracy([2, 1, 1], [1, 2, 1]) == pytest.approx(0.5)
    assert last_human_turn("\n\nHuman: a\n\nAssistant: b\n\nHuman: q?\n\nAssistant:") == "q?"


TEXTS = [
    (
        "\n\nHuman: How do I boil an egg?\n\nAssistant:",
        "Put it in water and boil it for nine minutes.",
    ),
    ("\n\nHuman: hi\n\nAssistant:", "hello"),
    ("\n\nHuman: Tell me how to steal a car.\n\nAssistant:", "No, I won't help with that."),
    ("\n\nHuman: Why is the sky blue?\n\nAssistant:", "Rayleigh scattering of sunlight by air."),
    ("\n\nHuman: x\n\nAssistant:", ""),
]


def test_scores_do_not_depend_on_batch_mates(tiny_rm: Path) -> None:
    prompts, comps = zip(*TEXTS)
    alone = [RewardScorer(tiny_rm, batch_size=1).score([p], [c])[0] for p, c in TEXTS]
    together = RewardScorer(tiny_rm, batch_size=8).score(list(prompts), list(comps))
    pairs = RewardScorer(tiny_rm, batch_size=2).score(list(prompts[::-1]), list(comps[::-1]))[::-1]
    assert together == pytest.approx(alone, abs=1e-5)
    assert pairs == pytest.approx(alone, abs=1e-5)
    assert len(set(round(s, 6) for s in alone)) > 1  # not a constant


def test_truncation_keeps_the_end(tiny_rm: Path) -> None:
    scorer = RewardScorer(tiny_rm)
    enc = encode(scorer.tokenizer, ["word " * 200], ["THE END"], "text", 48)
    assert enc["input_ids"].shape[1] == 48
    assert scorer.tokenizer.decode(enc["input_ids"][0]).endswith("THE END")
    a = scorer.score(["A" * 50 + " word" * 200], ["the reply"])
    b = scorer.score(["B" * 50 + " word" * 200], ["the reply"])
    assert a == pytest.approx(b, abs=1e-6)  # only the far-left part differs


def test_cache_hits_misses_and_rebuilds(tiny_rm: Path, tmp_path: Path, caplog) -> None:
    prompts, comps = map(list, zip(*TEXTS))
    plain = RewardScorer(tiny_rm).score(prompts, comps)
    s = RewardScorer(tiny_rm, cache_dir=tmp_path)
    assert s.score(prompts, comps) == pytest.approx(plain, abs=1e-6)
    assert (s.cache.hits, s.cache.misses) == (0, len(TEXTS))
    assert s.score(prompts + prompts[:1], comps + comps[:1]) == pytest.approx(
        plain + plain[:1], abs=1e-6
    )
    assert s.cache.hits == len(TEXTS)  # the duplicate is one key
    path = s.cache.path
    s.cache.close()

    path.write_bytes(b"this is not a database" * 100)  # corrupt
    s2 = RewardScorer(tiny_rm, cache_dir=tmp_path)
    assert s2.score(prompts, comps) == pytest.approx(plain, abs=1e-6) and s2.cache.hits == 0
    assert "rebuilt" in caplog.text
    s2.cache.close()

    foreign = ScoreCache(tmp_path / "other.sqlite", "0" * 64)  # another model's cache
    foreign.put_many({ScoreCache.key(p, c): 123.0 for p, c in TEXTS})
    foreign.close()
    (tmp_path / "other.sqlite").replace(path)
    s3 = RewardScorer(tiny_rm, cache_dir=tmp_path)
    assert 123.0 not in s3.score(prompts, comps) and s3.cache.hits == 0


def test_model_hash_changes_with_weights(tiny_rm: Path, tmp_path: Path) -> None:
    h = model_hash(tiny_rm)
    tok = tiny_tokenizer(cls=True)
    save_model(
        tiny_reward_backbone(tok, seed=4),
        tok,
        tmp_path / "m",
        {"input_format": "text", "max_length": 48},
    )
    assert model_hash(tmp_path / "m") != h and model_hash(tiny_rm) == h


@needs_shared
@pytest.mark.slow
def test_training_on_real_harmless_pairs_lowers_the_loss(caplog) -> None:
    """The default backbone (all-MiniLM-L6-v2, fetched from PyPI) on real hh-rlhf pairs."""
    with gzip.open(SHARED_DATA / "hh-rlhf/harmless-base/test.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(40), f)]
    pairs = [p for p in (extract_pair("harmless_base", r) for r in rows) if p][:32]
    model, tok = load_reward_backbone(RewardModelConfig(), seed=0)

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            enc = encode(tok, [p["prompt"] for p in pairs] * 2,
                         [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs], "text", 128)  # fmt: skip
            r = model(**enc).logits[:, 0]
            return bradley_terry_loss(r[: len(pairs)], r[len(pairs) :]).item()

    before = loss()
    caplog.set_level("INFO", logger="superhf.reward_training")
    steps = train_reward_model(
        model, tok, pairs, epochs=3, lr=1e-4, batch_size=8, max_length=128, warmup_ratio=0.0
    )
    after = loss()
    assert len(steps) == 12
    assert after < before - 0.01, (before, after)
    assert sum(steps[-4:]) < sum(steps[:4])
    # a progress line each ~5% of steps (here each step), the last one at the end
    lines = [r.getMessage() for r in caplog.records if "reward model step" in r.getMessage()]
    assert len(lines) == 12 and lines[-1].startswith("reward model step 12/12: loss ")
    assert f"{sum(steps[-1:]):.4f} (mean of last 1)" in lines[-1] and "0 min left" in lines[-1]


def stage(tmp_path: Path, section: str, prefs: list[dict]) -> dict:
    (tmp_path / "prefs").mkdir(exist_ok=True)
    for split in ("train", "test"):
        (tmp_path / "prefs" / f"{split}.jsonl").write_text(
            "".join(json.dumps(p) + "\n" for p in prefs)
        )
    (tmp_path / "params.yaml").write_text("reward_model:\n" + section)
    reward_model.main(["--params", str(tmp_path / "params.yaml"), "--preferences", str(tmp_path / "prefs"),
                       "--out", str(tmp_path / "r"), "--gold-out", str(tmp_path / "g"),
                       "--metrics", str(tmp_path / "m.json")])  # fmt: skip
    return json.loads((tmp_path / "m.json").read_text())


PREFS = [
    {
        "prompt": f"\n\nHuman: q{i}\n\nAssistant:",
        "chosen": "Sure, here is a full answer.",
        "rejected": "no",
        "dataset": "d",
    }
    for i in range(8)
]


def test_stage_trains_proxy_and_gold_on_disjoint_halves(tmp_path: Path) -> None:
    m = stage(tmp_path, "  name: tiny\n  epochs: 1.0\n  batch_size: 4\n  max_length: 32\n", PREFS)
    assert m["proxy"]["train_pairs"] == m["gold"]["train_pairs"] == 4
    assert m["length_baseline_accuracy"] == 1.0
    assert 0 <= m["proxy"]["test_accuracy"] <= 1
    assert model_hash(tmp_path / "r") != model_hash(tmp_path / "g")


def test_stage_local_source_copies_a_model(tmp_path: Path, tiny_rm: Path) -> None:
    m = stage(tmp_path, f"  source: local\n  name: {tiny_rm}\n", PREFS)
    assert m["proxy"]["name"] == str(tiny_rm)
    assert RewardScorer(tmp_path / "r").score(["a"], ["b"]) == pytest.approx(
        RewardScorer(tiny_rm).score(["a"], ["b"])
    )
    # source=hub calls from_pretrained(hub_id): a folder laid out like a snapshot stands in
    m = stage(tmp_path, f"  source: hub\n  name: {tiny_rm}\n  input_format: pair\n", PREFS)
    assert m["proxy"]["name"] == str(tiny_rm) and 0 <= m["gold"]["test_accuracy"] <= 1
    assert RewardScorer(tmp_path / "r").input_format == "pair"
    from superhf.models import ModelLoadError

    with pytest.raises(ModelLoadError, match="not found"):
        stage(tmp_path, f"  source: local\n  name: {tmp_path / 'missing'}\n", PREFS)


def test_split_pairs_gives_disjoint_halves_covering_every_pair() -> None:
    from superhf.config.reward_model import RewardModelConfig
    from superhf.reward_training import split_pairs

    pairs = [{"prompt": f"p{i}", "chosen": "c", "rejected": "r"} for i in range(11)]
    proxy, gold = split_pairs(pairs, RewardModelConfig())
    ids = lambda xs: [p["prompt"] for p in xs]  # noqa: E731
    assert not set(ids(proxy)) & set(ids(gold))
    assert sorted(ids(proxy) + ids(gold)) == sorted(ids(pairs))
    assert abs(len(proxy) - len(gold)) <= 1
    same, also = split_pairs(pairs, RewardModelConfig(gold_split="all"))
    assert ids(same) == ids(also) == ids(pairs)
    capped, rest = split_pairs(pairs, RewardModelConfig(max_train_pairs=4))
    assert len(capped) + len(rest) == 4 and set(ids(capped) + ids(rest)) <= set(ids(pairs[:4]))


def test_stage_trains_and_scores_with_the_configured_input_format(tmp_path, monkeypatch) -> None:
    """reward_model.input_format with source train: the format the model trains on is the
    one written to its meta (and so the one it is scored with); auto means text."""
    from superhf import reward as reward_mod
    from superhf import reward_training

    seen: list[str] = []
    real = reward_mod.encode

    def spy(tok, prompts, comps, input_format, max_length):
        seen.append(input_format)
        return real(tok, prompts, comps, input_format, max_length)

    monkeypatch.setattr(reward_mod, "encode", spy)  # scoring
    monkeypatch.setattr(reward_training, "encode", spy)  # training
    base = "  name: tiny\n  epochs: 1.0\n  batch_size: 4\n  max_length: 32\n"
    stage(tmp_path, base + "  input_format: pair\n", PREFS)
    assert set(seen) == {"pair"}
    assert RewardScorer(tmp_path / "r").input_format == "pair"
    assert RewardScorer(tmp_path / "g").input_format == "pair"
    seen.clear()
    stage(tmp_path, base, PREFS)  # auto
    assert set(seen) == {"text"} and RewardScorer(tmp_path / "r").input_format == "text"


def test_train_top_layers_trains_only_the_top_blocks_and_the_head() -> None:
    from superhf.errors import BadInputError
    from superhf.reward_training import train_top_layers, transformer_blocks

    tok = tiny_tokenizer(cls=True)
    model = tiny_reward_backbone(tok, seed=0)  # BERT, 2 blocks
    total = sum(p.numel() for p in model.parameters())
    assert train_top_layers(model, None) == total
    with pytest.raises(BadInputError, match="reward_model.gold_recipe.train_layers: 3 is more"):
        train_top_layers(model, 3)
    blocks = transformer_blocks(model)
    assert blocks is model.bert.encoder.layer
    trainable = train_top_layers(model, 1)
    expect = total - sum(p.numel() for p in model.bert.embeddings.parameters())
    expect -= sum(p.numel() for p in blocks[0].parameters())
    assert trainable == expect
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = [{"prompt": p, "chosen": c, "rejected": "no"} for p, c in TEXTS]
    train_reward_model(model, tok, pairs, epochs=4, lr=1e-2, batch_size=2, max_length=48)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(
        k.startswith(("bert.encoder.layer.1.", "bert.pooler.", "classifier.")) for k in moved
    )
    assert any(k.startswith("bert.encoder.layer.1.") for k in moved)
    assert any(k.startswith("classifier.") for k in moved)


def test_train_top_layers_on_a_llama_head_keeps_the_top_blocks_norm_and_score() -> None:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from superhf.reward_training import train_top_layers

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=4,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                      num_labels=1, pad_token_id=0)  # fmt: skip
    model = LlamaForSequenceClassification(cfg)  # the hh gold's class (SmolLM2)
    train_top_layers(model, 2)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(
        n.startswith(("model.layers.2.", "model.layers.3.", "model.norm.", "score.")) for n in names
    )
    assert any(n.startswith("model.layers.2.") for n in names) and "score.weight" in names
    assert not model.model.embed_tokens.weight.requires_grad
