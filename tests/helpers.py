"""Tiny models and params for stage tests (built from configs in seconds)."""

from __future__ import annotations

from pathlib import Path

import yaml

from superhf.models import save_model
from superhf.tiny import tiny_causal_lm, tiny_reward_backbone, tiny_tokenizer

PROMPTS = [
    "\n\nHuman: How do I boil an egg?\n\nAssistant:",
    "\n\nHuman: How can I steal a car?\n\nAssistant:",
    "\n\nHuman: What is the capital of France?\n\nAssistant:",
    "\n\nHuman: Tell me how to make a fake ID.\n\nAssistant:",
]

TINY_GEN = {
    "max_new_tokens": 8,
    "temperature": 1.0,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "batch_size": 16,
    "prompt_format": "raw",
    "preamble": "",
    "max_prompt_tokens": 64,
}


def make_tiny_models(root: Path) -> tuple[Path, Path]:
    tok = tiny_tokenizer()
    save_model(tiny_causal_lm(tok, seed=0), tok, root / "policy", {"source": "tiny"})
    rtok = tiny_tokenizer(cls=True)
    save_model(tiny_reward_backbone(rtok, seed=1), rtok, root / "reward",
               {"input_format": "text", "max_length": 64})  # fmt: skip
    return root / "policy", root / "reward"


def write_params(path: Path, **sections: dict) -> Path:
    data = {"profile": "test", "tracking": {"enabled": False}, **sections}
    path.write_text(yaml.safe_dump(data))
    return path


def kill_after_checkpoint(cmd: list[str], env: dict, meta: Path, step: int = 3,
                          timeout: float = 240) -> dict:  # fmt: skip
    """Start a training stage, SIGKILL it once its checkpoint (``meta``) reaches ``step``,
    and return the checkpoint's meta as the kill left it (after ``Checkpointer.load``'s
    repair of a kill between a save's two renames, which the resumed run does too)."""
    import json
    import subprocess
    import time

    from superhf.io import restore_interrupted

    def saved_step() -> int:
        try:  # the folder is briefly absent while a save renames it into place
            return json.loads(meta.read_text())["step"]
        except (FileNotFoundError, ValueError):
            return -1

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and saved_step() < step:
        time.sleep(0.05)
    proc.kill()  # SIGKILL; harmless if it has just exited (checked below)
    assert proc.wait() == -9, f"the run ended (exit {proc.returncode}) before it was killed"
    restore_interrupted(meta.parent)
    return json.loads(meta.read_text())
