"""The gateway's configuration: logical models, their deployments, retries, cooldown and cache.

Typed with pydantic so the same classes validate a YAML file, environment variables (through the
service settings) and tests, and every mistake names its field. Validated once at start-up, never
per request. API keys are never part of the config: a deployment names the environment variable
or the mounted secret file that holds its key, and the key is read when the backend is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from instructforge.generator.request import Sampling
from instructforge.runtime.errors import FailedPrecondition, FieldViolation, InvalidArgument

BACKENDS = ("openai", "anthropic", "tgi", "vllm", "transformers")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingDefaults(_Strict):
    """A deployment's defaults for the sampling parameters a request leaves unset."""

    temperature: float | None = Field(None, ge=0, le=10)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, gt=0, le=1 << 20)
    stop: tuple[str, ...] = Field((), max_length=16)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    repetition_penalty: float | None = Field(None, gt=0)
    logit_bias: dict[str, float] = Field(default_factory=dict)

    def to_sampling(self) -> Sampling:
        return Sampling(**{name: getattr(self, name) for name in Sampling.__dataclass_fields__})


# Deployment fields that do not change what the model answers; every other field is part of the
# deployment's identity in the cache key (a new field is in it unless listed here).
NON_IDENTITY_FIELDS = frozenset({
    "name", "weight", "max_concurrency", "min_concurrency", "adaptive_concurrency", "requests_per_minute",
    "tokens_per_minute", "rate_limit_burst_s", "input_cost_per_million_tokens_usd",
    "output_cost_per_million_tokens_usd", "timeout_s", "api_key_env", "api_key_file", "defaults", "stream", "http_client",
    "warm_connections",
})


class DeploymentConfig(_Strict):
    """One place a logical model can be served: a backend, a provider model and its limits and prices."""

    name: str = Field("", max_length=256, description="unique name; default: <model route>-<index>")
    backend: Literal["openai", "anthropic", "tgi", "vllm", "transformers"]
    model: str = Field(..., min_length=1, description="the provider's model name, or a local model path")
    base_url: str | None = Field(None, description="API base URL (openai, anthropic, tgi)")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    api_key_file: Path | None = Field(None, description="file holding the API key (a mounted secret)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers sent to the provider")
    weight: float = Field(1.0, gt=0, description="share of traffic under weighted routing")
    max_concurrency: int = Field(64, ge=1, le=100_000, description="most calls in flight at once")
    min_concurrency: int = Field(1, ge=1, description="floor of the adaptive concurrency limit")
    adaptive_concurrency: bool = Field(True, description="halve the limit on 429/503, grow it back on success")
    requests_per_minute: int | None = Field(None, gt=0, description="RPM limit (token bucket)")
    tokens_per_minute: int | None = Field(None, gt=0, description="TPM limit (token bucket, estimated up front)")
    rate_limit_burst_s: float = Field(10.0, gt=0, description="seconds of RPM/TPM that may be spent at once")
    input_cost_per_million_tokens_usd: float = Field(0.0, ge=0)
    output_cost_per_million_tokens_usd: float = Field(0.0, ge=0)
    timeout_s: float = Field(600.0, gt=0, description="limit of one attempt (the caller's deadline bounds all)")
    stream: bool = Field(False, description="read the provider's answer as a stream (openai, anthropic)")
    http_client: Literal["sdk", "direct"] = Field(
        "sdk", description="openai: the official SDK, or the lean direct client for whole answers from local "
        "servers at thousands of calls/s (about 0.1 ms of CPU per call instead of 0.5 ms)")
    warm_connections: int = Field(
        0, ge=0, le=100_000, description="http_client direct: connections opened in the background at the "
        "deployment's first call, so that a later burst of calls does not pay for its connections (a TCP and, "
        "for https, a TLS set-up each) while its first calls wait; at most max_concurrency")
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens", description="openai: the name of the output limit parameter the server expects")
    defaults: SamplingDefaults = Field(default_factory=SamplingDefaults)
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="backend-specific: transformers/vllm engine and batching options")

    @model_validator(mode="after")
    def _backend_needs(self) -> DeploymentConfig:
        if self.backend == "tgi" and not self.base_url:
            raise ValueError("base_url is required for the tgi backend")
        if self.http_client == "direct" and self.backend != "openai":
            raise ValueError("http_client: direct is for the openai backend only")
        if self.http_client == "direct" and self.stream:
            raise ValueError("http_client: direct reads whole answers; use stream: false, or http_client: sdk to stream")
        if self.warm_connections and self.http_client != "direct":
            raise ValueError("warm_connections is for http_client: direct")
        if self.warm_connections > self.max_concurrency:
            raise ValueError("warm_connections must not exceed max_concurrency")
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("set api_key_env or api_key_file, not both")
        if self.min_concurrency > self.max_concurrency:
            raise ValueError("min_concurrency must not exceed max_concurrency")
        return self

    def identity(self) -> dict[str, Any]:
        """What makes two deployments answer alike: part of every cache key."""
        return self.model_dump(mode="json", exclude=set(NON_IDENTITY_FIELDS))

    def read_api_key(self) -> str | None:
        """The key from the named env var or secret file; never logged, never returned to callers."""
        if self.api_key_env is not None:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise FailedPrecondition(
                    f"deployment {self.name!r}: environment variable {self.api_key_env} is not set",
                    reason="MISSING_API_KEY")
            return value.strip()
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text().strip()
            except OSError as exc:
                raise FailedPrecondition(
                    f"deployment {self.name!r}: cannot read api_key_file {self.api_key_file}: {exc.strerror}",
                    reason="MISSING_API_KEY") from None
        return None


