"""Tiny models built from configs in seconds: the test scale and the ``tiny`` profile.

A byte-level BPE tokenizer trained with ``tokenizers`` on the fixture text, a 4-layer
GPT-NeoX (the Pythia architecture) as the policy, and a 2-layer BERT as the reward backbone.
Everything is seeded, so the same call gives the same weights.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PreTrainedTokenizerFast,
)

from superhf.paths import fixture_dir

EOS, PAD, CLS = "<|endoftext|>", "<|pad|>", "<|cls|>"


def _fixture_rows(path: Path) -> list[dict]:
    """Rows of one (well-formed) fixture file: JSON lines, or a JSON array (red-team)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def fixture_texts() -> list[str]:
    texts = []
    for path in sorted(fixture_dir().rglob("*.gz")):
        rows = _fixture_rows(path)
        for r in rows:
            texts += [v for v in r.values() if isinstance(v, str)]
            texts += [
                v["full_text"] for v in r.values() if isinstance(v, dict) and "full_text" in v
            ]
    return texts


def tiny_tokenizer(vocab_size: int = 512, cls: bool = False) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD, CLS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(fixture_texts(), trainer=trainer)
    if cls:
        cls_id = tok.token_to_id(CLS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A", pair=f"{CLS} $A $B", special_tokens=[(CLS, cls_id)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=PAD,
        cls_token=CLS if cls else None,
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.model_max_length = 512
    return fast


def tiny_causal_lm(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> GPTNeoXForCausalLM:
    torch.manual_seed(seed)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        rotary_pct=0.25,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return GPTNeoXForCausalLM(config).eval()


def tiny_reward_backbone(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0
) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        type_vocab_size=1,
    )
    return BertForSequenceClassification(config).eval()
