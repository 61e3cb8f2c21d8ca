"""A run's embedded services: `iforge up` in a child process per service, each started, serving the run,
stopping with it, and dying with it when the run is killed."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from layout_openai import LayoutOpenAI

from instructforge.pipeline.protocols import GenerationRequest
from instructforge.pipeline.recipe import load_recipe
from instructforge.pipeline.session import gateway_backlog, open_session
from instructforge.runtime import collector
from instructforge.runtime.errors import Unavailable

RECIPE = """recipe: explore_instruct
name: session
concurrency: 7
domain: {preset: custom, name: Packing lists, description: Lists for trips.}
"""
SECRET = "sk-embedded-secret-4d1f"


def _env(fake: LayoutOpenAI, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "IFORGE"))}
    env.update(IFORGE_LLM_BASE_URL=fake.url, IFORGE_LLM_MODEL="gpt-fake", HF_HUB_OFFLINE="1", **extra)
    return env


def _listener(address: str) -> int | None:
    """The pid of the process listening on a loopback `host:port`, from /proc."""
    port = int(address.rpartition(":")[2])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    return None


def _gone(pid: int) -> bool:
    """Exited (a zombie counts: it runs nothing and holds no port)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _recipe(tmp_path: Path):
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return load_recipe(tmp_path / "recipe.yaml")


async def test_each_service_runs_in_a_child_process_of_its_own_serves_the_run_and_stops_with_it(tmp_path, monkeypatch):
    run = tmp_path / "run"
    started: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def spawn_and_keep(*args, **kwargs):
        started.append(await spawn(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawn_and_keep)
    async with LayoutOpenAI() as fake:
        # A deployment's TLS and tokens in the environment are not the run's private services' business.
        env = _env(fake, IFORGE_LLM_API_KEY=SECRET, IFORGE_TLS__CERT_FILE=str(tmp_path / "missing.pem"),
                   IFORGE_AUTH_TOKENS="deployment-token")
        thresholds = gc.get_threshold()
        gc.set_threshold(700, 10, 10)  # CPython's default
        async with open_session(_recipe(tmp_path), run, env) as session:
            # the run's start-up is done: collector passes are spaced out (runtime/collector.py)
            assert gc.get_threshold()[0] == collector.YOUNG and gc.get_freeze_count() > 0
            gc.unfreeze()
            gc.set_threshold(*thresholds)  # the test process's own, for the tests after this one
            assert session.embedded == ("generator", "dedup")
            assert session.backlog == 7 // 8  # an eighth of the recipe's concurrency of 7: none
            owners = {name: _listener(address) for name, address in session.endpoints.items()}
            children = [owners["generator"], owners["dedup"]]
            # Two processes: the gateway's event loop never waits on dedup's interpreter lock.
            assert None not in children and os.getpid() not in children and children[0] != children[1]
            assert all(_parent(child) == os.getpid() for child in children)
            completion = await session.generator.generate(GenerationRequest(
                model=session.llm.model, prompt="Say hello.", idempotency_key="session-test/0"))
            assert completion.texts and len(fake.log.calls) == 1
            assert fake.log.calls[0].headers.get("authorization") == f"Bearer {SECRET}"
        assert all(map(_gone, children))
    # drained on SIGTERM, not killed
    assert [p.pid for p in started] == children and [p.returncode for p in started] == [0, 0]
    config = (run / "services" / "embedded.yaml").read_text()
    assert "max_concurrency: 7" in config and "stream_window: 1024" in config and fake.url in config
    assert "api_key_env: IFORGE_LLM_API_KEY" in config and SECRET not in config  # a name, never the key


async def test_the_runs_own_gateway_keeps_each_answer_once_under_its_idempotency_key(tmp_path):
    # Its cache lives in the run folder, where no other run looks, and every call of a run has a seed
    # of its own: an answer stored by content could never be served. What a resume replays is kept.
    async with LayoutOpenAI() as fake, open_session(_recipe(tmp_path), tmp_path / "run", _env(fake)) as session:
        request = GenerationRequest(model=session.llm.model, prompt="Say hello.", idempotency_key="run/0")
        first = await session.generator.generate(request)
        again = await session.generator.generate(request)  # a resumed run asking again
        assert again.texts == first.texts and again.cache_hit and len(fake.log.calls) == 1
        cache = tmp_path / "run" / "services" / "generator" / "cache.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{cache}?mode=ro", uri=True)) as db:
            keys = [key for (key,) in db.execute("SELECT key FROM entries")]
        assert len(keys) == 1 and keys[0].startswith("i:")  # the idempotency record alone


