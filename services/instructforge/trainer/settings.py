"""Settings of the trainer service (env prefix `IFORGE_TRAINER_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from instructforge.runtime.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    service_name: ClassVar[str] = "trainer"
    default_port: ClassVar[int] = 50055
    default_metrics_port: ClassVar[int] = 9095

    model_config = SettingsConfigDict(env_prefix="IFORGE_TRAINER_")
