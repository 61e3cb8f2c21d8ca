"""Settings of the generator service (env prefix `IFORGE_GENERATOR_`).

The gateway's own configuration (`models`, `retry`, `cooldown`, `cache`) sits at the top level of the
service's YAML section, so a config file reads naturally:

    generator:
      models:
        - name: gpt-4o-mini
          deployments:
            - {backend: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY, max_concurrency: 256}
      cache: {store: redis, redis_url_env: IFORGE_REDIS_URL}
      http_port: 8080
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from instructforge.generator.config import (
    CacheConfig,
    CooldownConfig,
    GatewayConfig,
    ModelRoute,
    RetryConfig,
    check_routes,
)
from instructforge.runtime.settings import ServiceSettings


class GeneratorSettings(ServiceSettings):
    service_name: ClassVar[str] = "generator"
    default_port: ClassVar[int] = 50051
    default_metrics_port: ClassVar[int] = 9091

    model_config = SettingsConfigDict(env_prefix="IFORGE_GENERATOR_")

    models: list[ModelRoute] = Field(default_factory=list,
                                     description="logical models and their deployments (YAML, or JSON in the env)")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    http_port: int | None = Field(None, ge=0, le=65535,
                                  description="port of the OpenAI-compatible HTTP API; 0 picks a free one; unset: off")
    http_host: str | None = Field(None, description="address of the OpenAI-compatible HTTP API; default: host")
    stream_window: int = Field(1024, ge=1, le=100_000,
                               description="requests of one StreamGenerate call in flight at once (flow control)")
    default_timeout_s: float = Field(600.0, gt=0, description="deadline of a generation whose caller sets none")

    @field_validator("models", mode="after")
    @classmethod
    def _routes(cls, models: list[ModelRoute]) -> list[ModelRoute]:
        return check_routes(models)

    def gateway_config(self) -> GatewayConfig:
        return GatewayConfig(models=self.models, retry=self.retry, cooldown=self.cooldown, cache=self.cache)
