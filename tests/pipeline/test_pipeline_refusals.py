"""A service that refuses the run itself (its token, a model nobody serves, the provider's key) stops it
with the reason, records no call as failed, and `iforge resume` finishes it once that is fixed."""

from __future__ import annotations

import pytest
from layout_openai import LayoutOpenAI
from pipeline_fakes import MemoryNovelty, MemorySimilarity
from test_pipeline_runner import RECIPE

from instructforge.client import GeneratorClient
from instructforge.pipeline.bindings import GatewayGenerator
from instructforge.pipeline.protocols import RunRefused
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.runner import execute, status
from instructforge.pipeline.state import RunState

TOKEN = "right-token"


async def _gateway(start_service, fake: LayoutOpenAI, **settings):
    models = [{"name": "m", "deployments": [{"backend": "openai", "model": "gpt-fake", "base_url": fake.url,
                                             "http_client": "direct"}]}]
    return await start_service("generator", models=models, cache={"store": "memory"}, **settings)


async def _run(folder, port: int, token: str | None, recipe: dict | None = None):
    """Start (`recipe`) or resume the run in `folder` against the gateway on `port`."""
    state = RunState.open(folder) if recipe is None else RunState.create(folder, parse_recipe(recipe))
    async with GeneratorClient.connect(f"127.0.0.1:{port}", token=token) as client:
        generator = GatewayGenerator(client, stream=True)
        try:
            return await execute(state, generator, MemoryNovelty(), MemorySimilarity())
        finally:
            await generator.aclose()
            state.close()


async def test_a_refused_token_stops_the_run_and_a_resume_with_the_right_one_finishes_it(start_service, tmp_path):
    async with LayoutOpenAI() as fake:
        running = await _gateway(start_service, fake, auth_tokens=[TOKEN])
        with pytest.raises(RunRefused, match="UNAUTHENTICATED.*bearer token"):
            await _run(tmp_path / "run", running.port, "wrong-token", {**RECIPE, "model": "m"})
        stopped = status(tmp_path / "run")
        assert stopped["state"] == "interrupted or running"
        assert stopped["usage"]["calls"] == stopped["usage"]["failed"] == 0  # nothing recorded as rejected
        assert len(fake.log) == 0

        resumed = await _run(tmp_path / "run", running.port, TOKEN)
        fresh = await _run(tmp_path / "fresh", running.port, TOKEN, {**RECIPE, "model": "m"})
    assert len(resumed.records) == RECIPE["stages"]["sample"]["example_num"]
    assert [r.id for r in resumed.records] == [r.id for r in fresh.records]
    assert "call_rejected" not in resumed.summary["drops"]


async def test_a_model_the_gateway_does_not_serve_stops_the_run_naming_the_ones_it_does(start_service, tmp_path):
    async with LayoutOpenAI() as fake:
        running = await _gateway(start_service, fake)
        with pytest.raises(RunRefused, match="unknown model 'gpt-4o'; this gateway serves: m"):
            await _run(tmp_path / "run", running.port, None, {**RECIPE, "model": "gpt-4o"})
    assert status(tmp_path / "run")["usage"]["failed"] == 0
