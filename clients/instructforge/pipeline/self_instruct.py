"""The Self-Instruct recipe: bootstrap, then optional semantic uniqueness, code verification and
self-consistency (verification first: running tests is cheaper than back-translating).

`generate` follows the HF-hub variant (§4.3) and, with `preset: alpaca`, its ancestor (§4.7): batches
of prompts with seed (and, once there are enough, machine-made) demonstrations; parse; heuristic
filters; keep a candidate only if its ROUGE-L to every kept instruction and seed is ≤ the threshold
(the dedup service's CheckAndInsert, one ordered call per batch, as the published loop judged them
one by one). Batches run in order and each prompt's demonstrations are drawn from a random stream
named after the prompt, so a resumed run builds exactly the prompts the first one built. Bounded: at
most `max_requests` prompts, and it stops after `stall_batches` batches in a row that keep nothing.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence

from instructforge.pipeline.context import RunContext, gather_bounded, load_records, save_records
from instructforge.pipeline.filters import get_rules
from instructforge.pipeline.parsers import Triggers, parse_back_translation, parse_numbered_tasks
from instructforge.pipeline.prompts import self_instruct as prompts
from instructforge.pipeline.protocols import (
    CollectionSpec,
    Comparison,
    GenerationRequest,
    NoveltyItem,
)
from instructforge.pipeline.recipe import SelfInstructRecipe
from instructforge.pipeline.records import Record
from instructforge.pipeline.seed_tasks import SeedTask, load_seed_tasks
from instructforge.pipeline.stats import StageStats
from instructforge.pipeline.verify import verify_stage


def _demo(item: SeedTask | Record) -> prompts.Demo:
    return prompts.Demo(item.instruction, item.input, item.output)


def pick_demos(rng: random.Random, seeds: Sequence[SeedTask], machine: Sequence[Record], n: int,
               synthetic: int) -> list[prompts.Demo]:
    """n demonstrations: `synthetic` machine-made ones once that many exist, seeds for the rest, all
    distinct (the published code drew the fill-in seeds independently, repeating some), shuffled."""
    use_machine = synthetic if synthetic and len(machine) >= synthetic else 0
    chosen = [_demo(s) for s in rng.sample(list(seeds), min(n - use_machine, len(seeds)))]
    chosen += [_demo(m) for m in rng.sample(list(machine), use_machine)]
    rng.shuffle(chosen)
    return chosen


async def generate_stage(ctx: RunContext, recipe: SelfInstructRecipe, seeds: list[SeedTask],
                         stats: StageStats) -> list[Record]:
    cfg = recipe.stages.generate
    triggers = Triggers(**recipe.triggers.model_dump())
    variant = cfg.filter_variant
    if recipe.keep_programming and variant == "hf":
        variant = "hf_keep_programming"
    rules = get_rules(variant)
    collection = ctx.collection("instructions")
    await ctx.novelty.ensure_collection(collection, CollectionSpec(
        lexical_threshold=cfg.threshold, references=tuple(s.instruction for s in seeds)))
    version = prompts.template_version(triggers, with_input=recipe.with_input)
    target, limit = cfg.num_instructions_to_generate, cfg.request_limit
    kept: list[Record] = []
    batch = requests = stall = 0
    ctx.reporter.advance("generate", 0, total=target)
    while len(kept) < target:
        if requests >= limit or stall >= cfg.stall_batches:
            stats.notes["stopped_early"] = "max_requests" if requests >= limit else "stalled"
            break
        # No more prompts than the remaining target needs at the yield seen so far (a deterministic
        # function of the journal, like everything that shapes a prompt).
        per_request = len(kept) / requests if requests and kept else prompts.LIST_LENGTH - 1 - cfg.num_prompt_instructions
        needed = math.ceil((target - len(kept)) / max(1.0, per_request))
        size = min(cfg.request_batch_size, limit - requests, needed)
        calls = []
        for j in range(size):
            rng = random.Random(f"{recipe.seed}/generate/{batch}/{j}")
            demos = pick_demos(rng, seeds, kept, cfg.num_prompt_instructions, cfg.num_prompt_synthetic_instructions)
            request = GenerationRequest(
                model=ctx.model, prompt=prompts.generation_prompt(demos, triggers, with_input=recipe.with_input),
                sampling=cfg.sampling.to_sampling(), idempotency_key=ctx.key("generate", f"batch-{batch}", j),
                run_id=ctx.run_id, template_version=version)
            calls.append((len(demos) + 1, request))
        completions = await gather_bounded(
            [lambda r=r: ctx.complete(r, stats) for _, r in calls], recipe.concurrency)
        candidates: dict[str, Record] = {}
        rejected: list[tuple[Record, str]] = []
        for (first_index, request), completion in zip(calls, completions, strict=True):
            for text, finish in completion.samples():
                parsed = parse_numbered_tasks(text, first_index=first_index, finish_reason=finish,
                                              triggers=triggers, with_input=recipe.with_input)
                stats.drop_all(d.reason for d in parsed.drops)
                for example in parsed.examples:
                    stats.inputs += 1
                    record = Record(example.instruction, example.input, example.output, task="self_instruct",
                                    meta={"request": request.idempotency_key, "model": completion.model})
                    if (drop := rules.check(record.instruction, record.input, record.output)) is not None:
                        stats.drop(drop.reason)
                        rejected.append((record, drop.reason))
                    elif record.id in candidates:
                        stats.drop("duplicate_in_batch")
                    else:
                        candidates[record.id] = record
        ctx.state.put_dropped("generate", rejected)
        batch_kept = await _novelty(ctx, collection, list(candidates.values()), f"batch-{batch}", stats)
        kept += batch_kept
        stall = 0 if batch_kept else stall + 1
        batch, requests = batch + 1, requests + size
        ctx.reporter.advance("generate", len(batch_kept))
    if len(kept) > target:  # the last batch overshot: the surplus stays in the run's records
        stats.drop("beyond_target", len(kept) - target)
        ctx.state.put_dropped("generate", ((r, "beyond_target") for r in kept[target:]))
        kept = kept[:target]
    stats.outputs = len(kept)
    stats.notes.update(requests=requests, batches=batch)
    return kept


async def _novelty(ctx: RunContext, collection: str, records: list[Record], subject: str,
                   stats: StageStats, stage: str = "generate") -> list[Record]:
    """CheckAndInsert in order; the kept carry their nearest kept text and its ROUGE-L."""
    kept, dropped = [], []
    verdicts = await ctx.check_novelty(collection, [NoveltyItem(r.id, r.instruction) for r in records], stage, subject)
    for record, verdict in zip(records, verdicts, strict=True):
        record = record.with_meta(max_rouge_l=round(verdict.max_rouge_l, 4), most_similar=verdict.best_match,
                                  **({"max_cosine": round(verdict.max_cosine, 4)}
                                     if verdict.max_cosine is not None else {}))
        if verdict.kept:
            kept.append(record)
        else:
            dropped.append((record, f"near_duplicate_{verdict.reason or 'lexical'}"))
    stats.drop_all(reason for _, reason in dropped)
    ctx.state.put_dropped(stage, dropped)
    ctx.state.put_records(stage, kept, "kept")
    return kept


async def uniqueness_stage(ctx: RunContext, recipe: SelfInstructRecipe, records: list[Record],
                           stats: StageStats) -> list[Record]:
    """Drop an instruction whose embedding cosine to a kept one is ≥ the threshold (ArmelRandy compared
    with every earlier row, dropped ones included; here, as Self-Instruct's ROUGE step does, with the kept)."""
    cfg = recipe.stages.uniqueness
    collection = ctx.collection("unique")
    await ctx.novelty.ensure_collection(collection, CollectionSpec(
        lexical_threshold=1.0, semantic_threshold=cfg.threshold, semantic_comparison=Comparison.GREATER_OR_EQUAL))
    stats.inputs = len(records)
    kept = await _novelty(ctx, collection, records, "all", stats, stage="uniqueness")
    stats.outputs = len(kept)
    return kept


async def self_consistency_stage(ctx: RunContext, recipe: SelfInstructRecipe, records: list[Record],
                                 seeds: list[SeedTask], stats: StageStats) -> list[Record]:
    """Back-translation (§4.6) with its keep rule, which the published code never applied: keep an
    instruction when the best of `num_trials` regenerated instructions scores ≥ the threshold."""
    cfg = recipe.stages.self_consistency
    if ctx.similarity is None:
        raise ValueError("stages.self_consistency needs a similarity scorer (the dedup service)")
    triggers = Triggers(**recipe.triggers.model_dump())
    version = prompts.template_version(triggers, with_input=False, inverse=True)
    stats.inputs = len(records)
    ctx.reporter.advance("self_consistency", 0, total=len(records))

    def trial_request(record: Record, trial: int) -> tuple[int, GenerationRequest]:
        rng = random.Random(f"{recipe.seed}/self_consistency/{record.id}/{trial}")
        demos = [_demo(s) for s in rng.sample(seeds, min(cfg.num_prompt_instructions, len(seeds)))]
        return len(demos) + 2, GenerationRequest(
            model=ctx.model, prompt=prompts.back_translation_prompt(demos, record.output, triggers),
            sampling=cfg.sampling.to_sampling(extra_stop=(f"\n{len(demos) + 2}.",)),
            idempotency_key=ctx.key("self_consistency", record.id, trial), run_id=ctx.run_id,
            record_id=record.id, template_version=version)

    async def judge(record: Record) -> Record | None:
        trials = [trial_request(record, t) for t in range(cfg.num_trials)]
        completions = await asyncio.gather(*(ctx.complete(request, stats) for _, request in trials))
        predictions = [prediction for (next_index, _), completion in zip(trials, completions, strict=True)
                       for text in completion.texts
                       if (prediction := parse_back_translation(text, next_index=next_index, triggers=triggers))]
        ctx.reporter.advance("self_consistency")
        if not predictions:
            stats.drop("no_back_translation")
            return None
        scores = await ctx.similarity.similarity(record.instruction, predictions)
        values = [s.cosine if cfg.metric == "cosine" else s.rouge_l for s in scores]
        best = max((v for v in values if v is not None), default=None)
        trials = [[p, round(s.rouge_l, 4), None if s.cosine is None else round(s.cosine, 4)]
                  for p, s in zip(predictions, scores, strict=True)]
        record = record.with_meta(self_consistency={"best": best, "trials": trials})
        if best is None:
            stats.drop("no_similarity_score")
            return None
        if best < cfg.threshold:
            stats.drop("not_self_consistent")
            ctx.state.put_records("self_consistency", [record], "dropped", "not_self_consistent")
            return None
        return record

    judged = await gather_bounded([lambda r=r: judge(r) for r in records], max(1, recipe.concurrency // cfg.num_trials))
    kept = [r for r in judged if r is not None]
    ctx.state.put_records("self_consistency", kept, "kept")
    stats.outputs = len(kept)
    return kept


async def run_self_instruct(ctx: RunContext) -> list[Record]:
    """All enabled stages, each checkpointed; returns the final dataset (also in `dataset.jsonl`)."""
    recipe = ctx.state.recipe
    assert isinstance(recipe, SelfInstructRecipe)
    seeds = load_seed_tasks(recipe.seed_tasks)
    records = await ctx.stage("generate", lambda s: generate_stage(ctx, recipe, seeds, s), save_records, load_records)
    if recipe.stages.uniqueness.enabled:
        records = await ctx.stage("uniqueness", lambda s: uniqueness_stage(ctx, recipe, records, s),
                                  save_records, load_records)
    if recipe.stages.verify.enabled:
        records = await ctx.stage("verify", lambda s: verify_stage(ctx, recipe.stages.verify, records, s),
                                  save_records, load_records)
    if recipe.stages.self_consistency.enabled:
        records = await ctx.stage("self_consistency",
                                  lambda s: self_consistency_stage(ctx, recipe, records, seeds, s),
                                  save_records, load_records)
    ctx.state.put_records("final", records, "final")
    save_records(records, ctx.state.folder / "dataset")
    return records
