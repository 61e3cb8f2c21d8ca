"""Connects a run to its services: the user's, where addresses are given, else embedded ones.

An address comes from the recipe (`services.generator`, `services.dedup`, `services.verifier`) or
the environment (`IFORGE_GENERATOR_ADDRESS`, `IFORGE_DEDUP_ADDRESS`, `IFORGE_VERIFIER_ADDRESS`;
`IFORGE_TOKEN` for a bearer token). The services with no address are embedded: `iforge up` hosts them
in child processes (one per service) on free loopback ports (see `embedded_services`), their state kept inside the run
folder (`<run>/services/`), so `iforge resume` finds the gateway's cache and the dedup collections the
interrupted run left, and pays for nothing twice. The verifier is connected (or embedded) only for a
recipe with an enabled `verify` stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from instructforge.client import DedupClient, GeneratorClient, VerifierClient
from instructforge.pipeline.bindings import (
    DedupNoveltyFilter,
    DedupSimilarityScorer,
    GatewayGenerator,
    VerifierExecutor,
)
from instructforge.pipeline.llm import LlmChoice, select_llm
from instructforge.pipeline.recipe import RecipeBase
from instructforge.runtime import collector


@dataclass
class Session:
    generator: GatewayGenerator
    novelty: DedupNoveltyFilter
    llm: LlmChoice
    # Where each service answered, and whether it was embedded.
    endpoints: dict[str, str]
    embedded: tuple[str, ...]
    # Only for a recipe that verifies code (see `needs_verifier`).
    verifier: VerifierExecutor | None = None
    # Self-consistency's scores, from the same dedup service (it loads its model only when asked).
    similarity: DedupSimilarityScorer | None = None
    # LLM calls to keep waiting at the gateway beyond the recipe's concurrency (`gateway_backlog`).
    backlog: int = 0


def gateway_backlog(recipe: RecipeBase, embedded_gateway: bool) -> int:
    """The recipe's `gateway_backlog`; unset, an eighth of its concurrency when the gateway is the run's
    own (which admits `concurrency` at the provider), none with a gateway of the user's, whose limits we
    do not know. An eighth covers the run's turn-around when answers arrive by the hundred; more would
    make every follow-up queue behind it (in tools/bench/pipeline_bench.py, half of 256 was slower)."""
    if recipe.gateway_backlog is not None:
        return recipe.gateway_backlog
    return recipe.concurrency // 8 if embedded_gateway else 0


def needs_verifier(recipe: RecipeBase) -> bool:
    """A verifier holds a pool of sandboxes: connect (or embed) one only for a recipe that runs code."""
    verify = getattr(getattr(recipe, "stages", None), "verify", None)
    return bool(verify is not None and verify.enabled)


def service_addresses(recipe: RecipeBase, env: Mapping[str, str]) -> dict[str, str | None]:
    """The address of every service the recipe uses; None for one to embed."""
    addresses = {
        "generator": recipe.services.generator or env.get("IFORGE_GENERATOR_ADDRESS") or None,
        "dedup": recipe.services.dedup or env.get("IFORGE_DEDUP_ADDRESS") or None,
    }
    if needs_verifier(recipe):
        addresses["verifier"] = recipe.services.verifier or env.get("IFORGE_VERIFIER_ADDRESS") or None
    return addresses


@asynccontextmanager
async def open_session(recipe: RecipeBase, run_folder: Path, env: Mapping[str, str] | None = None
                       ) -> AsyncIterator[Session]:
    """Bound services for the length of the block; embedded ones stop (gracefully) after it."""
    env = os.environ if env is None else env
    addresses = service_addresses(recipe, env)
    llm = select_llm(recipe.model, env, gateway_is_remote=addresses["generator"] is not None)
    missing = tuple(name for name, address in addresses.items() if address is None)
    token = env.get("IFORGE_TOKEN") or None
    async with AsyncExitStack() as stack:
        if missing:
            addresses.update(await stack.enter_async_context(
                embedded_services(missing, run_folder / "services", services_config(recipe, llm), env)))
        generator = await stack.enter_async_context(
            GeneratorClient.connect(addresses["generator"], token=None if "generator" in missing else token))
        dedup = await stack.enter_async_context(
            DedupClient.connect(addresses["dedup"], token=None if "dedup" in missing else token))
        verifier = None
        if "verifier" in addresses:
            verifier = VerifierExecutor(await stack.enter_async_context(
                VerifierClient.connect(addresses["verifier"], token=None if "verifier" in missing else token)))
        # The run's own gateway keeps its cache in the run folder, where no other run looks, and each
        # call of a run has a seed of its own (RunContext.call_seed): an answer stored by content could
        # never be served. Each is kept once, under its idempotency key, which is what a resume replays
        # (storing it by content too cost the run a tenth of its CPU: tools/bench/pipeline_bench.py).
        gateway = GatewayGenerator(generator, stream=True, content_cache="generator" not in missing)
        stack.push_async_callback(gateway.aclose)  # before the client's channel closes
        collector.settle()  # the run's start-up is done: from here on it makes calls by the hundred
        yield Session(gateway, DedupNoveltyFilter(dedup), llm,
                      {k: v for k, v in addresses.items() if v}, missing, verifier,
                      similarity=DedupSimilarityScorer(dedup),
                      backlog=gateway_backlog(recipe, embedded_gateway="generator" in missing))


def _embedded_deployment(deployment: dict[str, Any], concurrency: int) -> dict[str, Any]:
    """A deployment of the run's own gateway: it admits the run's `concurrency`, and with the direct
    client opens that many connections at its first call (the extend stage's, or the first few of the
    run), so that the burst that follows does not wait while they are set up (`warm_connections`)."""
    out = {"max_concurrency": concurrency, **deployment}
    if out.get("http_client") == "direct":
        out.setdefault("warm_connections", out["max_concurrency"])
    return out


def services_config(recipe: RecipeBase, llm: LlmChoice) -> dict[str, Any]:
    """The embedded services' config file: the gateway's one route, admitting as many calls as the
    recipe keeps in flight. Keys are named by env var (`api_key_env`), never written out."""
    if llm.route is None:
        return {}
    route = {**llm.route, "deployments": [_embedded_deployment(d, recipe.concurrency) for d in llm.route["deployments"]]}
    from instructforge.generator.settings import GeneratorSettings

    # Its stream must let every call the run hands over in (the backlog included); never below its default.
    default_window = GeneratorSettings.model_fields["stream_window"].default
    window = max(default_window, recipe.concurrency + gateway_backlog(recipe, embedded_gateway=True))
    return {"generator": {"models": [route], "stream_window": window}}


# Env settings of a deployment of the user's own that must not reach the run's private services:
# TLS (they serve plaintext on loopback) and gateway routes (theirs is in the config file).
_NOT_INHERITED = re.compile(r"IFORGE_(?:[A-Z]+_)?TLS__|IFORGE_GENERATOR_MODELS")
# Time the services get to drain and flush their state after SIGTERM before they are killed.
STOP_GRACE_S = 30.0


@functools.cache
def _prctl() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGKILL once the run's process is gone, however it went (kill -9
    included). Not SIGTERM: a drain would leave it writing the state folder that `iforge resume`
    is about to open; the run's journal already makes a sudden stop safe."""
    prctl = _prctl()
    if prctl is not None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the run died before the signal was armed
        os._exit(1)


