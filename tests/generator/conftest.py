"""Fixtures of the gateway tests: gateways over fake providers, and a real redis-server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import pytest

from instructforge.generator.gateway import Gateway
from instructforge.generator.metrics import GatewayMetrics


def openai_config(url: str, *, name: str = "m", cache: dict | None = None, retry: dict | None = None,
                  **deployment) -> dict:
    """A one-model, one-deployment gateway config over an OpenAI-compatible server."""
    dep = {"backend": "openai", "model": "gpt-fake", "base_url": url, **deployment}
    return {"models": [{"name": name, "deployments": [dep]}], "cache": cache or {"store": "memory"},
            "retry": {"base_delay_s": 0.005, "max_delay_s": 0.05, **(retry or {})}}


@pytest.fixture
async def make_gateway(tmp_path):
    """`gateway = await make_gateway(config)`; closed at the end of the test."""
    made: list[Gateway] = []

    async def make(config: dict, **kwargs) -> Gateway:
        kwargs.setdefault("state_dir", tmp_path / "state")
        kwargs.setdefault("metrics", GatewayMetrics())
        gateway = await Gateway.create(config, **kwargs)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.close()


def counter(metrics: GatewayMetrics, name: str, **labels) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


try:  # resolved before any fork, so the child only makes one system call
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even when it is killed (no orphaned server)."""
    if _prctl is not None:
        _prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server (Debian package `redis-server`) on a free loopback port, for the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server); the Redis store tests need it")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--protected-mode", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_die_with_parent)  # noqa: PLW1509 - one prctl call, nothing that locks
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"redis-server did not start: {proc.stderr.read().decode(errors='replace')[:500]}")
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


async def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll `predicate` until true or `timeout` passes; returns its last value."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.01)
    return True
