"""Table 4's two protocols: the paper's measurements (hand-computed cases), the standard
scorers' context sharing and truncation, hub-layout loaders, the table, lm-eval on demand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from superhf.capabilities import columns, harness, loaders, paper, scoring, suite, tasks
from superhf.config.evaluate import EvaluateConfig
from superhf.errors import BadInputError
from superhf.paths import fixture_eval_dir
from superhf.tables import reward_cell, table4
from superhf.tiny import tiny_causal_lm, tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_causal_lm(tok, seed=0), tok


# ----------------------------------------------------------------------------- standard scorers
def test_shared_context_scores_equal_one_forward_per_request(tiny) -> None:
    """Single-token choices share one row, multi-token choices a cached context: same scores
    as a separate forward per request (the old way), truncated contexts included."""
    model, tok = tiny
    long_ctx = " ".join(["bread and eggs"] * 60)
    reqs = [("The cat sat on the", c) for c in (" mat", " rug", " floor", " a")]  # 1 token
    reqs += [("Human: hi\nAssistant:", c) for c in (" hello there", " go away now", " ok")]
    reqs += [("Tweet: good\nSentiment:", c) for c in (" negative", " neutral", " positive")]
    reqs += [(long_ctx, " the end of it"), (long_ctx, " more bread"), ("Hello", " world")]
    reqs += [("Human: hi\nAssistant:", " go away now"), ("Hello", " world")]  # asked twice
    shared = scoring.loglikelihood(model, tok, reqs, batch_size=3, max_length=64)
    alone = scoring.loglikelihood(
        model, tok, reqs, batch_size=3, max_length=64, share_context=False
    )
    for (a, ga), (b, gb) in zip(shared, alone):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb


def test_many_continuations_of_mixed_length_split_over_cache_copies(tiny) -> None:
    """One context with continuations of 2 to 40 words (several continuation batches, each
    over its own copy of the cached context), contexts of very different lengths (separate
    context batches), and several short contexts in one context batch whose continuations
    are mixed across buckets (rows picked from the copied cache by owner): still the scores
    of one forward per request."""
    model, tok = tiny
    words = ["salt", "pepper", "bread", "eggs", "milk", "tea"]
    conts = [" " + " ".join(words[k % 6] for k in range(n)) for n in (2, 12, 3, 9, 7, 5, 4, 10)]
    reqs = [("Human: list food\nAssistant:", c) for c in conts]
    reqs += [(" ".join(["long context"] * 30), c) for c in conts[:3]]
    for ctx in ("Hi", "Yo", "Hey", "Ok"):  # four groups of similar length, one forward
        reqs += [(ctx, c) for c in conts[3:7]]
    spans = []
    real = scoring._score_prefix_groups

    def spy(model_, tok_, encoded, groups, batch_size, out):
        spans.append(len(groups))
        return real(model_, tok_, encoded, groups, batch_size, out)

    scoring._score_prefix_groups = spy
    try:
        shared = scoring.loglikelihood(model, tok, reqs, batch_size=8, max_length=256)
    finally:
        scoring._score_prefix_groups = real
    alone = scoring.loglikelihood(
        model, tok, reqs, batch_size=8, max_length=256, share_context=False
    )
    assert max(spans) >= 2  # some context batch held several groups
    for (a, ga), (b, gb) in zip(shared, alone):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb


def test_padded_batches_bound_rows_and_padding() -> None:
    # rows: at most 2 per batch
    assert scoring.padded_batches([5, 5, 5, 5, 5], max_weight=2) == [[0, 1], [2, 3], [4]]
    # padding: 10 + 9 = 19 real, 2 x 10 = 20 padded <= 1.25 x 19; adding 4: 3 x 10 = 30 >
    # 1.25 x 23 = 28.75, so 4 starts a new batch; 4 + 4 + 3 = 11 real, 12 padded
    assert scoring.padded_batches([10, 9, 4, 4, 3], max_weight=16) == [[0, 1], [2, 3, 4]]
    # weights: a group of 5 continuations next to one of 3 passes a weight of 6
    assert scoring.padded_batches([8, 8, 8], [5, 3, 1], max_weight=6) == [[0], [1, 2]]
    assert scoring.padded_batches([8], [20], max_weight=6) == [[0]]  # too heavy alone: its own
    with pytest.raises(ValueError, match="longest first"):
        scoring.padded_batches([1, 2])


def test_truncation_keeps_max_length_plus_one_tokens_as_lm_eval() -> None:
    tok = tiny_tokenizer()
    ctx = " ".join(f"w{i}" for i in range(40))
    c_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    x_ids = tok(" end", add_special_tokens=False)["input_ids"]
    c, x = scoring.encode_request(tok, ctx, " end", max_length=10)
    assert x == x_ids
    assert c + x == (c_ids + x_ids)[-11:]  # the model sees 10 of these 11
    c, x = scoring.encode_request(tok, "short", " end", max_length=1000)
    assert c == tok("short", add_special_tokens=False)["input_ids"]


def test_context_length_is_read_from_the_model_config(tiny) -> None:
    model, _ = tiny
    assert scoring.model_max_length(model) == 512  # the tiny config's max_position_embeddings


# ----------------------------------------------------------------------------- paper protocol
def test_paper_sentiment_prompt_keeps_the_literal_shot_line() -> None:
    rows = [{"text": f"t{i}", "feeling": i % 2} for i in range(5)]
    got = paper.paper_prompts("sentiment", rows)
    head = (
        "Output 1 if Text displays positive sentiment, else Output 0 for negative sentiment.\n"
        "Text: t0\nOutput: {feeling}\nText: t1\nOutput: {feeling}\nText: t2\nOutput: {feeling}\n"
    )
    assert got == [(head + "Text: t3\nOutput: ", 1), (head + "Text: t4\nOutput: ", 0)]


def test_paper_glue_prompts_as_the_script_wrote_them() -> None:
    rows = [{"sentence1": f"a{i}", "sentence2": f"b{i}", "label": i % 2} for i in range(4)]
    (prompt, label), = paper.paper_prompts("wnli", rows)  # fmt: skip
    assert label == 1
    assert prompt == (
        "Output 1 if Sentence1 implies Sentence2, otherwise Output 0.\n"
        "Sentence1: a0\nSentence2: b0\nOutput: 0\nSentence1: a1\nSentence2: b1\nOutput: 1\n"
        "Sentence1: a2\nSentence2: b2\nOutput: 0\nSentence1: a3\nSentence2: b3\nOutput: "
    )
    q = [{"question": "q", "sentence": "s", "label": 1}] * 4
    assert paper.paper_prompts("qnli", q)[0][0].startswith(
        "Output 0 if Sentence answers Question, otherwise Output 1.\nQuestion: q\nSentence: s\n"
        "Output: 1\n"
    )
    assert len(paper.paper_prompts("wnli", [rows[0]] * 71)) == 68  # docs/stages.md


def test_rounded_denominators() -> None:
    assert paper.rounded_denominator(68) == 72
    assert paper.rounded_denominator(1000) == 1000
    assert paper.rounded_denominator(5) == 8
    assert paper.rounded_denominator(8) == 8


def _next_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1]


def test_paper_logit_rule_by_hand(tiny) -> None:
    model, tok = tiny
    data = [("Text: a b c\nOutput: ", 1), ("Text: x\nOutput: ", 0), ("Text: longer one here\nOutput: ", 1)]  # fmt: skip
    id0 = tok.encode("0", add_special_tokens=False)[0]
    id1 = tok.encode("1", add_special_tokens=False)[0]
    # without quirks: each prompt alone, its own last token
    pred = [int(_next_logits(model, tok(p)["input_ids"])[id1] > _next_logits(model, tok(p)["input_ids"])[id0]) for p, _ in data]  # fmt: skip
    want = sum(p == y for p, (_, y) in zip(pred, data))
    got = paper.paper_logit_accuracy(model, tok, data, batch_size=2, quirks=False)
    assert got["correct"] == want and got["denominator"] == 3
    assert got["acc"] == pytest.approx(want / 3)
    # the script's way: right padding with the pad token, no mask, the last column, 4 per 3
    enc = [tok(p)["input_ids"] for p, _ in data]
    quirk_pred = []
    for batch in (enc[:2], enc[2:]):
        width = max(map(len, batch))
        for e in batch:
            logits = _next_logits(model, e + [tok.pad_token_id] * (width - len(e)))
            quirk_pred.append(int(logits[id1] > logits[id0]))
    want = sum(p == y for p, (_, y) in zip(quirk_pred, data))
    got = paper.paper_logit_accuracy(model, tok, data, batch_size=2, quirks=True)
    assert got["correct"] == want and got["denominator"] == 4
    assert got["acc"] == pytest.approx(want / 4)


def test_paper_hhh_compares_whole_dialogue_mean_loglikelihood(tiny) -> None:
    model, tok = tiny
    rows = [
        {"input": "How do I bake bread?", "targets": {"choices": ["Use flour.", "No."], "labels": [1, 0]}},
        {"input": "Hi", "targets": {"choices": ["Hello, how can I help you today?", "Hello"], "labels": [1, 0]}},
        {"input": "Tell me", "targets": {"choices": ["a b c", "a b c d e f g"], "labels": [1, 0]}},
    ]  # fmt: skip
    pairs = paper.paper_hhh_pairs(rows)
    assert pairs[0][0] == "\n\nHuman: How do I bake bread?\n\nAssistant: Use flour."

    def mean_ll(text: str) -> float:  # -loss of labels=input_ids, as the script
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            return -model(input_ids=ids, labels=ids).loss.item()

    want = sum(mean_ll(a) > mean_ll(b) for a, b in pairs)
    got = paper.paper_hhh_accuracy(model, tok, pairs, bs=3)
    assert got["correct"] == want and got["n"] == 3
    with pytest.raises(ValueError, match="hhh row 0"):
        paper.paper_hhh_pairs(
            [{"input": "x", "targets": {"choices": ["a", "b"], "labels": [0, 1]}}]
        )


def _parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def hub_layout(root: Path) -> Path:
    """A folder laid out like the three hub repos (the revisions the loaders read)."""
    glue = root / "nyu-mll" / "glue"
    for cfg, rows in (
        ("wnli", [{"sentence1": f"s{i}", "sentence2": f"t{i}", "label": i % 2, "idx": i} for i in range(6)]),
        ("qnli", [{"question": f"q{i}", "sentence": f"s{i}", "label": i % 2, "idx": i} for i in range(5)]),
    ):  # fmt: skip
        _parquet(glue / cfg / "validation-00000-of-00001.parquet", rows)
        _parquet(glue / cfg / "train-00000-of-00001.parquet", rows[:2])
    configs = "".join(
        f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train-*\n"
        f"  - split: validation\n    path: {c}/validation-*\n"
        for c in ("qnli", "wnli")
    )
    (glue / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    tw = root / "carblacac" / "twitter-sentiment-analysis" / "None"
    _parquet(tw / "validation" / "0000.parquet", [{"text": f"tw{i}", "feeling": i % 2} for i in range(7)])  # fmt: skip
    _parquet(tw / "train" / "0000.parquet", [{"text": "x", "feeling": 0}])
    for sub in columns.PAPER_HHH:
        rows = [{"input": f"{sub} {i}", "targets": {"choices": ["good", "bad"], "labels": [1, 0]}}
                for i in range(3)]  # fmt: skip
        _parquet(root / "HuggingFaceH4" / "hhh_alignment" / sub / "test" / "0000.parquet", rows)
    return root


def test_paper_loaders_read_hub_layout_folders(tmp_path: Path, tiny) -> None:
    root = hub_layout(tmp_path / "hub")
    data = paper.load_paper(root, fixture_eval_dir())
    assert [r["sentence1"] for r in data["wnli"]] == [f"s{i}" for i in range(6)]
    assert len(data["qnli"]) == 5 and data["sentiment"][2] == {"text": "tw2", "feeling": 0}
    assert data["hhh"]["honest"][1]["targets"]["labels"] == [1, 0]
    model, tok = tiny
    out = paper.run_paper(model, tok, data, quirks=True, bs=4)
    assert out["wnli"]["n"] == 3 and out["wnli"]["denominator"] == 8
    assert out["twitter_binary"]["n"] == 4 and out["hhh"]["helpful"]["n"] == 3
    with pytest.raises(FileNotFoundError, match="nyu-mll/glue"):
        paper.load_hub_rows("wnli", tmp_path / "nowhere")


def test_load_benchmarks_by_protocol(tmp_path: Path) -> None:
    root = hub_layout(tmp_path / "hub")
    cfg = EvaluateConfig(benchmarks={"protocol": "both", "paper_data_dir": str(root)})
    data = suite.load_benchmarks(cfg)
    assert data["source"] == "fixture" and data["standard"]["wsc"] and data["paper"]["wnli"]
    cfg = EvaluateConfig(benchmarks={"protocol": "paper", "paper_data_dir": str(root)})
    assert suite.load_benchmarks(cfg)["standard"] is None


# ----------------------------------------------------------------------------- the table
def _result(mean: float, n: int, bench: dict | None) -> dict:
    s = {"mean": mean, "std": 0.0, "ci_low": mean - 0.1, "ci_high": mean + 0.1, "n": n}
    r = {"proxy": s, "gold": s}
    if bench is not None:
        r["benchmarks"] = bench
    return r


def test_table4_lists_every_model_with_labelled_columns(tiny) -> None:
    model, tok = tiny
    data = loaders.load_all(fixture_eval_dir())
    bench = {"smoke": True, **tasks.run_all(model, tok, data, tasks.StandardRun(batch_size=8))}
    bench["paper"] = {"wnli": {"acc": 0.5, "n": 68}}
    results = {"rlhf": _result(0.1, 40, bench), "base": _result(0.2, 40, bench),
               "pythia-1b": _result(0.3, 3, bench), "test_prompts": 40}  # fmt: skip
    table = table4(results)
    lines = table.splitlines()
    assert lines[0].startswith("Smoke run")
    rows = [ln.split(" | ")[0].strip("| ") for ln in lines if ln.startswith("| ")][1:]
    assert rows == ["base", "rlhf", "pythia-1b"]
    header = next(ln for ln in lines if ln.startswith("| model"))
    n_wsc = len(data["wsc"])
    assert f"Winograd (standard, smoke: WSC273 partial scoring, n={n_wsc})" in header
    assert "Winograd (paper: GLUE WNLI 3-shot, n=68)" in header
    assert "0.500" in lines[-1] and "(n=3, no interval)" in lines[-1]


def test_reward_cell_prints_no_interval_below_the_minimum_n() -> None:
    assert reward_cell({"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 1}) == "1.000 (n=1, no interval)"  # fmt: skip
    assert reward_cell({"mean": 1.0, "ci_low": 0.5, "ci_high": 1.5, "n": 50}) == "1.000 [0.500, 1.500]"  # fmt: skip


# ----------------------------------------------------------------------------- lm-eval on demand
def test_lm_eval_task_yaml_over_a_local_file(tiny, tmp_path: Path) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval not installed (pip install -e '.[eval]')")
    model, tok = tiny
    rows = [{"context": "The cat sat on the", "continuation": " mat"},
            {"context": "Bread and", "continuation": " eggs"}]  # fmt: skip
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tasks").mkdir()
    yaml = tmp_path / "tasks" / "tiny_ll.yaml"
    yaml.write_text(
        "task: tiny_ll\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files: {{test: {data}}}\ntest_split: test\n"
        "output_type: loglikelihood\ndoc_to_text: '{{context}}'\n"
        "doc_to_target: '{{continuation}}'\ntarget_delimiter: ''\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    out = harness.run_lm_eval(model, tok, [str(yaml)], bs=2)
    ours = scoring.loglikelihood(model, tok, [(r["context"], r["continuation"]) for r in rows])
    assert out["tiny_ll"]["n"] == 2
    assert out["tiny_ll"]["acc"] == pytest.approx(sum(g for _, g in ours) / 2)


def test_lm_eval_tasks_without_lm_eval_are_an_error_before_any_work(
    tiny, tmp_path, monkeypatch
) -> None:
    """Issue 22: not a warning and an incomplete cached output, a one-line error
    from the stage before any model loads or benchmark runs."""
    from helpers import write_params

    from superhf.cli import USER_ERROR_EXIT, run
    from superhf.stages import evaluate as stage

    model, tok = tiny
    monkeypatch.setattr(suite, "lm_eval_available", lambda: False)
    cfg = EvaluateConfig(benchmarks={"protocol": "paper", "lm_eval_tasks": ["lambada_openai"]})
    bench = {"source": "fixture", "standard": None, "paper": None}
    with pytest.raises(BadInputError, match="lm_eval_tasks.*pip install"):
        suite.run_benchmarks(model, tok, bench, cfg)
    loaded: list = []
    monkeypatch.setattr(stage, "resolve_models", lambda *a: loaded.append(a))
    params = write_params(tmp_path / "p.yaml", evaluate={"benchmarks": {"lm_eval_tasks": ["x"]}})
    with pytest.raises(SystemExit) as exit_:
        run(stage.main, ["--params", str(params), "--prompts", "none", "--reward", "none",
                         "--gold", "none", "--metrics", "m.json", "--table", "t.md",
                         "--completions", "c.jsonl"])  # fmt: skip
    assert exit_.value.code == USER_ERROR_EXIT and not loaded


def test_hhh_requests_through_the_shared_context_equal_one_forward_each(tiny) -> None:
    model, tok = tiny
    ex = loaders.load_hhh(fixture_eval_dir())["helpful"]
    reqs = [("\nHuman: " + e["input"] + "\nAssistant:", " " + c) for e in ex for c in e["choices"]]
    a = [ll for ll, _ in scoring.loglikelihood(model, tok, reqs, 4)]
    b = [ll for ll, _ in scoring.loglikelihood(model, tok, reqs, 4, share_context=False)]
    assert a == pytest.approx(b, abs=1e-4)


def test_hub_wsc_rows_are_normalised_as_lm_eval_and_match_the_local_file() -> None:
    text = "The city councilmen refused the demonstrators a permit because they feared violence."
    row = {"text": text, "pronoun": "they", "pronoun_loc": text.index("they"),
           "options": ["The city councilmen", "The demonstrators"], "label": 0}  # fmt: skip
    local = json.loads((fixture_eval_dir() / "wsc273" / "winograd_wsc_llmfoundry.jsonl").read_text().splitlines()[0])  # fmt: skip
    got = loaders.wsc_row(row)
    assert got == {
        "context_options": [
            "The city councilmen refused the demonstrators a permit because the city councilmen",
            "The city councilmen refused the demonstrators a permit because the demonstrators",
        ],
        "continuation": "feared violence.",
        "gold": 0,
    }
    assert set(local) == set(got)
    his = {"text": "Tom said. He left his coat.", "pronoun": "his", "pronoun_loc": 18,
           "options": ["Tom", "Bill"], "label": 1}  # fmt: skip
    assert loaders.wsc_row(his)["context_options"][0] == "Tom said. He left Tom's"


def test_stage_tables_custom_and_reference_models(tmp_path: Path) -> None:
    """`--model NAME=DIR` beyond the known names and `reference_models` are evaluated and
    listed in Table 4 (a custom name used to be evaluated and then left out)."""
    import shutil

    from helpers import PROMPTS, TINY_GEN, make_tiny_models, write_params

    from superhf.stages import evaluate

    policy, reward = make_tiny_models(tmp_path / "m")
    shutil.copytree(policy, tmp_path / "mine")
    prompts = tmp_path / "test.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "dataset": "a"}) + "\n" for p in PROMPTS))
    section = {"max_test_prompts": 2, "best_of_n": 0, "bootstrap_samples": 20,
               "generation": TINY_GEN, "score_cache": False, "reference_models": {"ref": str(policy)},
               "benchmarks": {"max_examples": {"hhh": 1, "lambada": 2, "wsc": 1, "tweets": 2, "squad": 1}}}  # fmt: skip
    params = write_params(tmp_path / "p.yaml", evaluate=section)
    out = tmp_path / "out"
    evaluate.main(["--params", str(params), "--prompts", str(prompts), "--model", f"base={policy}",
                   "--model", f"mine={tmp_path / 'mine'}", "--reward", str(reward), "--gold", str(reward),
                   "--metrics", str(out / "eval.json"), "--table", str(out / "table4.md"),
                   "--completions", str(out / "c.jsonl")])  # fmt: skip
    table = (out / "table4.md").read_text()
    assert "| mine |" in table and "| ref |" in table and "| base |" in table
    assert "Smoke run" in table and "(n=2, no interval)" in table
    ev = json.loads((out / "eval.json").read_text())
    assert ev["ref"]["benchmarks"]["n"]["lambada"] == 2


def test_paper_hhh_log_probs_are_chunked_with_the_same_sums(tiny, monkeypatch) -> None:
    """Issue 22: the paper HHH scorer never holds full-vocabulary log-probs for a whole
    batch of dialogues (24 GB on the default policy), only ``bs x chunk`` columns at once,
    and its sums equal one full log-softmax per dialogue."""
    model, tok = tiny
    texts = ["\n\nHuman: hi\n\nAssistant: " + " ".join(["bread and eggs"] * k) for k in (3, 9, 20)]
    seqs = [tok(t)["input_ids"] for t in texts]
    assert max(map(len, seqs)) > 40
    widest: list[int] = []
    real = scoring.F.log_softmax
    monkeypatch.setattr(
        scoring.F, "log_softmax", lambda x, dim: widest.append(x.shape[1]) or real(x, dim=dim)
    )
    got = scoring.dialogue_logprob_sums(model, seqs, tok.pad_token_id, bs=2, chunk=8)
    assert widest and max(widest) <= 8
    for ids, g in zip(seqs, got):
        with torch.no_grad():
            logp = real(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(), dim=-1)
        assert g == pytest.approx(
            float(logp.gather(-1, torch.tensor(ids[1:])[:, None]).sum()), abs=1e-3
        )
    widest.clear()  # the accuracy goes through the same chunks
    monkeypatch.setattr(scoring, "HHH_CHUNK", 8)
    paper.paper_hhh_accuracy(model, tok, [(texts[2], texts[1])], bs=8)
    assert widest and max(widest) <= 8
