"""Settings of the tagger service (env prefix `IFORGE_TAGGER_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from instructforge.runtime.settings import ServiceSettings


class TaggerSettings(ServiceSettings):
    service_name: ClassVar[str] = "tagger"
    default_port: ClassVar[int] = 50054
    default_metrics_port: ClassVar[int] = 9094

    model_config = SettingsConfigDict(env_prefix="IFORGE_TAGGER_")
