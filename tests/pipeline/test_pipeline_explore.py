"""The Explore-Instruct recipe over in-process fakes of the generator and dedup protocols."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

import pytest
from pipeline_fakes import FakeLLM, KilledError, MemoryNovelty, enrich_answer, run_recipe

from instructforge.pipeline.protocols import PermanentError
from instructforge.pipeline.state import RunState
from instructforge.pipeline.tree import DomainTree


def recipe(extend=(3, 2), enrich=(0, 20, 10), sample=120, **stages) -> dict:
    return {"recipe": "explore_instruct", "name": "ei", "stages": {
        "extend": {"max_depth": len(extend), "extend_nums": list(extend)},
        "enrich": {"enrich_nums": list(enrich)}, "sample": {"example_num": sample}, **stages}}


def shape(tree: DomainTree) -> list[tuple[int, int]]:
    return [(n.depth, len(n.children)) for n in tree.level_order()]


async def test_a_full_run(tmp_path):
    llm = FakeLLM()
    dataset, run = await run_recipe(tmp_path, recipe(), llm)
    names = [s.name for s in run.stats]
    assert names == ["extend", "enrich", "prune", "filter", "sample"]
    tree = DomainTree.load(tmp_path / "tree")
    # A call asks for at least 3 subtasks and keeps all it gets (published), so depth 1 nodes get 3.
    assert shape(tree)[:4] == [(0, 3), (1, 3), (1, 3), (1, 3)] and len(tree) == 1 + 3 + 9
    depth_sizes = {n.task_name: len(n.examples) for n in tree.nodes()}
    assert all(size >= 20 + 2 for name, size in depth_sizes.items() if tree.get(name).depth == 1)
    assert len(dataset) == 120 and len({r.id for r in dataset}) == 120
    assert {r.task.split("/")[0] for r in dataset} == {tree.root.task_name}
    extend, enrich = run.stats[0], run.stats[1]
    assert (extend.calls, extend.outputs) == (1 + 3, 12)  # one call per node: each asked for what it needs
    assert enrich.calls == 3 * 2 + 9 * 1 and enrich.outputs == 3 * 20 + 9 * 10
    assert RunState.open(tmp_path).usage()["enrich"]["calls"] == 15
    assert llm.repeated == 0


async def test_enrich_demonstrations_come_from_the_parents_finished_examples(tmp_path):
    llm = FakeLLM()
    await run_recipe(tmp_path, recipe(), llm)
    tree = DomainTree.load(tmp_path / "checkpoints" / "enrich")
    for prompt in llm.prompts:
        if "Write 10 examples" not in prompt or "Examples:\n###" not in prompt:
            continue
        subtask = re.search(r"New subtask: (\S+)\n", prompt.split("Write 10 examples")[1]).group(1)
        parent = tree.get(subtask).parent
        shown = re.findall(r"^(?:\d+\. )?Instruction: (.*)$", prompt.split("Target task:")[1], re.MULTILINE)
        assert shown and all(any(e["instruction"] == s for e in parent.examples) for s in shown)


async def test_the_child_cap_holds_even_when_the_model_answers_more(tmp_path):
    existing = DomainTree.new("Writing help", examples=[{"instruction": "Only demo.", "input": "", "output": "x"}])
    for i in range(10):
        existing.add_child(existing.root, f"Old subtask {i}")
    existing.save(tmp_path / "start")

    def greedy(request):  # always 8 subtasks, whatever was asked
        answer = FakeLLM().answer(request.prompt.replace("Propose", "Propose 8 new subtasks. Ignore:"),
                                  request.idempotency_key.partition("/")[2])
        return answer

    llm = FakeLLM(script=greedy)
    r = recipe(extend=(5,), enrich=(0, 0), sample=5)
    r["domain"] = {"tree": str(tmp_path / "start")}
    _, run = await run_recipe(tmp_path / "run", r, llm)
    tree = DomainTree.load(tmp_path / "run" / "tree")
    assert len(tree.root.children) == 12
    assert run.stats[0].drops["child_cap"] == 6 and run.stats[0].calls == 1
    assert "Propose 2 new subtasks" in llm.prompts[0]  # asked for the room left, not min 3


async def test_useless_answers_end_in_bounded_attempts(tmp_path):
    llm = FakeLLM(script=lambda r: "As an AI, I would rather not.")
    r = recipe(extend=(4, 2), enrich=(5, 30, 10))
    r["stages"]["extend"]["max_rounds_per_node"] = 3
    r["stages"]["enrich"]["max_rounds_factor"] = 2
    dataset, run = await run_recipe(tmp_path, r, llm)
    extend, enrich = run.stats[0], run.stats[1]
    assert extend.calls == 3 and extend.drops["round_without_subtasks"] == 3
    assert enrich.calls == 2 * 1 + 2  # the root alone: ceil(2 * ceil(5/10)) + 2
    assert extend.notes["nodes_short_of_children"] == ["help_with_rewriting_text"]
    assert len(dataset) == 2  # the root's own two examples


async def test_prune_flags_similar_task_names_and_sample_can_leave_them_out(tmp_path):
    def names(request):
        if "Propose" in request.prompt:
            block = "Examples:\nInstruction: Rephrase the line.\nInput: a b\nOutput: b a\n"
            return (f"New subtask: Paraphrase short texts quickly\nReason: r\n{block}\n"
                    f"New subtask: Paraphrase short texts\nReason: r\n{block}\n"
                    f"New subtask: Translate idioms\nReason: r\n{block}")
        return enrich_answer(request.prompt, 10, request.idempotency_key)

    r = recipe(extend=(3,), enrich=(0, 30), sample=1000)
    r["stages"]["sample"]["exclude_pruned"] = True
    dataset, run = await run_recipe(tmp_path, r, FakeLLM(script=names))
    tree = DomainTree.load(tmp_path / "tree")
    assert tree.pruned_names == ["paraphrase_short_texts"]
    assert run.stats[2].drops == {"similar_task_name": 1}
    assert not any(r.task.endswith("paraphrase_short_texts") for r in dataset)
    assert run.stats[4].notes["excluded_pruned"] == 1
    assert (tmp_path / "tree" / "pruned_subtasks_name.json").read_text() == '["paraphrase_short_texts"]\n'


@pytest.mark.parametrize(("scope", "kept"), [("node", 2), ("tree", 1)])
async def test_filter_within_a_node_or_across_the_tree(tmp_path, scope, kept):
    def script(request):
        if "Propose" in request.prompt:
            return ("New subtask: Alpha\nReason: r\nExamples:\n\nNew subtask: Beta\nReason: r\nExamples:\n")
        node = request.idempotency_key.split("/")[2]  # same instruction in both nodes, different answers
        return f"###\nInstruction: Say the same thing in other words.\nInput: hello there\nOutput: hi {node}\n###"

    r = recipe(extend=(2,), enrich=(0, 1), sample=100)
    r["stages"]["filter"] = {"scope": scope}
    r["domain"] = {"preset": "brainstorming"}
    dataset, run = await run_recipe(tmp_path, r, FakeLLM(script=script))
    copies = [x for x in dataset if x.instruction == "Say the same thing in other words."]
    assert len(copies) == kept
    assert run.stats[3].drops.get("near_duplicate_instruction", 0) == 2 - kept


async def test_filter_verdicts_are_asked_node_by_node_while_enrich_still_runs(tmp_path):
    class Lockstep(FakeLLM):
        """Every answer a round trip later, so the stage has lulls (no call going out) between its
        rounds of calls: where finished nodes are filtered (lulls.py)."""

        async def generate(self, request):
            await asyncio.sleep(0.05)
            return await super().generate(request)

    llm = Lockstep()
    asked: list[tuple[str, int]] = []  # (request id, LLM answers so far)

    class Watching(MemoryNovelty):
        async def check_and_insert(self, collection, items, *, request_id, scope=None):
            asked.append((request_id, len(llm.arrived)))
            return await super().check_and_insert(collection, items, request_id=request_id, scope=scope)

    _, run = await run_recipe(tmp_path, recipe(), llm, Watching())
    tree = DomainTree.load(tmp_path / "tree")
    filtered = [(rid, answers) for rid, answers in asked if rid.split("/")[1] == "filter"]
    assert sorted(rid.split("/")[2] for rid, _ in filtered) == sorted(f"node-{n.task_name}" for n in tree.nodes())
    assert min(answers for _, answers in filtered) < len(llm.arrived)  # before the last LLM answer came in
    assert run.stats[3].inputs == sum(len(n.examples) for n in tree.nodes()) + run.stats[3].drops.get(
        "near_duplicate_instruction", 0)  # the filter stage judged every example, from the journal


async def test_enrich_ends_with_its_last_node_not_with_the_filter_verdicts_still_on_their_way(tmp_path):
    # The verdicts of the nodes enrich finishes last would hold up its end (30-70 ms of the dedup
    # service at 10k examples, pipeline_bench; far more with a slow or distant service). The filter
    # stage waits for them instead, and still judges every example.
    returned: list[float] = []

    class Slow(MemoryNovelty):
        async def check_and_insert(self, collection, items, *, request_id, scope=None):
            if request_id.split("/")[1] == "filter":
                await asyncio.sleep(0.5)
                returned.append(time.time())
            return await super().check_and_insert(collection, items, request_id=request_id, scope=scope)

    _, run = await run_recipe(tmp_path, recipe(), FakeLLM(), Slow())
    tree = DomainTree.load(tmp_path / "tree")
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        (enriched,) = db.execute("SELECT finished FROM stages WHERE name = 'enrich'").fetchone()
    assert len(returned) == len(tree)  # one request per node, none asked twice
    assert enriched < max(returned) - 0.25  # the stage did not wait for the last of them
    assert run.stats[3].inputs == sum(len(n.examples) for n in tree.nodes()) + run.stats[3].drops.get(
        "near_duplicate_instruction", 0)


async def test_a_failed_filter_verdict_stops_the_run_at_the_filter_stage_and_resume_asks_again(tmp_path):
    class Down(MemoryNovelty):
        async def check_and_insert(self, collection, items, *, request_id, scope=None):
            if request_id.split("/")[1] == "filter":
                raise PermanentError("the dedup service refused the request")
            return await super().check_and_insert(collection, items, request_id=request_id, scope=scope)

    with pytest.raises(PermanentError, match="refused"):
        await run_recipe(tmp_path, recipe(), FakeLLM(), Down())
    state = RunState.open(tmp_path)
    try:
        assert state.stage_done("enrich") is not None and state.stage_done("filter") is None
    finally:
        state.close()
    llm = FakeLLM()
    dataset, _ = await run_recipe(tmp_path, None, llm)
    assert len(dataset) == 120 and not llm.prompts  # enrich was done: no LLM call made again


async def test_enrich_writes_a_finished_nodes_checkpoint_file_while_it_still_waits_on_the_llm(tmp_path):
    # Writing every node's file after the last answer took ~40 ms of the stage for 10k examples
    # (pipeline_bench); each is written in a lull once its node is done, and the stage's save writes
    # the rest. The checkpoint is the same tree either way.
    folder = tmp_path / "checkpoints" / "enrich"
    seen: list[int] = []  # node files in the checkpoint folder when each LLM call came in

    class Lockstep(FakeLLM):
        async def generate(self, request):
            seen.append(len(list(folder.glob("*.json"))) if folder.is_dir() else 0)
            await asyncio.sleep(0.05)
            return await super().generate(request)

    await run_recipe(tmp_path, recipe(), Lockstep())
    assert max(seen) > 0  # some were written while calls still went out
    enriched = DomainTree.load(folder)
    final = DomainTree.load(tmp_path / "tree")
    assert [(n.task_name, n.examples) for n in enriched.nodes()] == [(n.task_name, n.examples) for n in final.nodes()]


@pytest.mark.parametrize(("spare", "calls"), [(1, 5), (0, 4)])
async def test_a_top_up_wave_carries_spare_calls(tmp_path, spare, calls):
    def answers(request) -> str:
        if "Write 10 examples of the following subtask:" in request.prompt:  # 6 of 10 survive
            return enrich_answer(request.prompt, 6, request.idempotency_key.partition("/")[2])
        return llm.answer(request.prompt, request.idempotency_key.partition("/")[2])

    llm = FakeLLM(script=answers)
    r = recipe(extend=(2,), enrich=(0, 20), sample=40)
    r["stages"]["enrich"].update(spare_calls=spare, calls_ahead=0)
    await run_recipe(tmp_path, r, llm)
    tree = DomainTree.load(tmp_path / "tree")
    for node in tree.root.children:  # a first wave of 2 calls (12 examples), then ceil(8 / 6) + spare
        enrich_calls = [k for k in llm.keys if f"/enrich/{node.task_name}/" in k]
        assert len(enrich_calls) == calls
        # Rounds 0..3 give the 20 examples asked for (24); a spare round's answer is paid, not kept.
        assert len(node.examples) - 2 == 24  # 2 came with the node from extend


async def test_answers_arriving_in_any_order_give_the_same_run(tmp_path):
    one, two = FakeLLM(delay=0.01, seed=1, order_seed=1), FakeLLM(delay=0.01, seed=1, order_seed=2)
    first, _ = await run_recipe(tmp_path / "a", recipe(), one)
    second, _ = await run_recipe(tmp_path / "b", recipe(), two)
    assert one.arrived != two.arrived
    assert [r.id for r in first] == [r.id for r in second]
    a, b = DomainTree.load(tmp_path / "a" / "tree"), DomainTree.load(tmp_path / "b" / "tree")
    assert [(n.task_name, n.examples) for n in a.nodes()] == [(n.task_name, n.examples) for n in b.nodes()]


@pytest.mark.parametrize("die_after", [1, 3, 6, 11])
async def test_a_killed_run_resumes_to_the_same_dataset_without_repeating_a_call(tmp_path, die_after):
    reference, _ = await run_recipe(tmp_path / "ref", recipe(), FakeLLM())
    llm, novelty = FakeLLM(die_after=die_after), MemoryNovelty()
    with pytest.raises(KilledError):
        await run_recipe(tmp_path / "run", recipe(), llm, novelty)
    llm.die_after = None
    resumed, _ = await run_recipe(tmp_path / "run", None, llm, novelty)
    assert [r.id for r in resumed] == [r.id for r in reference]
    assert llm.repeated == 0 and len(llm.keys) == 1 + 3 + 15


async def test_calls_lost_in_flight_are_sent_again_under_the_same_keys(tmp_path):
    """Killed while answers were on their way: the resumed run re-sends exactly those calls, with the
    keys they had, so the generator gateway answers them from its store instead of paying again."""
    reference, _ = await run_recipe(tmp_path / "ref", recipe(), FakeLLM())
    llm, novelty = FakeLLM(delay=0.01, die_after=8), MemoryNovelty()
    with pytest.raises(KilledError):
        await run_recipe(tmp_path / "run", recipe(), llm, novelty)
    in_flight = set(llm.keys) - set(llm.arrived_keys)
    assert in_flight  # some answers never arrived
    llm.die_after = None
    resumed, _ = await run_recipe(tmp_path / "run", None, llm, novelty)
    assert [r.id for r in resumed] == [r.id for r in reference]
    assert {k for k, n in llm.keys.items() if n > 1} == in_flight


async def test_finished_stages_are_loaded_not_replayed(tmp_path):
    llm, novelty = FakeLLM(), MemoryNovelty()
    first, _ = await run_recipe(tmp_path, recipe(), llm, novelty)
    calls = len(llm.prompts)
    state = RunState.open(tmp_path)
    state._db.execute("UPDATE stages SET status = 'running' WHERE name = 'sample'")  # as if killed in sample
    state._db.commit()
    state.close()
    again, run = await run_recipe(tmp_path, None, llm, novelty)
    assert [r.id for r in again] == [r.id for r in first] and len(llm.prompts) == calls
    assert [s.name for s in run.stats] == ["extend", "enrich", "prune", "filter", "sample"]


async def test_math_answers_get_boxed_and_a_one_example_root_is_enough(tmp_path):
    def script(request):
        block = "Instruction: Add the numbers.\nInput: $2 + 3$\nOutput: Explanation: sum.\nAnswer: $5$"
        if "Propose" in request.prompt:
            return f"New subtask: Addition\nReason: basic\nExamples:\n{block}\n"
        return f"{block}\n###\nInstruction: Multiply.\nInput: $2 \\times 4$\nOutput: Explanation: product.\nAnswer: 8"

    r = recipe(extend=(1,), enrich=(0, 2), sample=10)
    r["domain"] = {"preset": "math", "examples": [{"instruction": "Halve it.", "input": "$8$", "output": "Answer: $4$"}]}
    dataset, _ = await run_recipe(tmp_path, r, FakeLLM(script=script))
    outputs = {x.output for x in dataset}
    assert "Explanation: sum.\nAnswer: $\\boxed{5}$" in outputs
    assert "Explanation: product.\nAnswer: $\\boxed{8}$" in outputs


async def test_a_custom_domain_grows_from_its_description(tmp_path):
    llm = FakeLLM()
    r = recipe(extend=(2,), enrich=(0, 10), sample=20)
    r["domain"] = {"preset": "custom", "name": "Legal drafting", "description": "Clauses for small contracts."}
    dataset, _ = await run_recipe(tmp_path, r, llm)
    assert "Target task: legal_drafting" in llm.prompts[0]
    assert "Examples:\n###" not in llm.prompts[0].split("Target task:")[1]  # no root examples, no demo block
    assert all(x.task.startswith("legal_drafting") for x in dataset) and len(dataset) == 20


async def test_demonstrations_from_the_explored_parent_let_every_node_start_at_once(tmp_path):
    r = recipe()
    r["stages"]["enrich"]["demo_pool"] = "parent_explored"
    llm = FakeLLM(delay=0.01)
    dataset, _ = await run_recipe(tmp_path, r, llm)
    explored = DomainTree.load(tmp_path / "checkpoints" / "extend")
    for prompt in llm.prompts:
        if "Write 10 examples" in prompt and "Examples:\n###" in prompt:
            subtask = re.search(r"New subtask: (\S+)\n", prompt.split("Write 10 examples")[1]).group(1)
            shown = re.findall(r"^(?:\d+\. )?Instruction: (.*)$", prompt.split("Target task:")[1], re.MULTILINE)
            assert {s for s in shown} <= {e["instruction"] for e in explored.get(subtask).parent.examples}
    again, _ = await run_recipe(tmp_path / "again", r, FakeLLM(delay=0.01, order_seed=5))
    assert [x.id for x in again] == [x.id for x in dataset]


async def test_resume_does_not_need_the_imported_tree_folder_any_more(tmp_path):
    start = DomainTree.new("Writing help", examples=[{"instruction": "Fix it.", "input": "teh", "output": "the"}])
    start.add_child(start.root, "Paraphrase", "Say it again.")
    start.save(tmp_path / "start")
    r = recipe(extend=(1, 2), enrich=(0, 10, 10), sample=30)
    r["domain"] = {"tree": str(tmp_path / "start")}
    llm, novelty = FakeLLM(die_after=7), MemoryNovelty()  # extend makes 1 + 4 calls: killed in enrich
    with pytest.raises(KilledError):
        await run_recipe(tmp_path / "run", r, llm, novelty)
    assert RunState.open(tmp_path / "run").stage_done("extend") is not None
    for path in (tmp_path / "start").iterdir():
        path.unlink()
    llm.die_after = None
    dataset, _ = await run_recipe(tmp_path / "run", None, llm, novelty)
    tree = DomainTree.load(tmp_path / "run" / "tree")
    assert tree.get("paraphrase").children and len(dataset) == 30 and llm.repeated == 0


async def test_calls_sent_ahead_of_need_change_what_is_paid_never_what_is_kept(tmp_path):
    def answers(request) -> str:
        if "Write 10 examples of the following subtask:" in request.prompt:  # 6 of 10, none every 4th round
            empty = request.idempotency_key.endswith(("/3", "/7", "/11", "/15"))
            return enrich_answer(request.prompt, 0 if empty else 6, request.idempotency_key.partition("/")[2])
        return llm.answer(request.prompt, request.idempotency_key.partition("/")[2])

    runs = {}
    for ahead in (0, 3):
        llm = FakeLLM(script=answers, delay=0.01)
        r = recipe(extend=(3,), enrich=(0, 40), sample=1000)
        r["stages"]["enrich"]["calls_ahead"] = ahead
        dataset, run = await run_recipe(tmp_path / str(ahead), r, llm)
        tree = DomainTree.load(tmp_path / str(ahead) / "tree")
        enrich_calls = sum(1 for k in llm.keys if "/enrich/" in k)
        state = RunState.open(tmp_path / str(ahead))
        assert state.usage()["enrich"]["calls"] == enrich_calls  # calls past need were paid: journaled too
        state.close()
        runs[ahead] = (dataset, [(n.task_name, n.examples) for n in tree.nodes()], run.stats[1], enrich_calls)
    (lean, lean_tree, lean_stats, lean_calls), (eager, eager_tree, eager_stats, eager_calls) = runs[0], runs[3]
    assert eager_stats.notes.get("unused_calls", 0) > 0  # calls beyond need went out (and were not kept)
    for stats, calls in ((lean_stats, lean_calls), (eager_stats, eager_calls)):  # counted as the fake saw them
        assert stats.calls == calls and stats.notes.get("unused_calls", 0) == calls - 3 * 9
        assert stats.notes["answers_used"] == 3 * 9
    assert eager_tree == lean_tree and [x.id for x in eager] == [x.id for x in lean]
    assert eager_stats.outputs == lean_stats.outputs == 3 * 42  # rounds 0..8 of each node: 7 x 6 and 2 x 0