class ModelRoute(_Strict):
    """A logical model name callers use, the deployments serving it and where to go when they all fail."""

    name: str = Field(..., min_length=1, max_length=256)
    deployments: list[DeploymentConfig] = Field(..., min_length=1)
    strategy: Literal["weighted", "least_busy"] = Field("weighted", description="how a deployment is chosen")
    fallbacks: list[str] = Field(default_factory=list, description="logical models tried next, in order")


class RetryConfig(_Strict):
    max_attempts: int = Field(6, ge=1, le=100, description="attempts per logical model, the first included")
    base_delay_s: float = Field(0.1, ge=0, description="cap of the first backoff; doubles per retry")
    max_delay_s: float = Field(20.0, ge=0, description="largest backoff cap")
    multiplier: float = Field(2.0, ge=1)
    max_retry_after_s: float = Field(60.0, ge=0, description="a longer Retry-After fails the call at once")


class CooldownConfig(_Strict):
    failures: int = Field(5, ge=1, description="consecutive retryable failures that bench a deployment")
    seconds: float = Field(30.0, ge=0, description="how long a benched deployment is avoided")


class CacheConfig(_Strict):
    store: Literal["sqlite", "redis", "memory", "none"] = Field("sqlite", description="where answers are kept")
    path: Path | None = Field(None, description="sqlite file; default <state dir>/generator/cache.sqlite3")
    redis_url: str | None = Field(None, description="redis://host:port/db for a cluster of gateways")
    redis_url_env: str | None = Field(None, description="environment variable holding the Redis URL")
    ttl_s: float | None = Field(None, gt=0, description="answers older than this are not served; None: forever")
    key_prefix: str = Field("iforge:gen:", description="namespace of the keys in a shared Redis")

    @model_validator(mode="after")
    def _redis_needs_url(self) -> CacheConfig:
        if self.store == "redis" and not (self.redis_url or self.redis_url_env):
            raise ValueError("store 'redis' needs redis_url or redis_url_env")
        return self


class GatewayConfig(_Strict):
    models: list[ModelRoute] = Field(default_factory=list)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @field_validator("models", mode="after")
    @classmethod
    def _names(cls, models: list[ModelRoute]) -> list[ModelRoute]:
        return check_routes(models)


def check_routes(models: list[ModelRoute]) -> list[ModelRoute]:
    """Unique model and deployment names (unnamed deployments become `<model>-<index>`), known fallbacks."""
    routes: list[ModelRoute] = []
    seen_models: set[str] = set()
    seen_deployments: set[str] = set()
    for route in models:
        if route.name in seen_models:
            raise ValueError(f"model {route.name!r} is defined twice")
        seen_models.add(route.name)
        named = []
        for i, d in enumerate(route.deployments):
            if not d.name:
                d = d.model_copy(update={"name": f"{route.name}-{i}"})
            if d.name in seen_deployments:
                raise ValueError(f"deployment name {d.name!r} is used twice")
            seen_deployments.add(d.name)
            named.append(d)
        routes.append(route.model_copy(update={"deployments": named}))
    for route in routes:
        for fb in route.fallbacks:
            if fb == route.name:
                raise ValueError(f"model {route.name!r} lists itself as a fallback")
            if fb not in seen_models:
                raise ValueError(f"model {route.name!r} falls back to unknown model {fb!r}")
    return routes


def parse_gateway_config(data: dict[str, Any] | GatewayConfig) -> GatewayConfig:
    """Validate a config mapping; errors become InvalidArgument with the path of each bad field."""
    if isinstance(data, GatewayConfig):
        return data
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        violations = [FieldViolation(".".join(str(p) for p in e["loc"]) or "gateway", e["msg"]) for e in exc.errors()]
        raise InvalidArgument(violations=violations, reason="INVALID_GATEWAY_CONFIG") from None
