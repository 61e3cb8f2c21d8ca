"""Builds, runs and stops gRPC servers the same way for every service.

`build_server(spec, settings, metrics)` returns a started `RunningServer` (server, bound port,
health, servicer); `serve(...)` runs one or more of them until SIGTERM/SIGINT. Shutdown is
graceful: health flips to NOT_SERVING first (so load balancers and probes stop sending), then,
after `shutdown_delay_s`, new calls are refused and in-flight ones get `shutdown_grace_s` to finish.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from instructforge.runtime import collector
from instructforge.runtime.errors import FailedPrecondition, InvalidArgument
from instructforge.runtime.interceptor import RuntimeInterceptor
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.service import ServiceSpec
from instructforge.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class RunningServer:
    spec: ServiceSpec
    settings: ServiceSettings
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    servicer: Any
    health_watch: asyncio.Task | None = None

    @property
    def address(self) -> str:
        host = self.settings.host
        return f"[{host}]:{self.port}" if ":" in host and not host.startswith("[") else f"{host}:{self.port}"

    async def watch_health(self) -> None:
        """Mirror the servicer's own `is_healthy()` (e.g. the verifier's sandboxes) into gRPC health,
        so probes and load balancers stop sending work to a server that cannot do it."""
        current = SERVING
        while True:
            await asyncio.sleep(self.settings.health_check_interval_s)
            try:
                wanted = SERVING if self.servicer.is_healthy() else NOT_SERVING
            except Exception:
                log.exception("health check of %s failed", self.spec.name)
                wanted = NOT_SERVING
            if wanted != current:
                current = wanted
                log.warning("health changed", extra={"service": self.spec.name,
                                                     "status": health_pb2.HealthCheckResponse.ServingStatus.Name(wanted)})
                for name in ("", self.spec.full_name):
                    await self.health.set(name, wanted)

    async def stop(self) -> None:
        """NOT_SERVING first, then drain in-flight calls, then release the service's resources."""
        if self.health_watch is not None:
            self.health_watch.cancel()
        await self.health.enter_graceful_shutdown()
        if self.settings.shutdown_delay_s:
            await asyncio.sleep(self.settings.shutdown_delay_s)
        await self.server.stop(self.settings.shutdown_grace_s)
        close = getattr(self.servicer, "close", None)
        if close is not None:
            await close()
        log.info("service stopped", extra={"service": self.spec.name})


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS credentials from files; a client CA turns on mutual TLS."""
    tls = settings.tls
    if not tls.enabled:
        return None
    if tls.key_file is None:
        raise InvalidArgument(field="tls.key_file", message="is required when tls.cert_file is set")

    def read(path, field: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise InvalidArgument(field=field, message=f"cannot read {path}: {exc.strerror}") from None

    ca = read(tls.client_ca_file, "tls.client_ca_file") if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(read(tls.key_file, "tls.key_file"), read(tls.cert_file, "tls.cert_file"))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


async def build_server(spec: ServiceSpec, settings: ServiceSettings, metrics: Metrics) -> RunningServer:
    """Create the servicer, bind the port and start serving; health says SERVING once ready."""
    credentials = server_credentials(settings)
    servicer = await spec.create_servicer(settings, metrics)
    interceptor = RuntimeInterceptor(metrics, [t.get_secret_value() for t in settings.auth_tokens])
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Two servers must never share a port silently.
        ("grpc.so_reuseport", 0),
    ]
    if settings.max_connection_age_s is not None:
        age_ms = int(settings.max_connection_age_s * 1000)
        options += [("grpc.max_connection_age_ms", age_ms), ("grpc.max_connection_age_grace_ms", age_ms)]
    server = grpc.aio.server(interceptors=[interceptor], options=options)
    spec.add_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [spec.full_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    address = f"{settings.host}:{settings.port}"
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise FailedPrecondition(f"{spec.name}: cannot listen on {address} (in use, or not an address of this host)",
                                 reason="BIND_FAILED")
    await server.start()
    start = getattr(servicer, "start", None)
    if start is not None:
        await start()
    for name in ("", spec.full_name):
        await health_servicer.set(name, SERVING)
    log.info("service started", extra={"service": spec.name, "port": port, "tls": credentials is not None,
                                       "auth": bool(settings.auth_tokens)})
    running = RunningServer(spec, settings, server, port, health_servicer, servicer)
    if callable(getattr(servicer, "is_healthy", None)):
        running.health_watch = asyncio.create_task(running.watch_health())
    return running


def _install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


@asynccontextmanager
async def hosted(
    specs_and_settings: Sequence[tuple[ServiceSpec, ServiceSettings]],
    metrics: Metrics,
    *,
    metrics_address: tuple[str, int] | None = None,
) -> AsyncIterator[tuple[list[RunningServer], int | None]]:
    """Run services (and the metrics endpoint) for the length of the block; stop them gracefully after."""
    running: list[RunningServer] = []
    metrics_port = None
    try:
        if metrics_address is not None:
            metrics_port = metrics.serve_http(*metrics_address)
        for spec, settings in specs_and_settings:
            running.append(await build_server(spec, settings, metrics))
        collector.settle()  # start-up is done: from here on the process serves calls
        yield running, metrics_port
    finally:
        await asyncio.gather(*(r.stop() for r in running), return_exceptions=True)
        metrics.close()


async def serve(
    specs_and_settings: Sequence[tuple[ServiceSpec, ServiceSettings]],
    metrics: Metrics,
    *,
    metrics_address: tuple[str, int] | None,
    on_ready: Callable[[list[RunningServer], int | None], Any] | None = None,
) -> None:
    """Run the given services in this process until SIGTERM or SIGINT, then stop them gracefully."""
    stop = asyncio.Event()
    _install_stop_signals(stop)
    async with hosted(specs_and_settings, metrics, metrics_address=metrics_address) as (running, metrics_port):
        if on_ready is not None:
            result = on_ready(running, metrics_port)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        log.info("stop signal received; draining")
