"""The inverse-CDF sampler (``generation.sampler: inverse_cdf``) draws from the same
distribution as ``torch.multinomial`` (other tokens for a seed): checked on fixed
probabilities and on the first token ``generate_ids`` samples from a tiny model."""

from __future__ import annotations

import torch
from helpers import PROMPTS, TINY_GEN

from superhf import decoding, generation, prompting
from superhf.config.common import GenerationConfig
from superhf.tiny import tiny_causal_lm, tiny_tokenizer


def test_draws_follow_the_softmax_and_never_a_masked_token() -> None:
    torch.manual_seed(0)
    logits = torch.tensor([2.0, -1.0, float("-inf"), 0.5, 0.0, float("-inf"), 1.0, -3.0])
    n = 200_000
    out = decoding.InverseCDFSample()(torch.zeros(n, 1, dtype=torch.long), logits.repeat(n, 1))
    assert torch.equal((out == 0).sum(1), torch.ones(n, dtype=torch.long))  # one token a row
    assert torch.isinf(out[out != 0]).all()
    freq = torch.bincount(out.argmax(1), minlength=len(logits)).double() / n
    want = torch.softmax(logits.double(), 0)
    assert freq[2] == 0 and freq[5] == 0
    # ~0.001 standard error per token at n = 200k; a sampler off by one token fails by ~0.1
    assert (freq - want).abs().max() < 0.005, (freq, want)


def test_u_rounding_up_to_the_total_takes_the_most_likely_token(monkeypatch) -> None:
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.ones(*shape))
    logits = torch.tensor([[0.0, 3.0, 1.0, float("-inf")]])
    out = decoding.InverseCDFSample()(torch.zeros(1, 1, dtype=torch.long), logits)
    assert out.argmax().item() == 1


def test_generate_ids_first_token_has_the_processed_distribution() -> None:
    """2000 rows of one prompt, one new token each: the empirical distribution of the drawn
    token equals the top-k/top-p/temperature-processed softmax of the model's logits, and
    the default sampler's seeded draws differ from these (another algorithm)."""
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=0)
    kw = {
        **TINY_GEN,
        "max_new_tokens": 1,
        "batch_size": 500,
        "top_p": 0.95,
        "top_k": 20,
        "temperature": 1.3,
        "repetition_penalty": 1.0,
    }
    cfg = GenerationConfig(**kw, sampler="inverse_cdf")
    rows = [PROMPTS[0]] * 2000
    torch.manual_seed(1)
    drawn = [r[0] for r in generation.generate_ids(model, tok, rows, cfg)]
    enc = prompting.tokenize_prompts(tok, PROMPTS[:1], cfg.max_prompt_tokens)
    with torch.inference_mode():
        logits = model(**enc).logits[:, -1, :]
    scores = decoding.decode_processors(cfg)(enc["input_ids"], logits.clone())
    want = torch.softmax(scores.double(), -1)[0]
    freq = torch.bincount(torch.tensor(drawn), minlength=len(want)).double() / len(drawn)
    assert set(drawn) <= set(torch.nonzero(want).flatten().tolist())
    assert (freq - want[: len(freq)]).abs().max() < 0.04, (freq.max(), want.max())
    torch.manual_seed(1)
    plain = generation.generate_ids(model, tok, rows, GenerationConfig(**kw))
    assert [r[0] for r in plain] != drawn
