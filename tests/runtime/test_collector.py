"""A serving process spaces out CPython's cycle-collector passes once its start-up is done."""

from __future__ import annotations

import gc
import weakref

import pytest

from instructforge.runtime import collector
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.server import hosted
from instructforge.runtime.service import load_spec
from instructforge.runtime.settings import load_settings


@pytest.fixture
def default_collector():
    """CPython's default collector during the test, and the test process's own after it."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_hosted_services_settle_the_collector_once_they_serve(tmp_path, default_collector):
    spec = load_spec("tagger")
    settings = load_settings(spec.settings_cls, overrides={"port": 0, "state_dir": tmp_path, "host": "127.0.0.1",
                                                           "metrics_enabled": False})
    async with hosted([(spec, settings)], Metrics()):
        assert gc.get_threshold() == (collector.YOUNG, 10, 10)  # older generations as they were
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's sight


def test_settling_keeps_collecting_cycles(default_collector):
    class Node:
        pass

    def cycle() -> weakref.ref:
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a), (a, b)

    before, held = cycle()
    collector.settle()  # `held` is alive here: frozen with the rest of start-up
    del held
    after = cycle()[0]  # dropped at once: garbage made after settling
    gc.collect()
    assert after() is None  # a cycle made after settling is still found
    assert before() is not None  # what settling froze stays out of the collector's sight
