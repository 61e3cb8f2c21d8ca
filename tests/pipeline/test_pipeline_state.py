"""Run folders and the journal: what a resumed run replays, and the bounds on retries."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from pipeline_fakes import FakeLLM, MemoryNovelty

from instructforge.pipeline.calls import JournaledGenerator, JournaledNovelty, RunInterrupted
from instructforge.pipeline.protocols import (
    CallsRejected,
    CollectionSpec,
    Completion,
    FinishReason,
    GenerationRequest,
    NoveltyItem,
    PermanentError,
    TransientError,
)
from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.records import Record
from instructforge.pipeline.state import RunState, RunStateError
from instructforge.pipeline.stats import StageStats

RECIPE = parse_recipe({"recipe": "self_instruct", "name": "demo", "stages": {"generate": {"threshold": 0.6}}})


def test_create_open_and_refuse_to_overwrite(tmp_path):
    state = RunState.create(tmp_path / "run", RECIPE)
    assert state.run_id.startswith("demo-")
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"recipe.yaml", "run.json", "state.sqlite", "checkpoints"}
    state.close()
    again = RunState.open(tmp_path / "run")
    assert again.run_id == state.run_id and again.recipe == RECIPE
    with pytest.raises(RunStateError, match="already exists and is not empty; resume it"):
        RunState.create(tmp_path / "run", RECIPE)
    with pytest.raises(RunStateError, match="not a run folder"):
        RunState.open(tmp_path / "nowhere")


def test_keys_carry_run_stage_subject_attempt(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    assert state.call_key("enrich", "paraphrase", 3) == "r1/enrich/paraphrase/3"
    assert RunState.stage_of("r1/enrich/paraphrase/3") == "enrich"


def test_journal_of_calls_and_answers(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    completion = Completion(("a", "b"), (FinishReason.STOP, FinishReason.LENGTH), 10, 20, 0.5, False, "m")
    assert state.get_call("r1/x/y/0") is False
    state.put_call("r1/x/y/0", completion)
    state.put_call("r1/x/z/0", None, error="rejected")
    reopened = RunState.open(tmp_path)
    assert reopened.get_call("r1/x/y/0") == completion
    assert reopened.get_call("r1/x/z/0") is None
    assert reopened.usage() == {"x": {"calls": 2, "cache_hits": 0, "failed": 1, "prompt_tokens": 10,
                                      "completion_tokens": 20, "cost_usd": 0.5}}
    assert reopened.models() == ["m"]


COMPLETION = Completion(("a",), (FinishReason.STOP,), 1, 2, 0.0, False, "m")


async def test_journal_rows_of_one_loop_turn_share_one_commit(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    state.put_call("r1/x/a/0", COMPLETION)
    state.put_answer("r1/x/b", [1, 2])
    assert state.get_call("r1/x/a/0") == COMPLETION  # the run itself reads what it wrote at once
    outside = RunState.open(tmp_path)
    assert outside.get_call("r1/x/a/0") is False and outside.get_answer("r1/x/b") is None
    await asyncio.sleep(0)  # the turn ends: one commit for both
    assert outside.get_call("r1/x/a/0") == COMPLETION and outside.get_answer("r1/x/b") == [1, 2]


async def test_a_failed_transaction_never_takes_journal_rows_along(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    state.put_call("r1/x/a/0", COMPLETION)
    with pytest.raises(sqlite3.OperationalError), state.transaction() as db:
        db.execute("INSERT INTO no_such_table VALUES (1)")
    assert RunState.open(tmp_path).get_call("r1/x/a/0") == COMPLETION


async def test_closing_the_run_commits_its_last_journal_rows(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    state.put_call("r1/x/a/0", COMPLETION)
    state.close()
    assert RunState.open(tmp_path).get_call("r1/x/a/0") == COMPLETION


def test_stage_checkpoints_and_records(tmp_path):
    state = RunState.create(tmp_path, RECIPE)
    assert state.stage_done("generate") is None
    state.mark_started("generate")
    assert state.stage_done("generate") is None
    stats = StageStats("generate", inputs=3, outputs=1)
    stats.drop("too_short", 2)
    state.mark_done("generate", stats)
    assert state.stage_done("generate") == stats
    a, b = Record("Name a fruit please now.", output="Apple"), Record("Name a colour please now.", output="Red")
    state.put_records("generate", [a, b], "kept")
    state.put_dropped("filter", [(b, "near_duplicate")])
    assert [r.id for r in state.records("kept")] == [a.id]
    assert [r.id for r in state.records()] == [a.id, b.id]  # first insertion order stays
    assert state.record_counts() == {("generate", "kept", ""): 1, ("filter", "dropped", "near_duplicate"): 1}


def request(key: str) -> GenerationRequest:
    return GenerationRequest(model="m", prompt="9. Instruction:\n", idempotency_key=key)


async def test_a_journaled_call_is_made_once(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    llm = FakeLLM(script=lambda r: "answer")
    journaled = JournaledGenerator(llm, state)
    first = await journaled.generate(request("r1/s/a/0"))
    await asyncio.sleep(0)  # the turn that journaled the answer ends: a run killed after it resumes with it
    second = await JournaledGenerator(llm, RunState.open(tmp_path)).generate(request("r1/s/a/0"))
    assert first == second and llm.keys == {"r1/s/a/0": 1}
    with pytest.raises(ValueError, match="idempotency key"):
        await journaled.generate(request(""))


async def test_permanent_failures_are_journaled_and_not_retried(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    llm = FakeLLM(reject=lambda r: True)
    journaled = JournaledGenerator(llm, state)
    for _ in range(2):
        with pytest.raises(PermanentError):
            await journaled.generate(request("r1/s/a/0"))
    assert llm.keys == {"r1/s/a/0": 1} and state.get_call("r1/s/a/0") is None


async def test_a_streak_of_rejections_stops_the_run_and_the_journal_forgets_it(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    llm = FakeLLM(script=lambda r: "answer", reject=lambda r: "/bad/" in r.idempotency_key)
    journaled = JournaledGenerator(llm, state, rejections_to_stop=3)
    await journaled.generate(request("r1/s/good/0"))
    for i in range(2):
        with pytest.raises(PermanentError):
            await journaled.generate(request(f"r1/s/bad/{i}"))
    assert state.get_call("r1/s/bad/1") is None  # a drop, as long as the streak is short
    with pytest.raises(CallsRejected, match="the last 3 LLM calls were all rejected.*rejected by the fake"):
        await journaled.generate(request("r1/s/bad/2"))
    assert [state.get_call(f"r1/s/bad/{i}") for i in range(3)] == [False] * 3  # a resume asks again
    assert state.get_call("r1/s/good/0") is not False
    with pytest.raises(CallsRejected):  # the calls still out when the run stops
        await journaled.generate(request("r1/s/bad/3"))


async def test_rejections_between_accepted_calls_stay_drops(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    llm = FakeLLM(script=lambda r: "answer", reject=lambda r: "/bad/" in r.idempotency_key)
    journaled = JournaledGenerator(llm, state, rejections_to_stop=3)
    for i in range(4):
        for j in range(2):
            with pytest.raises(PermanentError):
                await journaled.generate(request(f"r1/s/bad/{i}-{j}"))
        await journaled.generate(request(f"r1/s/good/{i}"))
    assert all(state.get_call(f"r1/s/bad/{i}-{j}") is None for i in range(4) for j in range(2))
    never = JournaledGenerator(llm, state, rejections_to_stop=0)
    for i in range(5):
        with pytest.raises(PermanentError):
            await never.generate(request(f"r1/s/bad/x{i}"))


async def test_rejections_replayed_on_resume_count_towards_the_streak(tmp_path):
    """A run killed during a streak: its journaled rejections and the new ones make one streak, and
    all of them are forgotten when it stops the run."""
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    llm = FakeLLM(reject=lambda r: True)
    for i in range(2):
        with pytest.raises(PermanentError):
            await JournaledGenerator(llm, state, rejections_to_stop=3).generate(request(f"r1/s/bad/{i}"))
    await asyncio.sleep(0)  # the killed run's last turn ended
    resumed = JournaledGenerator(llm, RunState.open(tmp_path), rejections_to_stop=3)
    with pytest.raises(PermanentError):
        await resumed.generate(request("r1/s/bad/0"))  # replayed
    with pytest.raises(PermanentError):
        await resumed.generate(request("r1/s/bad/1"))  # replayed
    with pytest.raises(CallsRejected):
        await resumed.generate(request("r1/s/bad/2"))
    assert [state.get_call(f"r1/s/bad/{i}") for i in range(3)] == [False] * 3
    assert llm.keys == {"r1/s/bad/0": 1, "r1/s/bad/1": 1, "r1/s/bad/2": 1}


async def test_rejections_of_a_finished_stage_stay_recorded_when_a_streak_stops_the_run(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    journaled = JournaledGenerator(FakeLLM(reject=lambda r: True), state, rejections_to_stop=2)
    with pytest.raises(PermanentError):
        await journaled.generate(request("r1/first/a/0"))
    state.mark_started("first")
    state.mark_done("first", StageStats("first"))
    with pytest.raises(CallsRejected):
        await journaled.generate(request("r1/second/a/0"))
    assert state.get_call("r1/first/a/0") is None and state.get_call("r1/second/a/0") is False


class Flaky:
    def __init__(self, failures: int):
        self.failures, self.calls = failures, 0

    async def generate(self, request):
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientError("unavailable")
        return Completion(("ok",), (FinishReason.STOP,))


async def test_transient_failures_are_retried_a_bounded_number_of_times(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky(failures=2)
    assert (await JournaledGenerator(flaky, state, retries=3, backoff_s=1, sleep=sleep).generate(request("r1/s/a/0"))).texts == ("ok",)
    assert flaky.calls == 3 and len(waits) == 2 and 0.5 <= waits[0] <= 1.5 and 1 <= waits[1] <= 3
    down = Flaky(failures=100)
    with pytest.raises(RunInterrupted, match="still failing after 4 attempts"):
        await JournaledGenerator(down, state, retries=3, backoff_s=0, sleep=sleep).generate(request("r1/s/b/0"))
    assert down.calls == 4 and state.get_call("r1/s/b/0") is False  # not journaled: a resume tries again


async def test_novelty_verdicts_are_journaled_by_request_id(tmp_path):
    state = RunState.create(tmp_path, RECIPE, run_id="r1")
    inner = MemoryNovelty()
    novelty = JournaledNovelty(inner, state)
    await novelty.ensure_collection("c", CollectionSpec(references=("Write a poem about the sea.",)))
    items = [NoveltyItem("1", "Write a poem about the sea!"), NoveltyItem("2", "List three uses of salt.")]
    verdicts = await novelty.check_and_insert("c", items, request_id="r1/generate/batch-0/dedup-0")
    assert [v.kept for v in verdicts] == [False, True] and verdicts[0].reason == "lexical"
    await asyncio.sleep(0)  # the turn that journaled the verdicts ends
    again = await JournaledNovelty(MemoryNovelty(), RunState.open(tmp_path)).check_and_insert(
        "c", items, request_id="r1/generate/batch-0/dedup-0")
    assert again == verdicts and inner.calls == 1
