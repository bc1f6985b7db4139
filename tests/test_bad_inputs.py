"""Hostile inputs: one table of bad files, folders and params across every stage.

Each case breaks one input of a working tiny workspace and states its outcome:

- ERROR: the stage prints one line ``<stage>: error: ...`` naming the file/key/row, exits 1,
  prints no traceback, and leaves every file of the workspace byte-identical (outputs
  included: nothing written, nothing changed);
- SKIPPED: a bad row of a raw data file is counted in ``metrics/data.json`` and its example
  names the file and line, the stage succeeds;
- RECOVERED: the input is repaired around (a broken checkpoint moved aside, a broken score
  cache rebuilt, a missing pad token replaced by EOS), with a warning naming it.

Stage mains run in-process through :func:`superhf.cli.run` (the wrapper every
``__main__`` uses); ``test_wrapper_in_a_real_process`` proves the no-traceback promise on
real ``python -m`` processes for three of the cases.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from helpers import PROMPTS, TINY_GEN, make_tiny_models

from superhf import cli
from superhf.checkpoints import Checkpointer, discard_checkpoints
from superhf.config.common import OptimConfig
from superhf.models import load_causal_lm, load_tokenizer
from superhf.paths import fixture_dir, fixture_eval_dir
from superhf.profile import resolve
from superhf.reward import RewardScorer, model_hash
from superhf.tiny import fixture_texts, tiny_causal_lm, tiny_tokenizer
from superhf.training import build_optimizer, make_accelerator

ERROR, SKIPPED, RECOVERED = "error", "counted and skipped", "recovered"
STAGES = ("prepare", "base_policy", "reward_model", "superhf", "rlhf", "evaluate", "report",
          "summary")  # fmt: skip
TRAIN_RAW = "raw/hh-rlhf/helpful-base/train.jsonl.gz"
TRAIN_ARGS = ["--policy", "policy", "--reward", "reward", "--prompts", "data/prompts/train.jsonl"]
ARGS = {
    "prepare": ["--prompts", "out/prompts", "--preferences", "out/preferences",
                "--metrics", "out/data.json"],
    "base_policy": ["--out", "out/base"],
    "reward_model": ["--preferences", "data/preferences", "--out", "out/reward",
                     "--gold-out", "out/reward_gold", "--metrics", "out/reward.json"],
    "superhf": [*TRAIN_ARGS, "--out", "out/superhf", "--checkpoints", "checkpoints/superhf",
                "--metrics", "out/superhf.json", "--curve", "out/superhf_curve.csv",
                "--samples", "out/superhf_samples.jsonl"],
    "rlhf": [*TRAIN_ARGS, "--out", "out/rlhf", "--checkpoints", "checkpoints/rlhf",
             "--metrics", "out/rlhf.json", "--curve", "out/rlhf_curve.csv",
             "--samples", "out/rlhf_samples.jsonl"],
    "evaluate": ["--model", "base=policy", "--prompts", "data/prompts/test.jsonl",
                 "--reward", "reward", "--gold", "reward", "--metrics", "out/eval.json",
                 "--table", "out/table4.md", "--completions", "out/completions.jsonl"],
    "report": ["--superhf-curve", "metrics/superhf_curve.csv", "--rlhf-curve",
               "metrics/rlhf_curve.csv", "--eval", "metrics/eval.json", "--out", "out/reports"],
    "summary": ["--eval", "metrics/eval.json", "--reward-model", "metrics/reward_model.json",
                "--superhf", "metrics/superhf.json", "--rlhf", "metrics/rlhf.json",
                "--out", "out/summary.json"],
}  # fmt: skip


# ----------------------------------------------------------------------------- the workspace
def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny workspace where every stage's inputs are good, and older outputs exist."""
    ws = tmp_path_factory.mktemp("ws")
    make_tiny_models(ws)
    shutil.copytree(fixture_dir(), ws / "raw")
    shutil.copytree(fixture_eval_dir(), ws / "bench")
    params = resolve("tiny")
    params["tracking"]["enabled"] = False
    params["prepare"].update(source="local", data_dir="raw", datasets=["helpful_base"])
    params["superhf"].update(num_prompts=1, superbatch_size=2, top_k=1, minibatch_size=2,
                             checkpoint_every=1, generation=TINY_GEN)  # fmt: skip
    params["evaluate"]["benchmarks"].update(source="local", data_dir="bench")
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    prompts = ws / "data" / "prompts"
    prompts.mkdir(parents=True)
    (prompts / "train.jsonl").write_text(jsonl([{"prompt": p} for p in PROMPTS]))
    (prompts / "test.jsonl").write_text(jsonl([{"prompt": p, "dataset": "x"} for p in PROMPTS]))
    prefs = ws / "data" / "preferences"
    prefs.mkdir()
    pairs = [{"prompt": p, "chosen": "Sure.", "rejected": "No."} for p in PROMPTS]
    for split in ("train", "test"):
        (prefs / f"{split}.jsonl").write_text(jsonl(pairs))
    (ws / "metrics").mkdir()
    for stage in ("superhf", "rlhf"):
        (ws / "metrics" / f"{stage}_curve.csv").write_text(
            "step,reward_mean,reward_ema\n0,0.1,0.1\n1,0.2,0.15\n"
        )
    for name in ("eval", "reward_model", "superhf", "rlhf"):
        (ws / "metrics" / f"{name}.json").write_text("{}\n")
    # earlier outputs: a failing run must leave them as they are
    for out in ("out/prompts/train.jsonl", "out/data.json", "out/superhf.json",
                "out/superhf/model.safetensors", "out/eval.json", "out/reports/a.png"):  # fmt: skip
        (ws / out).parent.mkdir(parents=True, exist_ok=True)
        (ws / out).write_text(f"an earlier {out}\n")
    return ws


