"""The peer: TRL 1.12's PPOTrainer on the benchmark's tiny models, timed per phase.

Run by ``benchmarks/run.py`` with the interpreter of a throwaway virtualenv that has
``trl==1.12.0`` (TRL is never a dependency of this project)::

    <venv>/bin/python benchmarks/peer_trl.py --models DIR --steps 4 --json out.json

``DIR`` holds what ``run.py`` wrote for both sides: ``policy/`` (causal LM + tokenizer),
``reward/`` (a sequence-classification model on the same tokenizer, also TRL's value-model
initialisation) and ``setup.json`` (prompts, batch, epochs, response length, lr).

Phases are timed by wrapping the functions TRL's loop calls (``batch_generation``,
``forward``, ``get_reward``, ``gc.collect``); ``update`` is the rest of each step: the PPO
epochs and TRL's bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    import trl
    import trl.experimental.ppo.ppo_trainer as pt
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    root = Path(args.models)
    setup = json.loads((root / "setup.json").read_text())
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(root / "policy")
    tok.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(root / "policy")
    ref = AutoModelForCausalLM.from_pretrained(root / "policy")
    reward = AutoModelForSequenceClassification.from_pretrained(root / "reward", num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(root / "reward", num_labels=1)
    B = setup["batch_size"]
    prompts = [setup["prompts"][i % len(setup["prompts"])] for i in range(B * args.steps)]
    ds = Dataset.from_dict(
        {"input_ids": [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]}
    )

    # --- phase timers around the functions TRL's train loop looks up at call time
    acc: dict[str, float] = defaultdict(float)

    def timed(fn, phase_of):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[phase_of(*a)] += time.perf_counter() - t0

        return wrapper

    pt.batch_generation = timed(pt.batch_generation, lambda *a: "rollout")
    pt.forward = timed(
        pt.forward, lambda *a: "update_forward" if torch.is_grad_enabled() else "ref_forward"
    )
    pt.get_reward = timed(
        pt.get_reward, lambda model, *a: "score" if model is reward else "value_forward"
    )
    # TRL calls gc.collect() twice per step (memory hygiene for large models): timed apart
    pt.gc.collect = timed(pt.gc.collect, lambda *a: "gc")
    steps: list[dict[str, float]] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.t = time.perf_counter()
            acc.clear()

        def on_step_end(self, *a, **k):
            now = time.perf_counter()
            row = {"step_s": now - self.t, **acc}
            row["update"] = row["step_s"] - sum(
                acc.get(p, 0.0) for p in ("rollout", "score", "ref_forward", "value_forward", "gc")
            )
            steps.append(row)
            acc.clear()
            self.t = now

    with tempfile.TemporaryDirectory() as out_dir:
        cfg = PPOConfig(
            output_dir=out_dir,
            per_device_train_batch_size=B,
            gradient_accumulation_steps=1,
            num_mini_batches=B // setup["minibatch_size"],
            num_ppo_epochs=setup["ppo_epochs"],
            local_rollout_forward_batch_size=B,
            total_episodes=B * args.steps,
            response_length=setup["new_tokens"],
            stop_token="eos",
            temperature=1.0,
            learning_rate=setup["lr"],
            num_sample_generations=0,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
            bf16=False,
            fp16=False,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
            seed=0,
        )
        trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=ref,
                             reward_model=reward, value_model=value, train_dataset=ds,
                             eval_dataset=ds, callbacks=[StepTimer()])  # fmt: skip
        trainer.train()
    rows = steps[1:] or steps  # the first step warms up
    keys = (
        "rollout",
        "score",
        "ref_forward",
        "value_forward",
        "update_forward",
        "update",
        "gc",
        "step_s",
    )
    med = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in keys}
    result = {"trl_version": trl.__version__, "steps": len(steps), **med,
              "ref_value_forward": med["ref_forward"] + med["value_forward"]}  # fmt: skip
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
