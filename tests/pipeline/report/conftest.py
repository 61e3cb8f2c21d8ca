"""The finished run most report tests read, made once per session."""

from __future__ import annotations

import asyncio

import pytest
from pipeline_fakes import FakeLLM, run_recipe

from .runs import HOSTILE_RECIPE, hostile


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory):
    """A finished Explore-Instruct run folder (depth 2, one pruned node, filter drops, hostile names)."""
    folder = tmp_path_factory.mktemp("hostile") / "run"
    asyncio.run(run_recipe(folder, HOSTILE_RECIPE, FakeLLM(script=hostile)))
    return folder
