"""Typed settings every service shares, and how they are loaded.

Each service subclasses `ServiceSettings` with its own env prefix (`IFORGE_DEDUP_`, …) and fields.
Sources, strongest first:

1. explicit overrides (the CLI's flags),
2. the service's environment variables (`IFORGE_DEDUP_PORT`, nested with `__`: `IFORGE_DEDUP_TLS__CERT_FILE`),
3. shared environment variables for the fields every service of one deployment has in common
   (`IFORGE_AUTH_TOKENS`, `IFORGE_LOG_LEVEL`, …; see `SHARED_FIELDS`),
4. secret files in a mounted directory, one per field, named after the field (`auth_tokens`),
5. the YAML config file: the section named after the service, over its `defaults` section,
6. the defaults declared here (pinned by a test; never restated elsewhere).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from instructforge.runtime.errors import InvalidArgument

# Fields one deployment usually sets once for every service (e.g. `IFORGE_AUTH_TOKENS`).
SHARED_FIELDS = frozenset({"host", "auth_tokens", "tls", "log_level", "log_format", "max_message_bytes"})

S = TypeVar("S", bound="ServiceSettings")

_loading: ContextVar[dict[str, Any] | None] = ContextVar("_loading", default=None)


class TLSSettings(BaseModel):
    """Server-side TLS. With `client_ca_file`, clients must present a certificate it signed (mTLS)."""

    model_config = {"extra": "forbid"}

    cert_file: Path | None = Field(None, description="PEM certificate chain of the server")
    key_file: Path | None = Field(None, description="PEM private key of the server")
    client_ca_file: Path | None = Field(None, description="PEM CA bundle; when set, client certificates are required")

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class ServiceSettings(BaseSettings):
    """What every InstructForge server needs to start, whatever the service."""

    service_name: ClassVar[str] = ""
    default_port: ClassVar[int] = 50051
    default_metrics_port: ClassVar[int] = 9090

    model_config = SettingsConfigDict(
        env_prefix="IFORGE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 or [::] in a container")
    port: int = Field(-1, ge=-1, le=65535, description="gRPC port; 0 picks a free one, -1 the service default")
    metrics_host: str | None = Field(None, description="address of the metrics endpoint; default: host")
    metrics_port: int | None = Field(
        -1, ge=-1, le=65535, description="Prometheus /metrics port; 0 picks a free one, -1 the service default"
    )
    metrics_enabled: bool = Field(True, description="serve Prometheus metrics over HTTP")
    state_dir: Path = Field(Path(".iforge"), description="folder for the service's durable state")
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="bearer tokens accepted (comma-separated); empty means no authentication",
    )
    tls: TLSSettings = Field(default_factory=TLSSettings)
    max_message_bytes: int = Field(64 * 1024 * 1024, gt=0, description="largest request or response accepted")
    max_connection_age_s: float | None = Field(
        None, gt=0, description="close client connections after this long so round-robin clients re-resolve "
        "a headless Service and find new pods; unset keeps connections"
    )
    health_check_interval_s: float = Field(
        5.0, gt=0, description="how often a service's own health check (if it has one) updates gRPC health"
    )
    shutdown_delay_s: float = Field(
        0.0, ge=0, description="time between reporting NOT_SERVING and refusing new calls, for load balancers"
    )
    shutdown_grace_s: float = Field(10.0, ge=0, description="time in-flight calls get to finish on shutdown")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    log_format: Literal["json", "text"] = Field("json", description="log line format")

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.replace("\n", ",").split(",") if t.strip()]
        return value

    @field_validator("port", mode="after")
    @classmethod
    def _default_port(cls, value: int) -> int:
        return cls.default_port if value == -1 else value

    @field_validator("metrics_port", mode="after")
    @classmethod
    def _default_metrics_port(cls, value: int | None) -> int | None:
        return cls.default_metrics_port if value == -1 else value

    @property
    def service_state_dir(self) -> Path:
        """This service's own folder under `state_dir`."""
        return self.state_dir / self.service_name if self.service_name else self.state_dir

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        loading = _loading.get() or {}
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("env_prefix") != "IFORGE_":
            sources.append(_SharedEnvSource(settings_cls))
        if loading.get("secrets_dir"):
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=loading["secrets_dir"], env_prefix=""))
        sources.append(_DictSource(settings_cls, loading.get("file_values", {})))
        return tuple(sources)


class _SharedEnvSource(EnvSettingsSource):
    """`IFORGE_<FIELD>` for the fields in SHARED_FIELDS, below the service's own prefix."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls, env_prefix="IFORGE_", env_nested_delimiter="__")

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in super().__call__().items() if k in SHARED_FIELDS}


class _DictSource(PydanticBaseSettingsSource):
    """Values already read from the YAML file."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]):
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def read_config_file(path: Path | str | None, service_name: str) -> dict[str, Any]:
    """The service's section of a YAML config file merged over its `defaults` section."""
    if path is None:
        return {}
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise InvalidArgument(field="config", message=f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(field="config", message=f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArgument(field="config", message=f"config file {path} must hold a mapping of sections")
    merged: dict[str, Any] = {}
    for section in ("defaults", service_name):
        values = document.get(section) or {}
        if not isinstance(values, dict):
            raise InvalidArgument(field=f"config.{section}", message="must be a mapping of setting names to values")
        merged.update(values)
    return merged


def load_settings(
    settings_cls: type[S],
    *,
    config_file: Path | str | None = None,
    secrets_dir: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
) -> S:
    """Build a service's settings from every source; bad values raise InvalidArgument naming the setting."""
    from pydantic import ValidationError

    config_file = config_file or os.environ.get("IFORGE_CONFIG_FILE")
    secrets_dir = secrets_dir or os.environ.get("IFORGE_SECRETS_DIR")
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise InvalidArgument(field="secrets_dir", message=f"{secrets_dir} is not a directory")
    token = _loading.set(
        {"file_values": read_config_file(config_file, settings_cls.service_name), "secrets_dir": secrets_dir}
    )
    try:
        return settings_cls(**{k: v for k, v in (overrides or {}).items() if v is not None})
    except ValidationError as exc:
        from instructforge.runtime.errors import FieldViolation

        violations = [
            FieldViolation(".".join(str(p) for p in error["loc"]) or "settings", error["msg"])
            for error in exc.errors()
        ]
        raise InvalidArgument(violations=violations, reason="INVALID_SETTINGS") from None
    finally:
        _loading.reset(token)
