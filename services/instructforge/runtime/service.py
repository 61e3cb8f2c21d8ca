"""How a service plugs into the runtime: a `ServiceSpec` per service, found by name.

Each service package has a `service.py` defining `SPEC`. The runtime imports it only when that
service is started, so a process imports the heavy libraries of the services it hosts and no others.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from instructforge.runtime.errors import InvalidArgument
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.settings import ServiceSettings

# Start-up order of `iforge up`: services others may call come first.
SERVICE_NAMES = ("generator", "dedup", "verifier", "tagger", "trainer")
ALIASES = {"gateway": "generator"}


class Servicer(Protocol):
    """A generated `*Servicer` subclass; `start` and `close` are optional hooks."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # Fully-qualified gRPC service name, e.g. "instructforge.dedup.v1.DedupService".
    full_name: str
    settings_cls: type[ServiceSettings]
    # Builds the servicer from its settings; may do I/O (open stores, load indexes).
    create_servicer: Callable[[Any, Metrics], Awaitable[Any]]
    # The generated `add_<Name>Servicer_to_server`.
    add_to_server: Callable[[Any, Any], None]


def canonical_name(name: str) -> str:
    """Resolve aliases and reject unknown names with the list of valid ones."""
    name = ALIASES.get(name, name)
    if name not in SERVICE_NAMES:
        valid = ", ".join(SERVICE_NAMES + tuple(ALIASES))
        raise InvalidArgument(field="service", message=f"unknown service {name!r}; choose one of: {valid}")
    return name


def load_spec(name: str) -> ServiceSpec:
    """The ServiceSpec of a service, importing its package now."""
    module = importlib.import_module(f"instructforge.{canonical_name(name)}.service")
    return module.SPEC