@asynccontextmanager
async def embedded_services(names: tuple[str, ...], state_dir: Path, config: dict[str, Any],
                            env: Mapping[str, str]) -> AsyncIterator[dict[str, str]]:
    """`iforge up` hosting each of `names` in a child process of its own on a free loopback port,
    without auth or TLS, for the length of the block; yields their addresses by name.

    Processes of their own, so the gateway's and dedup's work (protobuf, the provider SDK, indexes)
    runs beside the pipeline instead of sharing its core and event loop, and one service per process,
    so neither waits on the other's interpreter lock (a dedup batch held the gateway's event loop up
    to a switch interval at a time, with hundreds of calls in flight). They start side by side, stop
    gracefully (SIGTERM: drain, flush) after the block and die with this process if that is killed.
    Each writes its log to `<state_dir>/<name>.log` (a service that cannot start fails the run with
    the end of its own log, not another's lines); their config is `<state_dir>/embedded.yaml`.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    config_file = state_dir / "embedded.yaml"
    partial = config_file.with_name(config_file.name + ".tmp")
    partial.write_text(yaml.safe_dump(config, sort_keys=False))
    partial.replace(config_file)
    child_env = {k: v for k, v in {**os.environ, **env}.items() if not _NOT_INHERITED.match(k)}
    _prctl()  # resolved here: the child only makes the call
    processes: list[asyncio.subprocess.Process] = []
    try:
        for name in names:
            processes.append(await _launch(name, state_dir, config_file, child_env))
        waits = [asyncio.ensure_future(_addresses(p, (n,), _log_file(state_dir, n))) for p, n in zip(processes, names)]
        try:
            found = await asyncio.gather(*waits)
        except BaseException:  # one could not start: the others' waits end here, not in a warning
            for wait in waits:
                wait.cancel()
            raise
        yield {name: address for addresses in found for name, address in addresses.items()}
    finally:
        await asyncio.gather(*(_stop(p) for p in processes))


def _log_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.log"


async def _launch(name: str, state_dir: Path, config_file: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`iforge up --services NAME`, its stderr appended to its log (kept over resumes)."""
    with _log_file(state_dir, name).open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "instructforge.cli.main", "up", "--services", name,
            "--host", "127.0.0.1", "--port", "0", "--auth-tokens", "", "--no-metrics-enabled",
            "--state-dir", str(state_dir), "--config", str(config_file),
            # Warnings and errors only: at INFO the provider SDK logs a line per call.
            "--log-level", "WARNING",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
            # Its own process group: a Ctrl-C reaches the run, which then stops the services in order.
            preexec_fn=functools.partial(_die_with_parent, os.getpid()), process_group=0)


async def _addresses(process: asyncio.subprocess.Process, names: tuple[str, ...], log_file: Path) -> dict[str, str]:
    """`iforge up` prints `NAME ADDRESS` per service once all answer a health check, then `ready ...`."""
    from instructforge.runtime.errors import Unavailable

    found: dict[str, str] = {}
    while True:
        line = (await process.stdout.readline()).decode()
        if not line:
            code = await process.wait()
            tail = log_file.read_text(errors="replace").splitlines()[-20:]
            raise Unavailable(f"the embedded services ({', '.join(names)}) exited with code {code} before they "
                              f"were ready; from {log_file}:\n" + "\n".join(tail))
        name, _, address = line.strip().partition(" ")
        if name == "ready":
            return found
        found[name] = address.strip()


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM and its grace; SIGKILL past the grace, or at once when the run itself is cancelled."""
    try:
        with contextlib.suppress(ProcessLookupError):  # it may be gone already
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), STOP_GRACE_S)
    except BaseException as stopped:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if not isinstance(stopped, TimeoutError):
            raise
        await process.wait()