async def test_a_service_that_cannot_start_fails_the_session_with_its_log(tmp_path):
    async with LayoutOpenAI() as fake:
        env = _env(fake, IFORGE_DEDUP_SHUTDOWN_GRACE_S="-1")
        with pytest.raises(Unavailable) as failed:
            async with open_session(_recipe(tmp_path), tmp_path / "run", env):
                raise AssertionError("the session opened")
    message = failed.value.message
    assert "exited with code" in message and "shutdown_grace_s" in message
    # The end of dedup's own log: no other service's lines can push its error out of the message.
    services = tmp_path / "run" / "services"
    assert f"from {services / 'dedup.log'}:" in message
    assert "shutdown_grace_s" in (services / "dedup.log").read_text()
    assert "shutdown_grace_s" not in (services / "generator.log").read_text()


RUN_UNTIL_KILLED = """
import asyncio, json, sys
from pathlib import Path
from instructforge.pipeline.recipe import load_recipe
from instructforge.pipeline.session import open_session

async def main():
    async with open_session(load_recipe(sys.argv[1]), Path(sys.argv[2])) as session:
        print(json.dumps(session.endpoints), flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_the_services_die_with_a_run_killed_by_sigkill(tmp_path):
    recipe = _recipe(tmp_path)
    assert recipe.name == "session"
    async with LayoutOpenAI() as fake:
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUN_UNTIL_KILLED, str(tmp_path / "recipe.yaml"), str(tmp_path / "run"),
            env=_env(fake), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            line = await asyncio.wait_for(run.stdout.readline(), 120)
            endpoints = json.loads(line)
            children = [_listener(endpoints[name]) for name in ("generator", "dedup")]
            assert None not in children and not any(map(_gone, children))
            assert all(_parent(child) == run.pid for child in children)
        finally:
            run.send_signal(signal.SIGKILL)
            await run.wait()
    deadline = time.monotonic() + 30
    while not all(map(_gone, children)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert all(map(_gone, children)), "the embedded services outlived the run"


def test_the_gateway_backlog_is_an_eighth_of_the_concurrency_with_the_runs_own_gateway_and_none_with_another():
    recipe = _recipe_with(concurrency=64)
    assert gateway_backlog(recipe, embedded_gateway=True) == 8
    assert gateway_backlog(recipe, embedded_gateway=False) == 0  # its limits are not ours to know
    explicit = _recipe_with(concurrency=64, gateway_backlog=5)
    assert gateway_backlog(explicit, embedded_gateway=True) == gateway_backlog(explicit, embedded_gateway=False) == 5


def _recipe_with(**keys):
    from instructforge.pipeline.recipe import parse_recipe

    return parse_recipe({"recipe": "explore_instruct", "name": "backlog", **keys})


def test_the_embedded_gateways_stream_lets_in_the_concurrency_and_the_backlog():
    from instructforge.pipeline.llm import LlmChoice
    from instructforge.pipeline.session import services_config

    llm = LlmChoice(model="m", description="test", route={"name": "m", "deployments": [
        {"backend": "openai", "model": "x", "base_url": "http://127.0.0.1:9/v1"}]})
    config = services_config(_recipe_with(concurrency=3000), llm)["generator"]
    assert config["stream_window"] == 3000 + 375 and config["models"][0]["deployments"][0]["max_concurrency"] == 3000
    assert "warm_connections" not in config["models"][0]["deployments"][0]  # the SDK's pool is its own


def test_the_embedded_gateways_direct_client_opens_the_runs_connections_ahead():
    from instructforge.generator.config import parse_gateway_config
    from instructforge.pipeline.llm import select_llm
    from instructforge.pipeline.session import services_config

    llm = select_llm(None, {"IFORGE_LLM_BASE_URL": "http://127.0.0.1:9/v1", "IFORGE_LLM_MODEL": "x"},
                     gateway_is_remote=False)
    config = services_config(_recipe_with(concurrency=300), llm)["generator"]
    deployment = parse_gateway_config({"models": config["models"]}).models[0].deployments[0]
    assert (deployment.http_client, deployment.max_concurrency, deployment.warm_connections) == ("direct", 300, 300)
