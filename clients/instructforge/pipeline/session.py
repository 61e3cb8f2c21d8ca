"""Connects a run to its services: the user's, where addresses are given, else embedded ones.

An address comes from the recipe (`services.generator`, `services.dedup`, `services.verifier`) or
the environment (`IFORGE_GENERATOR_ADDRESS`, `IFORGE_DEDUP_ADDRESS`, `IFORGE_VERIFIER_ADDRESS`;
`IFORGE_TOKEN` for a bearer token). A service with no address is started in this process on a free
loopback port, its state kept inside the run folder (`<run>/services/`), so `iforge resume` finds the
gateway's cache and the dedup collections the interrupted run left, and pays for nothing twice. The
verifier is connected (or embedded) only for a recipe with an enabled `verify` stage.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from instructforge.client import DedupClient, GeneratorClient, VerifierClient
from instructforge.pipeline.bindings import (
    DedupNoveltyFilter,
    DedupSimilarityScorer,
    GatewayGenerator,
    VerifierExecutor,
)
from instructforge.pipeline.llm import LlmChoice, select_llm
from instructforge.pipeline.recipe import RecipeBase


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
            from instructforge.runtime.embedded import embedded_services  # the services, only when embedding

            # Loopback only, no auth or TLS: nothing outside this process can reach them.
            overrides = {"state_dir": run_folder / "services", "auth_tokens": [], "tls": {}, "host": "127.0.0.1"}
            per_service = {}
            if llm.route is not None:
                # The embedded gateway lets through as many calls as the recipe keeps in flight.
                route = {**llm.route, "deployments": [{"max_concurrency": recipe.concurrency, **d}
                                                      for d in llm.route["deployments"]]}
                per_service["generator"] = {"models": [route]}
            running = await stack.enter_async_context(
                embedded_services(missing, overrides=overrides, per_service=per_service))
            for name, server in running.items():
                addresses[name] = f"127.0.0.1:{server.port}"
        generator = await stack.enter_async_context(
            GeneratorClient.connect(addresses["generator"], token=None if "generator" in missing else token))
        dedup = await stack.enter_async_context(
            DedupClient.connect(addresses["dedup"], token=None if "dedup" in missing else token))
        verifier = None
        if "verifier" in addresses:
            verifier = VerifierExecutor(await stack.enter_async_context(
                VerifierClient.connect(addresses["verifier"], token=None if "verifier" in missing else token)))
        yield Session(GatewayGenerator(generator), DedupNoveltyFilter(dedup), llm,
                      {k: v for k, v in addresses.items() if v}, missing, verifier,
                      similarity=DedupSimilarityScorer(dedup))
