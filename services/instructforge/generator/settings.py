"""Settings of the generator service (env prefix `IFORGE_GENERATOR_`)."""

from __future__ import annotations

from typing import ClassVar

from instructforge.runtime.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class GeneratorSettings(ServiceSettings):
    service_name: ClassVar[str] = "generator"
    default_port: ClassVar[int] = 50051
    default_metrics_port: ClassVar[int] = 9091

    model_config = SettingsConfigDict(env_prefix="IFORGE_GENERATOR_")
