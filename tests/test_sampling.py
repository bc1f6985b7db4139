"""Issue 12, part 2: sampling as configured. Temperature comes before top-k and top-p (as in
transformers' own warpers), so the nucleus is taken from the tempered distribution."""

from __future__ import annotations

import pytest
import torch
from helpers import PROMPTS, TINY_GEN
from transformers import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from superhf import decoding, generation, prompting
from superhf.config.common import GenerationConfig
from superhf.tiny import tiny_causal_lm, tiny_tokenizer


def gen_cfg(**kw) -> GenerationConfig:
    return GenerationConfig(**{**TINY_GEN, "batch_size": 8, **kw})


@pytest.mark.parametrize("temperature", [0.7, 1.3])
@pytest.mark.parametrize(("top_p", "top_k"), [(0.8, 0), (0.95, 0), (0.9, 50), (1.0, 7)])
def test_kept_set_is_transformers_own(temperature: float, top_p: float, top_k: int) -> None:
    g = torch.Generator().manual_seed(int(temperature * 10) + top_k)
    scores = torch.randn(6, 300, generator=g) * 3
    ids = torch.zeros(6, 1, dtype=torch.long)
    theirs = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k:
        theirs.append(TopKLogitsWarper(top_k))
    if top_p < 1:
        theirs.append(TopPLogitsWarper(top_p))
    cfg = gen_cfg(temperature=temperature, top_p=top_p, top_k=top_k)
    want = theirs(ids, scores.clone())
    got = decoding.sampling_processors(cfg)(ids, scores.clone())
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.allclose(got[~torch.isinf(got)], want[~torch.isinf(want)])
    # the nucleus of the tempered distribution is another set than the untempered one's
    if top_p < 1 and not top_k:
        untempered = TopPLogitsWarper(top_p)(ids, scores.clone())
        assert not torch.equal(torch.isinf(untempered), torch.isinf(want))


@pytest.mark.parametrize("temperature", [0.7, 1.3])
@pytest.mark.parametrize("top_k", [0, 50])
def test_seeded_sample_is_transformers_own(temperature: float, top_k: int) -> None:
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=0)
    cfg = gen_cfg(max_new_tokens=16, top_p=0.8, top_k=top_k, temperature=temperature,
                  repetition_penalty=1.05)  # fmt: skip
    torch.manual_seed(3)
    ours = generation.generate(model, tok, PROMPTS, cfg, share_prefill=False)
    enc = prompting.tokenize_prompts(tok, PROMPTS, cfg.max_prompt_tokens)
    torch.manual_seed(3)
    with torch.inference_mode():
        seqs = model.generate(**enc, max_new_tokens=16, do_sample=True, top_p=0.8, top_k=top_k,
                              temperature=temperature, repetition_penalty=1.05,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    theirs = tok.batch_decode(seqs[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert ours == theirs and len(set(ours)) > 1


def tiny_llama(tok):
    """A small random Llama with grouped-query attention (3 query heads per KV head), the
    packaged policy's architecture: its decode takes transformers' packed-GQA sdpa path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=96,
                      num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                      max_position_embeddings=512, pad_token_id=tok.pad_token_id)  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def test_repetition_penalty_is_transformers_own() -> None:
    from transformers import RepetitionPenaltyLogitsProcessor

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 300, generator=g) * 3  # positive and negative logits
    ids = torch.randint(0, 300, (6, 40), generator=g)  # repeats within a row
    for penalty in (1.05, 0.8, 1.3):
        want = RepetitionPenaltyLogitsProcessor(penalty)(ids, scores.clone())
        got = decoding.RepetitionPenalty(penalty)(ids, scores.clone())
        assert torch.equal(got, want) and not torch.equal(got, scores)
    wide = ids.clone()
    wide[0, 0] = 305  # an id past the head's width: theirs skips it, so do we
    want = RepetitionPenaltyLogitsProcessor(1.1)(wide, scores.clone())
    assert torch.equal(decoding.RepetitionPenalty(1.1)(wide, scores.clone()), want)


@pytest.mark.parametrize("ks", [(4,), (4, 16), (64, 1024)])
@pytest.mark.parametrize("top_p", [0.5, 0.9])
def test_top_p_tiers_keep_what_transformers_keeps(ks: tuple[int, ...], top_p: float) -> None:
    """Rows settled at the first k, at a later k, and by the full sort, in one batch."""
    g = torch.Generator().manual_seed(len(ks))
    spread = torch.tensor([8.0, 3.0, 1.0, 0.3, 0.03, 5.0]).unsqueeze(1)  # peaked -> flat
    scores = torch.randn(6, 300, generator=g) * spread
    ids = torch.zeros(6, 1, dtype=torch.long)
    want = TopPLogitsWarper(top_p)(ids, scores.clone())
    got = decoding.TopPFromTopK(top_p, k=ks)(ids, scores.clone())
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got[~torch.isinf(got)], scores[~torch.isinf(got)])


@pytest.mark.parametrize("do_sample", [True, False])
def test_our_processors_sample_what_generates_own_sample(do_sample: bool) -> None:
    """Seeded tokens from ``generate_ids`` (our repetition penalty and top-p, shared
    prefill) equal ``model.generate`` with transformers' own processors on the same rows."""
    tok = tiny_tokenizer()
    model = tiny_llama(tok)
    cfg = gen_cfg(max_new_tokens=12, top_p=0.9, repetition_penalty=1.3, batch_size=16)
    texts = [p for p in PROMPTS[:2] for _ in range(8)]
    torch.manual_seed(7)
    ours = generation.generate_ids(model, tok, texts, cfg, do_sample=do_sample,
                                   share_prefill=False, min_new_tokens=4)  # fmt: skip
    enc = prompting.tokenize_prompts(tok, texts, cfg.max_prompt_tokens)
    torch.manual_seed(7)
    with torch.inference_mode():
        seqs = model.generate(**enc, max_new_tokens=12, min_new_tokens=4, do_sample=do_sample,
                              top_p=0.9 if do_sample else None, top_k=0 if do_sample else None,
                              temperature=1.0 if do_sample else None, repetition_penalty=1.3,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    theirs = generation.sampled_ids(seqs[:, enc["input_ids"].shape[1] :], tok.eos_token_id)
    assert ours == theirs and len({tuple(r) for r in ours}) > (4 if do_sample else 1)
