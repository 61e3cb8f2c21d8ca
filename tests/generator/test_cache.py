"""The response cache and idempotency keys: re-runs are free, and nothing that changes an answer is shared."""

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from generator.conftest import counter, openai_config
from generator.fakes.openai_server import FakeOpenAI
from instructforge.generator.request import CachePolicy, GenerateRequest, Message, Sampling
from instructforge.runtime.errors import FailedPrecondition

WORKER = Path(__file__).with_name("gateway_worker.py")


def batch() -> list[GenerateRequest]:
    """A small mixed batch: chat and text, several sample counts and parameter sets."""
    out = []
    for i in range(30):
        sampling = Sampling(temperature=0.1 * (i % 5), max_tokens=20 + i % 3, seed=i if i % 4 == 0 else None)
        if i % 3:
            out.append(GenerateRequest(model="m", messages=(Message("user", f"q{i}"),), sample_count=1 + i % 3,
                                       sampling=sampling, run_id="run-1"))
        else:
            out.append(GenerateRequest(model="m", text=f"t{i}", sampling=sampling, template_version="v1",
                                       run_id="run-1"))
    return out


async def test_a_second_identical_run_makes_zero_backend_calls(make_gateway, tmp_path):
    async with FakeOpenAI() as fake:
        config = openai_config(fake.url, cache={"store": "sqlite", "path": str(tmp_path / "c.sqlite3")},
                               input_cost_per_million_tokens_usd=1.0)
        gw = await make_gateway(config)
        first = await asyncio.gather(*(gw.generate(r) for r in batch()))
        calls = len(fake.log)
        assert calls >= 30 and not any(r.cache_hit for r in first)
        # A new gateway on the same database: the resumed pipeline pays nothing.
        await gw.close()
        gw2 = await make_gateway(config)
        second = await asyncio.gather(*(gw2.generate(replace(r, run_id="run-2")) for r in batch()))
        assert len(fake.log) == calls
        assert [[s.text for s in r.samples] for r in second] == [[s.text for s in r.samples] for r in first]
        assert all(r.cache_hit and r.cost_usd == 0 and r.attempt_count == 0 for r in second)
        usage = {u.model: u for u in gw2.usage("run-2")}["m"]
        assert usage.request_count == 30 and usage.cache_hit_count == 30 and usage.cost_usd == 0
        assert usage.saved_cost_usd > 0
        assert counter(gw2.metrics, "instructforge_generator_cache_samples_total", result="hit") == sum(
            r.sample_count for r in batch())


@pytest.mark.parametrize("change", [
    {"temperature": 0.5}, {"top_p": 0.5}, {"top_k": 3}, {"max_tokens": 7}, {"stop": ("zz",)}, {"seed": 3},
    {"presence_penalty": 0.5}, {"frequency_penalty": 0.5}, {"repetition_penalty": 1.5}, {"logit_bias": {"1": 2.0}},
])
async def test_changing_any_single_sampling_parameter_misses(make_gateway, change):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(openai_config(fake.url))
        request = GenerateRequest(model="m", text="same prompt")
        await gw.generate(request)
        assert (await gw.generate(request)).cache_hit and len(fake.log) == 1
        changed = await gw.generate(replace(request, sampling=replace(request.sampling, **change)))
        assert not changed.cache_hit and len(fake.log) == 2


async def test_template_version_and_deployment_defaults_are_part_of_the_key(make_gateway, tmp_path):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(openai_config(fake.url))
        await gw.generate(GenerateRequest(model="m", text="p", template_version="a"))
        await gw.generate(GenerateRequest(model="m", text="p", template_version="b"))
        assert len(fake.log) == 2
    async with FakeOpenAI() as fake:
        store_config = {"store": "sqlite", "path": str(tmp_path / "shared.sqlite3")}
        a = await make_gateway(openai_config(fake.url, cache=store_config, defaults={"temperature": 0.2}))
        await a.generate(GenerateRequest(model="m", text="defaults"))
        b = await make_gateway(openai_config(fake.url, cache=store_config, defaults={"temperature": 0.9}))
        await b.generate(GenerateRequest(model="m", text="defaults"))
        assert len(fake.log) == 2  # same request, other resolved temperature: a miss


