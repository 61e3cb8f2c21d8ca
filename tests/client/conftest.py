"""Servers for the client tests: all real gRPC servers on loopback, port 0."""

from __future__ import annotations

import importlib

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from instructforge.client import CLIENTS
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.placeholder import placeholder_spec
from instructforge.runtime.server import build_server
from instructforge.runtime.service import ServiceSpec
from instructforge.runtime.settings import ServiceSettings, load_settings

from .client_servers import Pki, make_pki


@pytest.fixture
async def serve_health():
    """`port = await serve_health(ScriptedHealth(...))`: a bare grpc.aio server with only that servicer."""
    servers = []

    async def start(servicer: health.aio.HealthServicer) -> int:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        await server.stop(None)


@pytest.fixture
async def serve_runtime(tmp_path):
    """`running = await serve_runtime("dedup", servicer=None, **settings)`: the real server runtime
    (auth, validation, error mapping, TLS) hosting `servicer`, or the runtime's not-implemented
    placeholder for the service when None, whatever state the real service is in."""
    started = []

    async def start(name: str, servicer=None, **overrides):
        service = CLIENTS[name].service
        grpc_module = importlib.import_module(f"instructforge.{name}.v1.{name}_pb2_grpc")
        if servicer is None:
            spec = placeholder_spec(name, ServiceSettings, grpc_module, service.name)
        else:

            async def create(settings, metrics):
                return servicer

            spec = ServiceSpec(
                name,
                service.full_name,
                ServiceSettings,
                create,
                getattr(grpc_module, f"add_{service.name}Servicer_to_server"),
            )
        values = {"port": 0, "host": "127.0.0.1", "metrics_enabled": False, "state_dir": tmp_path / "state"}
        settings = load_settings(ServiceSettings, overrides={**values, **overrides})
        running = await build_server(spec, settings, Metrics())
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        await running.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