@pytest.fixture(scope="module")
def baseline(base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """metrics/data.json of the unbroken workspace: the counts a SKIPPED case adds to."""
    ws = tmp_path_factory.mktemp("baseline")
    shutil.copytree(base, ws, dirs_exist_ok=True)
    return run_prepare(ws)


def run_prepare(ws: Path) -> dict:
    module = importlib.import_module("superhf.stages.prepare")
    with chdir(ws):
        cli.run(module.main, ["--params", "params.yaml", *ARGS["prepare"]])
    return json.loads((ws / "out" / "data.json").read_text())["datasets"]["helpful_base"]


class chdir:  # noqa: N801 - contextlib.chdir is Python 3.11+
    def __init__(self, path: Path) -> None:
        self.path, self.old = path, Path.cwd()

    def __enter__(self) -> None:
        import os

        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        import os

        os.chdir(self.old)


def snapshot(ws: Path) -> dict[str, str]:
    """Every file and folder of the workspace with a hash of its bytes."""
    out = {}
    for p in sorted(ws.rglob("*")):
        rel = str(p.relative_to(ws))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


# ----------------------------------------------------------------------------- breakers
def text(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        (ws / rel).write_bytes(data)

    return apply


def params(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        p = yaml.safe_load((ws / "params.yaml").read_text())
        edit(p)
        (ws / "params.yaml").write_text(yaml.safe_dump(p))

    return apply


def raw_line(line: bytes, at: int = 1) -> Callable[[Path], None]:
    """Insert one line into the helpful-base training file, as line ``at + 1``."""

    def apply(ws: Path) -> None:
        path = ws / TRAIN_RAW
        lines = gzip.decompress(path.read_bytes()).split(b"\n")
        lines.insert(at, line)
        path.write_bytes(gzip.compress(b"\n".join(lines)))

    return apply


def truncate(rel: str, keep: float = 0.5) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        data = (ws / rel).read_bytes()
        (ws / rel).write_bytes(data[: int(len(data) * keep)])

    return apply


def json_edit(rel: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        d = json.loads((ws / rel).read_text())
        edit(d)
        (ws / rel).write_text(json.dumps(d))

    return apply


def tokenizer_files(folder: Path) -> list[Path]:
    names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
    return [folder / n for n in names if (folder / n).is_file()]


def drop_tokenizer(rel: str) -> Callable[[Path], None]:
    """The folder keeps its config and weights; every tokenizer file goes."""
    return lambda ws: [p.unlink() for p in tokenizer_files(ws / rel)]


def tokenizer_of(rel: str, make: Callable[[], object]) -> Callable[[Path], None]:
    """The folder's tokenizer replaced by another model's (``make()``)."""

    def apply(ws: Path) -> None:
        drop_tokenizer(rel)(ws)
        make().save_pretrained(ws / rel)

    return apply


def larger_tokenizer():
    """The policy family's tokenizer with 700 tokens, for models with 512 embedding rows."""
    return tiny_tokenizer(vocab_size=700)


def wordpiece_tokenizer(vocab_size: int = 300):
    """A BERT-family (WordPiece) tokenizer: another model family than the BPE policy's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    tok.train_from_iterator(fixture_texts()[:200], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")  # fmt: skip


def llama_style_tokenizer():
    """Same vocabulary size as the policy's, but ``</s>`` (id 2) ends text, not id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(fixture_texts(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", bos_token="<s>",
                                   unk_token="<unk>")  # fmt: skip


def weights_reshaped(rel: str, name: str, rows: int) -> Callable[[Path], None]:
    """One tensor of a model.safetensors given ``rows`` rows: weights of another size."""

    def apply(ws: Path) -> None:
        from safetensors.torch import load_file, save_file

        t = load_file(ws / rel)
        t[name] = torch.zeros(rows, *t[name].shape[1:])
        save_file(t, ws / rel, metadata={"format": "pt"})

    return apply


def pickled_weights_too(rel: str) -> Callable[[Path], None]:
    """A pytorch_model.bin (another model's weights) beside the folder's model.safetensors."""

    def apply(ws: Path) -> None:
        other = tiny_causal_lm(tiny_tokenizer(), seed=7).state_dict()
        torch.save(other, ws / rel / "pytorch_model.bin")

    return apply


def copy_of(src: str, dst: str, then: Callable[[Path], None]) -> Callable[[Path], None]:
    """A copy of the model folder ``src`` at ``dst``, broken by ``then``."""

    def apply(ws: Path) -> None:
        shutil.copytree(ws / src, ws / dst)
        then(ws)

    return apply


def chain(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda ws: [step(ws) for step in steps]


def hh(reply: str, q: str = "Why?") -> bytes:
    return json.dumps(
        {"chosen": f"\n\nHuman: {q}\n\nAssistant: {reply}", "rejected": f"\n\nHuman: {q}\n\nAssistant: no"}
    ).encode()  # fmt: skip


def set_key(section: str, key: str, value: object) -> Callable[[dict], None]:
    return lambda p: p[section].__setitem__(key, value)


# ----------------------------------------------------------------------------- RECOVERED checks
def tiny_checkpoint(ws: Path) -> tuple[Checkpointer, torch.nn.Module, object, object]:
    model = load_causal_lm(ws / "policy")
    opt, sched = build_optimizer(model, OptimConfig(warmup_steps=0), 10)
    return Checkpointer(ws / "ck", "fp", make_accelerator()), model, opt, sched


def checkpoint_broken(
    damage: Callable[[Path], None],
) -> Callable[[Path, pytest.LogCaptureFixture], None]:
    """Save a real checkpoint, damage it, load: moved aside, model untouched, a warning."""

    def check(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
        ck, model, opt, sched = tiny_checkpoint(ws)
        ck.save(model, opt, sched, 3, {"history": []})
        assert ck.load(model, opt, sched)[0] == 3  # the intact checkpoint does resume
        damage(ws / "ck")
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with caplog.at_level(logging.WARNING):
            assert ck.load(model, opt, sched) is None
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
        assert not (ws / "ck").exists() and (ws / "ck.unusable").is_dir()
        assert "ck.unusable" in caplog.text and "training starts fresh" in caplog.text

    return check


def checkpoint_killed_mid_replace(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A kill between the two renames of a checkpoint save (the folder moved to ``.ck.old``,
    the new one not yet in place): load resumes the previous checkpoint."""
    from unittest import mock

    import superhf.io

    ck, model, opt, sched = tiny_checkpoint(ws)
    ck.save(model, opt, sched, 3, {"history": []})
    real = superhf.io.os.replace

    def replace_then_die(src, dst) -> None:
        real(src, dst)
        if Path(dst).name == ".ck.old":
            raise KeyboardInterrupt  # stands in for the SIGKILL

    with (
        mock.patch.object(superhf.io.os, "replace", replace_then_die),
        pytest.raises(KeyboardInterrupt),
    ):
        ck.save(model, opt, sched, 5, {"history": []})
    assert not (ws / "ck").exists() and (ws / ".ck.old" / "meta.json").is_file()
    (ws / ".ck.k1ll3d" / "out").mkdir(parents=True)  # a SIGKILL skips atomic_path's cleanup
    with caplog.at_level(logging.WARNING):
        assert ck.load(model, opt, sched)[0] == 3
    assert "mid-replace" in caplog.text and not list(ws.glob(".ck.*"))
    # a finished run removes its checkpoint and whatever killed saves left beside it
    (ws / ".ck.old").mkdir()
    discard_checkpoints(ws / "ck", make_accelerator())
    assert not list(ws.glob("ck*")) and not list(ws.glob(".ck*"))


def other_model_weights(ck: Path) -> None:
    from safetensors.torch import load_file, save_file

    t = load_file(ck / "model.safetensors")
    name = next(iter(t))
    t[name] = torch.zeros(3, 3)
    save_file(t, ck / "model.safetensors")


def corrupt_meta_run(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The issue's case end to end: the superhf stage starts despite a corrupt meta.json."""
    (ws / "checkpoints" / "superhf").mkdir(parents=True)
    (ws / "checkpoints" / "superhf" / "meta.json").write_text('{"step": 1, "finger')
    module = importlib.import_module("superhf.stages.superhf")
    with chdir(ws), caplog.at_level(logging.WARNING):
        cli.run(module.main, ["--params", "params.yaml", *ARGS["superhf"]])
    assert (ws / "out" / "superhf" / "config.json").is_file()  # trained and saved
    assert (ws / "checkpoints" / "superhf.unusable" / "meta.json").read_text().endswith("finger")
    assert "checkpoints/superhf cannot be used" in caplog.text


def score_cache_garbage(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ws / "cache" / f"scores-{model_hash(ws / 'reward')[:16]}.sqlite"
    cache.parent.mkdir()
    cache.write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.WARNING):
        scores = RewardScorer(ws / "reward", cache_dir=ws / "cache").score(PROMPTS[:2], ["a", ""])
    assert len(scores) == 2 and all(s == s for s in scores)
    assert cache.with_suffix(".sqlite.bad").read_bytes().startswith(b"not a database")
    assert str(cache) in caplog.text


def empty_completion_scores(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
    scores = RewardScorer(ws / "reward").score(PROMPTS, ["", " ", "Paris.", ""])
    assert all(isinstance(s, float) and s == s for s in scores)


def no_pad_token(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
    tok = load_tokenizer(ws / "policy")
    assert tok.pad_token == tok.eos_token and tok.pad_token is not None


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    name: str
    stage: str
    outcome: str
    breaks: Callable[[Path], None] = lambda ws: None
    names: str = ""  # what the error line (or the skipped row's example) must name
    swap: dict[str, str] = field(default_factory=dict)  # argument -> replacement value
    counter: str = "dropped_malformed"  # for SKIPPED: which count grows by one
    check: Callable[..., None] | None = None  # for RECOVERED


P = "params.yaml"
CASES = [
    # --- params
    Case("params not YAML", "prepare", ERROR, text(P, "prepare: [source: local\n"), f"{P}: not valid YAML"),  # noqa: E501
    Case("params file missing", "prepare", ERROR, names="params file not found: nothere.yaml",
         swap={"--params": "nothere.yaml"}),
    Case("params top level a list", "prepare", ERROR, text(P, "- prepare\n"), "top level must be a mapping"),  # noqa: E501
    Case("params section missing", "reward_model", ERROR, text(P, "prepare: {}\n"), "missing section 'reward_model'"),  # noqa: E501
    Case("params unknown key", "prepare", ERROR, params(set_key("prepare", "max_prompt_char", 9)),
         "prepare.max_prompt_char: unknown key"),
    Case("params wrong type", "superhf", ERROR, params(set_key("superhf", "top_k", "two")), "superhf.top_k"),  # noqa: E501
    Case("params duplicated key", "prepare", ERROR,
         text(P, "prepare:\n  seed: 1\n  seed: 2\ntracking: {enabled: false}\n"), "duplicated key 'seed'"),  # noqa: E501
    Case("MLflow URI a file store", "superhf", ERROR,
         params(lambda p: p["tracking"].update(enabled=True, uri="file:///tmp/mlruns")), "tracking.uri"),  # noqa: E501
    Case("prompt budget longer than the model's context", "superhf", ERROR,
         params(lambda p: p["superhf"]["generation"].update(max_prompt_tokens=600)),
         "superhf.generation.max_prompt_tokens + superhf.generation.max_new_tokens = 608"),
    # --- raw data (prepare): a bad row is counted and skipped, a bad file is an error
    Case("raw gzip truncated", "prepare", ERROR, truncate(TRAIN_RAW), f"{TRAIN_RAW} is truncated or corrupt"),  # noqa: E501
    Case("raw data_dir missing", "prepare", ERROR, params(set_key("prepare", "data_dir", "nope")),
         "prepare.data_dir: nope"),
    Case("raw subset folder missing", "prepare", ERROR,
         lambda ws: shutil.rmtree(ws / "raw/hh-rlhf/helpful-base"), "subset 'helpful_base' not found"),  # noqa: E501
    Case("raw file empty", "prepare", ERROR, text(TRAIN_RAW, gzip.compress(b"")), "no training prompts survived"),  # noqa: E501
    Case("raw JSON array that does not parse", "prepare", ERROR, text(TRAIN_RAW, gzip.compress(b"[{")),
         "a JSON array that does not parse"),
    Case("raw line not UTF-8", "prepare", SKIPPED, raw_line(b'{"chosen": "\xff\xfe", "rejected": "x"}'),
         "train.jsonl.gz line 2: not UTF-8"),
    Case("raw line not JSON", "prepare", SKIPPED, raw_line(b'{"chosen": '), "train.jsonl.gz line 2: invalid JSON"),  # noqa: E501
    Case("raw line duplicated key", "prepare", SKIPPED, raw_line(b'{"chosen": "a", "chosen": "b"}', 3),
         "train.jsonl.gz line 4: key 'chosen' appears twice"),
    Case("raw field wrong type", "prepare", SKIPPED, raw_line(b'{"chosen": 42, "rejected": "x"}'),
         "expected a string, got int"),
    Case("raw field missing", "prepare", SKIPPED, raw_line(b'{"rejected": "x"}'), "missing field 'chosen'"),  # noqa: E501
    Case("raw row a JSON array", "prepare", SKIPPED, raw_line(b'["chosen", "rejected"]'), "row is a list"),  # noqa: E501
    Case("raw empty completion", "prepare", SKIPPED, raw_line(hh("")), counter="pairs_skipped"),
    Case("raw prompt longer than max_prompt_chars", "prepare", SKIPPED, raw_line(hh("ok", "x" * 2000)),
         counter="dropped_too_long"),
    # --- prompt files (training and evaluation): written by prepare, so a bad row is an error
    Case("prompts row lacks 'prompt'", "superhf", ERROR,
         text("data/prompts/train.jsonl", '{"prompt": "a"}\n{"text": "b"}\n'),
         "data/prompts/train.jsonl:2: field 'prompt' must be a string (missing)"),
    Case("prompts file empty", "rlhf", ERROR, text("data/prompts/train.jsonl", ""), "data/prompts/train.jsonl: no prompts"),  # noqa: E501
    Case("prompts file missing", "superhf", ERROR, names="expected a JSONL file at nope.jsonl",
         swap={"--prompts": "nope.jsonl"}),
    Case("prompts a JSON array", "superhf", ERROR,
         text("data/prompts/train.jsonl", '[\n{"prompt": "a"}\n]\n'), "a JSON array?"),
    Case("prompts one-line JSON array", "superhf", ERROR,
         text("data/prompts/train.jsonl", '[{"prompt": "a"}]\n'), "expected a JSON object, got list"),
    Case("prompts wrong type", "superhf", ERROR, text("data/prompts/train.jsonl", '{"prompt": 5}\n'),
         "field 'prompt' must be a string (int)"),
    Case("prompts duplicated key", "superhf", ERROR,
         text("data/prompts/train.jsonl", '{"prompt": "a", "prompt": "b"}\n'), "key 'prompt' appears twice"),  # noqa: E501
    Case("prompts line not UTF-8", "superhf", ERROR,
         text("data/prompts/train.jsonl", b'{"prompt": "a"}\n{"prompt": "\xff"}\n'),
         "data/prompts/train.jsonl:2: not UTF-8"),
    Case("test prompts lack 'dataset'", "evaluate", ERROR,
         text("data/prompts/test.jsonl", '{"prompt": "a"}\n'), "field 'dataset' must be a string"),
    # --- preference files
    Case("preferences empty completion", "reward_model", ERROR,
         text("data/preferences/test.jsonl", '{"prompt": "a", "chosen": "", "rejected": "b"}\n'),
         "data/preferences/test.jsonl:1: field 'chosen' is empty"),
    Case("preferences file missing", "reward_model", ERROR,
         lambda ws: shutil.move(ws / "data/preferences/test.jsonl", ws / "t"), "expected a JSONL file"),  # noqa: E501
    # --- model folders and tokenizers
    Case("policy folder missing", "superhf", ERROR, names="model folder not found: nopolicy",
         swap={"--policy": "nopolicy"}),
    Case("policy folder missing (PPO)", "rlhf", ERROR, names="model folder not found: nopolicy",
         swap={"--policy": "nopolicy"}),
    Case("policy folder without config.json", "superhf", ERROR,
         lambda ws: (ws / "policy/config.json").unlink(), "policy is not a model folder"),
    Case("policy model.safetensors truncated", "superhf", ERROR, truncate("policy/model.safetensors"),
         "policy/model.safetensors: truncated"),
    Case("policy model.safetensors header cut", "evaluate", ERROR,
         truncate("policy/model.safetensors", 0.0001), "policy/model.safetensors: not a readable"),
    Case("reward folder missing", "evaluate", ERROR, names="model folder not found: noreward",
         swap={"--reward": "noreward"}),
    Case("reward folder with 2 labels", "superhf", ERROR,
         json_edit("reward/config.json", lambda c: c.update(id2label={"0": "a", "1": "b"})),
         "has 2 outputs; a reward model must have exactly 1"),
    Case("tokenizer without pad and EOS tokens", "superhf", ERROR,
         json_edit("policy/tokenizer_config.json", lambda c: c.update(pad_token=None, eos_token=None, bos_token=None)),  # noqa: E501
         "neither a pad nor an EOS token"),
    # --- model folders that are not what they claim (issue 28): refused before any work
    Case("reward folder without tokenizer files", "superhf", ERROR, drop_tokenizer("reward"),
         "reward: no tokenizer files"),
    Case("reward folder with a larger model's tokenizer", "superhf", ERROR,
         tokenizer_of("reward", larger_tokenizer),
         "reward: the tokenizer has 700 tokens but config.json has 512 embedding rows"),
    Case("policy config.json not JSON", "superhf", ERROR, text("policy/config.json", '{"model_type": "gpt_neox",'),  # noqa: E501
         "policy/config.json: not valid JSON (line 1 column 27"),
    Case("policy config.json not JSON (PPO)", "rlhf", ERROR, text("policy/config.json", "[1, 2]"),
         "policy/config.json: holds a list, not a JSON object"),
    Case("policy folder without tokenizer files", "superhf", ERROR, drop_tokenizer("policy"),
         "policy: no tokenizer files"),
    Case("policy tokenizer of another family, smaller vocabulary", "superhf", ERROR,
         tokenizer_of("policy", wordpiece_tokenizer), "policy: the tokenizer has 300 tokens for 512 embedding rows"),  # noqa: E501
    Case("policy tokenizer of another family, same vocabulary size", "rlhf", ERROR,
         tokenizer_of("policy", llama_style_tokenizer), "policy: the tokenizer's EOS '</s>' is id 2 but config.json ends text with [0]"),  # noqa: E501
    Case("policy tokenizer files that do not load", "superhf", ERROR,
         text("policy/tokenizer.json", '{"version": "1.0", "model": {"type": "BPE"}}'),
         "policy: its tokenizer files do not load"),
    Case("policy model.safetensors of another size than config.json", "superhf", ERROR,
         weights_reshaped("policy/model.safetensors", "gpt_neox.embed_in.weight", 600),
         "policy/model.safetensors: tensor gpt_neox.embed_in.weight has shape [600, 64] but config.json describes [512, 64]"),  # noqa: E501
    Case("reward model.safetensors head of another size", "evaluate", ERROR,
         weights_reshaped("reward/model.safetensors", "classifier.weight", 2),
         "reward/model.safetensors: tensor classifier.weight has shape [2, 64]"),
    Case("policy weights in two formats", "superhf", ERROR, pickled_weights_too("policy"),
         "policy holds weights in two formats (model.safetensors and pytorch_model.bin)"),
    Case("reward superhf_meta.json names an unknown input format", "evaluate", ERROR,
         json_edit("reward/superhf_meta.json", lambda m: m.update(input_format="chat")),
         "reward/superhf_meta.json: input_format is 'chat', not one of text, pair, upstream"),
    Case("reward superhf_meta.json not JSON", "superhf", ERROR, text("reward/superhf_meta.json", "{"),  # noqa: E501
         "reward/superhf_meta.json: not valid JSON (line 1 column 2"),
    Case("evaluated model without tokenizer files", "evaluate", ERROR,
         copy_of("policy", "m2", drop_tokenizer("m2")), "m2: no tokenizer files",
         swap={"--model": "base=m2"}),
    Case("gold folder with a larger model's tokenizer", "evaluate", ERROR,
         copy_of("reward", "gold", tokenizer_of("gold", larger_tokenizer)),
         "gold: the tokenizer has 700 tokens", swap={"--gold": "gold"}),
    Case("reference model folder with config.json not JSON", "evaluate", ERROR,
         chain(copy_of("policy", "ref", text("ref/config.json", "{")),
               params(lambda p: p["evaluate"].update(reference_models={"ref": "ref"}))),
         "ref/config.json: not valid JSON"),
    Case("base_policy local folder without tokenizer files", "base_policy", ERROR,
         chain(drop_tokenizer("policy"), params(lambda p: p["base_policy"].update(source="local", name="policy"))),  # noqa: E501
         "policy: no tokenizer files"),
    Case("reward_model local source with a larger model's tokenizer", "reward_model", ERROR,
         chain(tokenizer_of("reward", larger_tokenizer),
               params(lambda p: p["reward_model"].update(source="local", name="reward"))),
         "reward: the tokenizer has 700 tokens"),
    Case("base_policy local folder missing", "base_policy", ERROR,
         params(lambda p: p["base_policy"].update(source="local", name="nowhere")), "nowhere"),
    # --- benchmark files
    Case("benchmark texts and labels differ", "evaluate", ERROR,
         text("bench/tweet_eval_sentiment/test_labels.txt", "0\n1\n"), "texts but 2 labels"),
    Case("benchmark JSON lines where JSON expected", "evaluate", ERROR,
         text("bench/hhh_alignment/helpful/task.json", '{"examples": []}\n{"examples": []}\n'),
         "benchmark hhh in bench: unreadable"),
    Case("benchmark file missing", "evaluate", ERROR,
         lambda ws: (ws / "bench/wsc273/winograd_wsc_llmfoundry.jsonl").unlink(), "wsc273"),
    # --- report inputs
    Case("eval metrics JSON lines", "report", ERROR, text("metrics/eval.json", "{}\n{}\n"),
         "metrics/eval.json: not valid JSON"),
    Case("summary input a JSON list", "summary", ERROR, text("metrics/rlhf.json", "[1, 2]\n"),
         "metrics/rlhf.json holds a list"),
    Case("summary input missing", "summary", ERROR, lambda ws: (ws / "metrics/superhf.json").unlink(),
         "metrics/superhf.json does not exist"),
    Case("curve not numbers", "report", ERROR, text("metrics/rlhf_curve.csv", "step\nabc\n"),
         "metrics/rlhf_curve.csv: a value is not a number"),
    # --- checkpoints, score cache, tokenizers: repaired around, with a warning
    Case("checkpoint meta.json corrupt (stage run)", "superhf", RECOVERED, check=corrupt_meta_run),
    Case("checkpoint from another code version", "superhf", RECOVERED,
         check=checkpoint_broken(lambda ck: (ck / "meta.json").write_text('{"step": 3, "state": {}}'))),  # noqa: E501
    Case("checkpoint save killed between its renames", "superhf", RECOVERED,
         check=checkpoint_killed_mid_replace),
    Case("checkpoint weights truncated", "superhf", RECOVERED,
         check=checkpoint_broken(truncate("model.safetensors"))),
    Case("checkpoint weights of another model", "superhf", RECOVERED,
         check=checkpoint_broken(other_model_weights)),
    Case("checkpoint optimiser state of another model", "superhf", RECOVERED,
         check=checkpoint_broken(lambda ck: torch.save(
             {"optimizer": {"state": {}, "param_groups": [{"params": [0]}]}, "scheduler": {}},
             ck / "optim.pt"))),
    Case("checkpoint RNG file missing", "superhf", RECOVERED,
         check=checkpoint_broken(lambda ck: (ck / "rng_0.pt").unlink())),
    Case("score cache not a database", "evaluate", RECOVERED, check=score_cache_garbage),
    Case("empty completions scored", "evaluate", RECOVERED, check=empty_completion_scores),
    Case("tokenizer without a pad token", "superhf", RECOVERED,
         json_edit("policy/tokenizer_config.json", lambda c: c.update(pad_token=None)),
         check=no_pad_token),
]  # fmt: skip


def argv_for(case: Case) -> list[str]:
    args = [*(["--params", "params.yaml"] if case.stage != "summary" else []), *ARGS[case.stage]]
    for flag, value in case.swap.items():
        i = args.index(flag)
        args[i + 1] = value
    return args


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(
    case: Case, base: Path, baseline: dict, tmp_path: Path, capsys, caplog
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    case.breaks(ws)
    if case.outcome == RECOVERED:
        case.check(ws, caplog)
        return
    if case.outcome == SKIPPED:
        counts = run_prepare(ws)
        assert counts[case.counter] == baseline[case.counter] + 1
        if case.names:
            assert any(case.names in e for e in counts["malformed_examples"]), counts
        return
    before = snapshot(ws)
    module = importlib.import_module(f"superhf.stages.{case.stage}")
    capsys.readouterr()
    with chdir(ws), pytest.raises(SystemExit) as exit_:
        cli.run(module.main, argv_for(case))
    err = capsys.readouterr().err
    assert exit_.value.code == cli.USER_ERROR_EXIT == 2
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"{case.stage}: error: ") and case.names in line, err
    assert snapshot(ws) == before  # nothing written, nothing changed


def test_the_table_covers_every_stage_and_enough_cases() -> None:
    assert {c.stage for c in CASES} == set(STAGES)
    assert len(CASES) >= 30
    assert {c.outcome for c in CASES} == {ERROR, SKIPPED, RECOVERED}


def test_a_bug_keeps_its_traceback() -> None:
    def main(argv):
        return {}["missing"]

    with pytest.raises(KeyError):
        cli.run(main, [])


@pytest.mark.parametrize(
    "stage,args,names",
    [
        ("superhf", {"--policy": "nopolicy"}, "model folder not found: nopolicy"),
        ("prepare", {}, f"{TRAIN_RAW} is truncated or corrupt"),
        ("prepare", {"--params": "bad.yaml"}, "bad.yaml: not valid YAML"),
    ],
)
def test_wrapper_in_a_real_process(stage, args, names, base: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    truncate(TRAIN_RAW)(ws)
    (ws / "bad.yaml").write_text("prepare: {seed: [1\n")
    argv = argv_for(Case("", stage, ERROR, swap=args))
    before = snapshot(ws)
    proc = subprocess.run([sys.executable, "-m", f"superhf.stages.{stage}", *argv], cwd=ws,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == cli.USER_ERROR_EXIT == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{stage}: error: ") and names in last, proc.stderr
    assert snapshot(ws) == before


@pytest.mark.parametrize("stage", STAGES)
def test_help_names_the_stage_and_documents_every_argument(stage: str, capsys) -> None:
    module = importlib.import_module(f"superhf.stages.{stage}")
    ap = module.parser()
    undocumented = [a.dest for a in ap._actions if not (a.help or "").strip()]
    assert not undocumented
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert f"python -m superhf.stages.{stage}" in out and f"Stage ``{stage}``" in out
    for action in ap._actions:
        assert action.help.split("(")[0].strip()[:20] in " ".join(out.split())
