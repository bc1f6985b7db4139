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

from superhf import generation
from superhf.config import GenerationConfig
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
    got = generation.sampling_processors(cfg)(ids, scores.clone())
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
    enc = generation.tokenize_prompts(tok, PROMPTS, cfg.max_prompt_tokens)
    torch.manual_seed(3)
    with torch.inference_mode():
        seqs = model.generate(**enc, max_new_tokens=16, do_sample=True, top_p=0.8, top_k=top_k,
                              temperature=temperature, repetition_penalty=1.05,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    theirs = tok.batch_decode(seqs[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert ours == theirs and len(set(ours)) > 1
