"""The Self-Instruct recipe over in-process fakes of the generator and dedup protocols."""

from __future__ import annotations

import random

import pytest
from pipeline_fakes import FakeLLM, KilledError, MemoryNovelty, run_recipe, self_instruct_answer

from instructforge.pipeline.protocols import FinishReason
from instructforge.pipeline.records import Record
from instructforge.pipeline.seed_tasks import load_seed_tasks
from instructforge.pipeline.self_instruct import pick_demos
from instructforge.pipeline.state import RunState


def recipe(**generate) -> dict:
    return {"recipe": "self_instruct", "name": "si", "stages": {"generate": {"num_instructions_to_generate": 40,
                                                                            **generate}}}


async def test_reaches_the_target_with_every_drop_counted(tmp_path):
    seeds = load_seed_tasks()

    def script(request):
        # Eleven items: good ones, and one of each kind the filters and the novelty check remove.
        body = self_instruct_answer(request.prompt, 9, False, request.idempotency_key.split("/", 1)[1], last=15)
        bad = ("16. Instruction:\nDraw a picture of a cat.\n\n16. Output:\nno\n###\n"
               "17. Instruction:\nWrite a program that sorts numbers.\n\n17. Output:\nx\n###\n"
               f"18. Instruction:\n{seeds[0].instruction}\n\n18. Output:\nsame as a seed\n###\n"
               "19. Instruction:\nToo short.\n\n19. Output:\nx\n###\n")
        return body + bad

    dataset, run = await run_recipe(tmp_path, recipe(), FakeLLM(script=script))
    stats = run.stats[0]
    assert len(dataset) == 40 and len({r.id for r in dataset}) == 40
    # 7 good items per answer; 6 answers (batch of 4, then 2 for the remaining 12 at 7 per answer).
    assert stats.calls == 6 and stats.inputs == 6 * 11
    # The seed copy is judged once per batch (the batch's other copies are the same record).
    assert stats.drops == {"blacklisted_word": 6, "programming_task": 6, "near_duplicate_lexical": 2,
                           "duplicate_in_batch": 4, "too_short": 6, "beyond_target": 2}
    assert all(r.meta["most_similar"] and 0 <= r.meta["max_rouge_l"] <= 0.7 for r in dataset)
    state = RunState.open(tmp_path)
    assert state.records("final") == dataset
    assert set(state.record_counts()) >= {
        ("generate", "dropped", "blacklisted_word"), ("generate", "dropped", "near_duplicate_lexical")}
    assert (tmp_path / "dataset.jsonl").exists() and (tmp_path / "checkpoints" / "generate.jsonl").exists()


def test_demonstrations_are_distinct_and_mix_in_machine_ones():
    seeds = load_seed_tasks()
    machine = [Record(f"Machine task number {i}.", output="x") for i in range(5)]
    rng = random.Random(0)
    early = pick_demos(rng, seeds, machine[:1], 8, 2)  # fewer machine tasks than asked: all seeds
    assert len(early) == 8 and len({d.instruction for d in early}) == 8
    assert not any(d.instruction.startswith("Machine") for d in early)
    later = pick_demos(rng, seeds, machine, 8, 2)
    assert sum(d.instruction.startswith("Machine") for d in later) == 2 and len({d.instruction for d in later}) == 8
    alpaca = pick_demos(rng, seeds, machine, 3, 0)
    assert len(alpaca) == 3 and not any(d.instruction.startswith("Machine") for d in alpaca)


async def test_alpaca_preset_prompts(tmp_path):
    llm = FakeLLM()
    await run_recipe(tmp_path, {"recipe": "self_instruct", "preset": "alpaca",
                                "stages": {"generate": {"num_instructions_to_generate": 10}}}, llm)
    prompt = llm.prompts[0]
    assert prompt.endswith("\n###\n4. Instruction:\n") and "3. Input:\n" in prompt


async def test_a_model_that_never_helps_stops_after_the_stall_limit(tmp_path):
    llm = FakeLLM(script=lambda r: "I'm sorry, I can't do that.")
    dataset, run = await run_recipe(tmp_path, recipe(stall_batches=3), llm)
    assert dataset == [] and run.stats[0].notes["stopped_early"] == "stalled"
    assert len(llm.prompts) == 3 * 4


