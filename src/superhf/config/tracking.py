"""The ``tracking`` section: where the stages log their MLflow runs."""

from __future__ import annotations

from pydantic import Field

from superhf.params import Section


class TrackingConfig(Section):
    enabled: bool = Field(True, description="log runs to MLflow")
    uri: str | None = Field(None, description="MLflow tracking URI; default sqlite in the repo")
    experiment: str = Field("superhf", description="MLflow experiment name")
