"""Typed params sections, one module per DVC stage section (``params.yaml`` has one section
for each): ``prepare``, ``base_policy``, ``reward_model``, ``superhf``, ``rlhf``, ``group_pg``
(``rloo`` and ``grpo``), ``evaluate`` and ``tracking``; ``common`` holds the pieces several
sections share (sampling, optimiser, LoRA) and ``sections`` maps every section name to its
class.

Every field carries its meaning in ``description``; constraints (``ge``, ``gt``, ``le``,
``Literal``) are checked when the section is loaded, before any model is touched.

This file imports nothing, so a stage that imports its own section's module does not load
(or, in dvc.yaml, depend on) the other sections' modules.
"""
