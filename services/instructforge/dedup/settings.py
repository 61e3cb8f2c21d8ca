"""Settings of the dedup service (env prefix `IFORGE_DEDUP_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from instructforge.runtime.settings import ServiceSettings


class DedupSettings(ServiceSettings):
    service_name: ClassVar[str] = "dedup"
    default_port: ClassVar[int] = 50052
    default_metrics_port: ClassVar[int] = 9092

    model_config = SettingsConfigDict(env_prefix="IFORGE_DEDUP_")
