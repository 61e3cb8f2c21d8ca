"""Settings of the verifier service (env prefix `IFORGE_VERIFIER_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from instructforge.runtime.settings import ServiceSettings


class VerifierSettings(ServiceSettings):
    service_name: ClassVar[str] = "verifier"
    default_port: ClassVar[int] = 50053
    default_metrics_port: ClassVar[int] = 9093

    model_config = SettingsConfigDict(env_prefix="IFORGE_VERIFIER_")