async def test_max_requests_bounds_the_run(tmp_path):
    llm = FakeLLM(script=lambda r: "9. Instruction: Tiny.\n9. Output: x\n###\n")
    _, run = await run_recipe(tmp_path, recipe(max_requests=6, stall_batches=100), llm)
    assert len(llm.prompts) == 6 and run.stats[0].notes["stopped_early"] == "max_requests"
    assert run.stats[0].drops["too_short"] == 6


async def test_rejected_calls_and_truncated_answers_are_counted(tmp_path):
    llm = FakeLLM(reject=lambda r: r.idempotency_key.endswith("/0"), finish=FinishReason.LENGTH)
    dataset, run = await run_recipe(tmp_path, recipe(num_instructions_to_generate=20), llm)
    assert run.stats[0].drops["call_rejected"] >= 1 and run.stats[0].drops["truncated"] >= 1
    assert len(dataset) == 20


@pytest.mark.parametrize("die_after", [1, 4, 7])
async def test_a_killed_run_resumes_to_the_same_dataset_without_repeating_a_call(tmp_path, die_after):
    plan = recipe(num_instructions_to_generate=80, request_batch_size=2)
    reference, _ = await run_recipe(tmp_path / "ref", plan, FakeLLM())
    llm, novelty = FakeLLM(die_after=die_after), MemoryNovelty()
    with pytest.raises(KilledError):
        await run_recipe(tmp_path / "run", plan, llm, novelty)
    llm.die_after = None
    resumed, _ = await run_recipe(tmp_path / "run", None, llm, novelty)
    assert [r.id for r in resumed] == [r.id for r in reference]
    assert llm.repeated == 0


async def test_uniqueness_drops_semantic_near_duplicates(tmp_path):
    def script(request):
        k = request.idempotency_key.split("/")[-1]
        return (f"Describe the quiet morning river near the old mill {k}.\n9. Output:\nCalm.\n###\n"
                f"10. Instruction:\nDescribe the quiet morning river near the mill {k} please.\n10. Output:\nCalm too.\n###\n")

    dataset, run = await run_recipe(tmp_path, {
        "recipe": "self_instruct", "stages": {"generate": {"num_instructions_to_generate": 2, "threshold": 0.95},
                                              "uniqueness": {"enabled": True, "threshold": 0.8}}},
        FakeLLM(script=script))
    generate, uniqueness = run.stats
    assert generate.outputs == 2
    assert uniqueness.drops == {"near_duplicate_semantic": 1} and len(dataset) == 1


async def test_self_consistency_keeps_what_the_model_can_regenerate(tmp_path):
    def script(request):
        if "outputs and their tasks" in request.prompt:  # back-translation: only "Alpha" outputs come back right
            output = request.prompt.rsplit("Output:\n", 1)[1].split("\n\n")[0]
            return "Explain alpha waves in plain words.\n###" if "alpha" in output else "Something unrelated here."
        return ("Explain alpha waves in plain words.\n9. Output:\nalpha waves are slow brain rhythms\n###\n"
                "10. Instruction:\nList four kinds of clouds.\n10. Output:\ncirrus, cumulus, stratus, nimbus\n###\n")

    llm = FakeLLM(script=script)
    dataset, run = await run_recipe(tmp_path, {
        "recipe": "self_instruct", "stages": {"generate": {"num_instructions_to_generate": 2},
                                              "self_consistency": {"enabled": True, "num_trials": 3}}}, llm)
    assert [r.instruction for r in dataset] == ["Explain alpha waves in plain words."]
    sc = dataset[0].meta["self_consistency"]
    assert sc["best"] == pytest.approx(1.0) and len(sc["trials"]) == 3
    assert run.stats[1].drops == {"not_self_consistent": 1}
    keys = [k for k in llm.keys if "/self_consistency/" in k]
    assert len(keys) == 6 and all(n == 1 for n in llm.keys.values())
