"""Embedded mode: every service in one process on loopback, what `iforge up` runs.

Each service keeps its own gRPC server and port (so callers address them exactly as in a cluster);
they share one event loop, one metrics registry and port, and one state folder. Once every service
answers a real health check over the network, one line per service is printed, then a ready line.
`iforge run` embeds the services it has no address for by running `iforge up` as a child process
and reading those lines (`instructforge.pipeline.session`), so they get a core of their own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from instructforge.runtime.errors import Unavailable
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.server import RunningServer, serve
from instructforge.runtime.service import SERVICE_NAMES, load_spec
from instructforge.runtime.settings import ServiceSettings, load_settings


def embedded_settings(
    names: tuple[str, ...],
    *,
    base_port: int | None,
    overrides: dict[str, Any],
    config_file: str | Path | None,
    secrets_dir: str | Path | None,
) -> list[tuple[Any, ServiceSettings]]:
    """Settings of each hosted service: the shared overrides, and consecutive ports from `base_port`
    (0: free ones)."""
    planned = []
    for offset, name in enumerate(names):
        spec = load_spec(name)
        service_overrides = dict(overrides, metrics_enabled=False)
        if base_port is not None:
            service_overrides["port"] = 0 if base_port == 0 else base_port + offset
        settings = load_settings(spec.settings_cls, config_file=config_file, secrets_dir=secrets_dir,
                                 overrides=service_overrides)
        planned.append((spec, settings))
    return planned


async def check_healthy(running: RunningServer, timeout_s: float = 10.0) -> None:
    """A real Health/Check over the network; raises Unavailable when the service does not answer SERVING."""
    settings = running.settings
    target = f"{'127.0.0.1' if settings.host in ('0.0.0.0', '::', '[::]') else settings.host}:{running.port}"
    if settings.tls.enabled:
        return  # A loopback check would need a client certificate; the server reported SERVING itself.
    metadata = ()
    if settings.auth_tokens:
        metadata = (("authorization", f"Bearer {settings.auth_tokens[0].get_secret_value()}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=running.spec.full_name), timeout=timeout_s, metadata=metadata
        )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise Unavailable(f"{running.spec.name} reports {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")


async def run_embedded(
    names: tuple[str, ...] = SERVICE_NAMES,
    *,
    base_port: int | None = None,
    metrics_port: int | None = None,
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    secrets_dir: str | Path | None = None,
    out: TextIO = sys.stdout,
) -> None:
    """Host the services until SIGTERM/SIGINT; print their addresses once all are healthy."""
    overrides = dict(overrides or {})
    planned = embedded_settings(names, base_port=base_port, overrides=overrides, config_file=config_file,
                                secrets_dir=secrets_dir)
    first = planned[0][1]
    metrics_address = None
    if overrides.get("metrics_enabled", True):
        port = ServiceSettings.default_metrics_port if metrics_port is None else metrics_port
        metrics_address = (first.metrics_host or first.host, port)
    width = max(len(name) for name in names) + 2

    async def announce(running: list[RunningServer], bound_metrics_port: int | None) -> None:
        for server in running:
            await check_healthy(server)
        for server in running:
            out.write(f"{server.spec.name:<{width}}{server.address}\n")
        if bound_metrics_port is not None:
            out.write(f"{'metrics':<{width}}http://{metrics_address[0]}:{bound_metrics_port}/metrics\n")
        out.write(f"{'ready':<{width}}{len(running)} services healthy; state in {first.state_dir}\n")
        out.flush()

    await serve(planned, Metrics.for_endpoint(metrics_address), metrics_address=metrics_address, on_ready=announce)