async def test_policies_refresh_and_bypass(make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(openai_config(fake.url))
        request = GenerateRequest(model="m", text="p")
        first = await gw.generate(request)
        refreshed = await gw.generate(replace(request, cache_policy=CachePolicy.REFRESH))
        assert not refreshed.cache_hit and len(fake.log) == 2
        assert refreshed.samples[0].text != first.samples[0].text
        again = await gw.generate(request)
        assert again.cache_hit and again.samples[0].text == refreshed.samples[0].text  # replaced
        bypassed = await gw.generate(replace(request, cache_policy=CachePolicy.BYPASS))
        assert not bypassed.cache_hit and len(fake.log) == 3
        assert (await gw.generate(request)).samples[0].text == refreshed.samples[0].text  # not written


async def test_more_samples_later_reuse_the_first_ones(make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(openai_config(fake.url))
        two = await gw.generate(GenerateRequest(model="m", text="p", sample_count=2))
        four = await gw.generate(GenerateRequest(model="m", text="p", sample_count=4))
        assert [s.text for s in four.samples[:2]] == [s.text for s in two.samples]
        assert fake.log.calls[1].body["n"] == 2 and not four.cache_hit
        assert four.usage.completion_tokens == sum(len(s.text.split()) for s in four.samples)


async def test_idempotency_key_replays_the_stored_answer_whatever_the_policy(make_gateway, tmp_path):
    async with FakeOpenAI() as fake:
        config = openai_config(fake.url, cache={"store": "sqlite", "path": str(tmp_path / "c.sqlite3")})
        gw = await make_gateway(config)
        request = GenerateRequest(model="m", text="p", sample_count=2, idempotency_key="run-7/rec-3/enrich-v1",
                                  cache_policy=CachePolicy.BYPASS)
        first = await gw.generate(request)
        await gw.close()
        gw2 = await make_gateway(config)  # a resumed pipeline, after a crash
        replayed = await gw2.generate(replace(request, cache_policy=CachePolicy.REFRESH))
        assert len(fake.log) == 1
        assert replayed.cache_hit and replayed.cost_usd == 0
        assert [s.text for s in replayed.samples] == [s.text for s in first.samples]
        assert replayed.usage == first.usage and replayed.deployment == first.deployment
        with pytest.raises(FailedPrecondition) as info:
            await gw2.generate(replace(request, text="another prompt"))
        assert info.value.reason == "IDEMPOTENCY_KEY_REUSED" and len(fake.log) == 1


async def test_identical_requests_in_flight_make_one_call(make_gateway):
    async with FakeOpenAI(delay=0.05) as fake:
        gw = await make_gateway(openai_config(fake.url))
        request = GenerateRequest(model="m", text="popular")
        answers = await asyncio.gather(*(gw.generate(request) for _ in range(10)))
        assert len(fake.log) == 1
        assert len({a.samples[0].text for a in answers}) == 1
        assert sum(not a.cache_hit for a in answers) == 1


async def test_ttl_expires_sqlite_entries(make_gateway, tmp_path):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(openai_config(fake.url, cache={"store": "sqlite", "path": str(tmp_path / "t.db"),
                                                               "ttl_s": 0.5}))
        await gw.generate(GenerateRequest(model="m", text="p"))
        assert (await gw.generate(GenerateRequest(model="m", text="p"))).cache_hit
        await asyncio.sleep(0.55)
        assert not (await gw.generate(GenerateRequest(model="m", text="p"))).cache_hit
        assert len(fake.log) == 2


async def test_redis_store_shared_by_two_gateways(make_gateway, redis_url):
    async with FakeOpenAI() as fake:
        config = openai_config(fake.url, cache={"store": "redis", "redis_url": redis_url,
                                                "key_prefix": "test-two-gateways:"})
        a, b = await make_gateway(config), await make_gateway(config)
        first = await a.generate(GenerateRequest(model="m", text="shared", sample_count=3, idempotency_key="k1"))
        second = await b.generate(GenerateRequest(model="m", text="shared", sample_count=3))
        replay = await b.generate(GenerateRequest(model="m", text="shared", sample_count=3, idempotency_key="k1"))
        assert len(fake.log) == 1 and second.cache_hit and replay.cache_hit
        assert [s.text for s in second.samples] == [s.text for s in first.samples] == [s.text for s in replay.samples]


async def test_redis_store_shared_by_two_gateway_processes(redis_url):
    async with FakeOpenAI() as fake:
        config = openai_config(fake.url, cache={"store": "redis", "redis_url": redis_url, "key_prefix": "test-procs:"})
        prompts = [{"model": "m", "text": f"p{i}", "n": 1 + i % 2, "temperature": 0.5, "key": f"r/{i}" if i % 2 else ""}
                   for i in range(20)]

        async def run_process() -> dict:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(WORKER), json.dumps(config), json.dumps(prompts),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()[-2000:]
            return json.loads(out)

        first = await run_process()
        calls = len(fake.log)
        assert calls == 20 and not any(a["cache_hit"] for a in first["answers"])
        second = await run_process()
        assert len(fake.log) == calls  # the second process paid nothing
        assert all(a["cache_hit"] and a["attempts"] == 0 for a in second["answers"])
        assert [a["texts"] for a in second["answers"]] == [a["texts"] for a in first["answers"]]


async def test_an_unreachable_cache_is_bypassed_not_fatal(make_gateway):
    async with FakeOpenAI() as fake:
        gw = await make_gateway(openai_config(fake.url, cache={"store": "redis", "redis_url": "redis://127.0.0.1:1/0"}))
        r = await gw.generate(GenerateRequest(model="m", text="p"))
        assert r.samples and len(fake.log) == 1
        assert counter(gw.metrics, "instructforge_generator_cache_errors_total", operation="read") == 1
        assert counter(gw.metrics, "instructforge_generator_cache_errors_total", operation="write") == 1


async def test_sqlite_writes_commit_together_and_a_refused_one_fails_alone(tmp_path):
    """Writes queued in one loop turn commit together; the one the database refuses fails its own caller
    with a clear error, and the store goes on storing."""
    import sqlite3

    from instructforge.generator.stores import SQLiteStore
    from instructforge.runtime.errors import Unavailable

    path = tmp_path / "cache.db"
    store = SQLiteStore(path, checkpoint_every_s=0.05)
    try:
        await asyncio.gather(*(store.put_many([(f"k{i}", f"v{i}".encode())]) for i in range(200)))
        assert await store.get_many(["k0", "k199", "missing"]) == [b"v0", b"v199", None]
        with sqlite3.connect(path) as db:  # a rule of the database, as a full disk or a bad file would refuse
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.key = 'bad' "
                       "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END")
        with pytest.raises(Unavailable) as refused:
            await store.put_many([("bad", b"x")])
        assert refused.value.reason == "CACHE_WRITE_FAILED" and "refused by trigger" in refused.value.message
        await store.put_many([("good", b"y")])
        await asyncio.sleep(0.1)  # a checkpoint or two in between
        assert await store.get_many(["good", "bad"]) == [b"y", None]
    finally:
        await store.close()
    with pytest.raises(Unavailable):  # closed: a write is refused, not lost in a queue nobody reads
        await store.put_many([("late", b"z")])
    reopened = SQLiteStore(path)
    try:
        assert await reopened.get_many(["k42", "good", "late"]) == [b"v42", b"y", None]
    finally:
        await reopened.close()
