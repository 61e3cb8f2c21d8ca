"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import socket

import pytest

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def free_port() -> int:
    """A TCP port that was free on loopback a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def start_service(tmp_path):
    """Start services in-process on free loopback ports: `running = await start_service("dedup", **overrides)`."""
    from instructforge.runtime.metrics import Metrics
    from instructforge.runtime.server import build_server
    from instructforge.runtime.service import load_spec
    from instructforge.runtime.settings import load_settings

    started = []

    async def start(name: str, metrics: Metrics | None = None, **overrides):
        spec = load_spec(name)
        values = {"port": 0, "state_dir": tmp_path / "state", "metrics_enabled": False, "host": "127.0.0.1"}
        values.update(overrides)
        settings = load_settings(spec.settings_cls, overrides=values)
        running = await build_server(spec, settings, metrics or Metrics())
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        await running.stop()
