"""Capability and alignment benchmarks of the paper's Table 4, scored in-house by
log-likelihood following the lm-evaluation-harness protocols (0-shot unless a param says).
(Speed measurements live in the top-level ``benchmarks/`` folder; this is what a model can do.)

Each task has a loader (a directory laid out like ``../shared/data/eval``: our fixtures by
default, a local copy of the real files, or hub datasets) and a scorer. The rooms, read in
this order:

- ``columns``: Table 4's columns and where each value sits in a result (no model code).
- ``loaders``: the standard tasks' rows from a local folder or the hub.
- ``scoring``: the log-likelihood core every standard task goes through.
- ``tasks``: the standard tasks (HHH, LAMBADA, WSC273, tweets, SQuAD) and ``run_all``.
- ``paper``: what the paper's script measured for Table 4 (its data, prompts and quirks).
- ``harness``: named lm-evaluation-harness tasks through lm-eval's own API.
- ``suite``: what ``evaluate.benchmarks`` asks for: load it, run it on one model.
"""
