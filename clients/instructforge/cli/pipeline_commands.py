"""`iforge run | resume | status | export | recipe-schema`: the data person's side of the CLI.

Each command prints what a person needs and exits 0 on success, 2 on bad input (a recipe, a run
folder, a missing LLM: one message naming what is wrong), 3 when a run stopped early but can be
resumed (its state is intact; the message says how).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_RESUMABLE = 3


def add_commands(commands: argparse._SubParsersAction) -> None:
    from instructforge.pipeline.exports import FORMATS

    run = commands.add_parser("run", help="run a recipe (Self-Instruct, Explore-Instruct) into a run folder")
    run.add_argument("recipe", help="the recipe's YAML file")
    run.add_argument("--run-dir", help="the run folder to create (default: runs/<run id>)")
    run.add_argument("--dry-run", action="store_true",
                     help="validate the recipe and print the plan with its expected LLM calls; call nothing")
    resume = commands.add_parser("resume", help="carry on an interrupted run; finished calls are not paid again")
    resume.add_argument("run_dir", help="the run folder")
    status = commands.add_parser("status", help="where a run stands (reads the folder only)")
    status.add_argument("run_dir", help="the run folder")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    export = commands.add_parser("export", help="write a finished run's dataset in a training format")
    export.add_argument("run_dir", help="the run folder")
    export.add_argument("--format", required=True, choices=FORMATS, help="the output format")
    export.add_argument("--out", help="output folder (default: <run>/exports/<format>)")
    commands.add_parser("recipe-schema", help="print the JSON schema of recipe files (for editors)")


def _error(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"iforge: error: {message}", file=sys.stderr)
    return code


async def _execute(state) -> int:
    try:
        return await _run_and_report(state)
    finally:
        state.close()  # commits the journal's last rows however the run ended


async def _run_and_report(state) -> int:
    from instructforge.pipeline import runner
    from instructforge.pipeline.calls import RunInterrupted
    from instructforge.pipeline.llm import key_source
    from instructforge.pipeline.protocols import CallsRejected, RunRefused
    from instructforge.pipeline.report.progress import print_summary, progress_for
    from instructforge.pipeline.session import open_session

    llm = None
    try:
        async with open_session(state.recipe, state.folder) as session:
            llm = session.llm
            embedded = f" (embedded: {', '.join(session.embedded)})" if session.embedded else ""
            print(f"run {state.run_id} in {state.folder}; LLM: {session.llm.description}{embedded}", flush=True)
            with progress_for() as progress:
                result = await runner.execute(state, session.generator, session.novelty, session.similarity,
                                              verifier=session.verifier, reporter=progress,
                                              model=session.llm.model, backlog=session.backlog)
    except RunInterrupted as stopped:
        return _error(f"{stopped}\nthe run's state is saved; carry on with: iforge resume {state.folder}",
                      EXIT_RESUMABLE)
    except CallsRejected as rejected:
        return _error(f"{rejected}\nthe run stopped with these rejections not recorded. If the recipe causes "
                      f"them (a prompt over the model's context, a setting the model refuses), fix it and start "
                      f"a new run; if the gateway or the provider does (its route, a quota), fix that and carry "
                      f"on with: iforge resume {state.folder}")
    except RunRefused as refused:
        key = f": {key_source(llm)}" if llm is not None else ""
        return _error(f"{refused}\nthe run stopped with nothing recorded as failed; once this is fixed (the "
                      f"IFORGE_TOKEN, the recipe's model, the provider's key{key}), carry on with: "
                      f"iforge resume {state.folder}")
    print_summary(result.summary)
    print(f"dataset: {state.folder / 'dataset.jsonl'}; report: {state.folder / 'report.html'}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    from instructforge.pipeline.exports import ExportError, export_run
    from instructforge.pipeline.llm import NoLlmAvailable, select_llm
    from instructforge.pipeline.plan import plan_recipe
    from instructforge.pipeline.recipe import load_recipe, recipe_json_schema
    from instructforge.pipeline.recipe_errors import RecipeError
    from instructforge.pipeline.runner import status
    from instructforge.pipeline.session import service_addresses
    from instructforge.pipeline.state import RunState, RunStateError, new_run_id

    try:
        if args.command == "recipe-schema":
            print(json.dumps(recipe_json_schema(), indent=2))
            return 0
        if args.command == "run":
            recipe = load_recipe(args.recipe)
            if args.dry_run:
                print("\n".join(plan_recipe(recipe).lines()))
                return 0
            remote = service_addresses(recipe, os.environ)["generator"] is not None
            select_llm(recipe.model, os.environ, gateway_is_remote=remote)  # fail before making a folder
            folder = Path(args.run_dir) if args.run_dir else Path("runs") / new_run_id(recipe.name)
            return asyncio.run(_execute(RunState.create(folder, recipe)))
        if args.command == "resume":
            return asyncio.run(_execute(RunState.open(args.run_dir)))
        if args.command == "status":
            report = status(args.run_dir)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                print(f"{report['run_id']} ({report['recipe']}): {report['state']}")
                for stage in report["stages"]:
                    counts = f" {stage['outputs']} out, {stage['drops']} dropped" if "outputs" in stage else ""
                    print(f"  {stage['name']:<12} {stage['status']}{counts}")
                print(f"  records: {report['records']}; LLM calls: {int(report['usage']['calls'])}")
            return 0
        if args.command == "export":
            with_state = RunState.open(args.run_dir)
            try:
                for path in export_run(with_state, args.format, args.out):
                    print(path)
            finally:
                with_state.close()
            return 0
    except (RecipeError, RunStateError, ExportError, NoLlmAvailable) as error:
        return _error(str(error))
    raise AssertionError(f"not a pipeline command: {args.command}")
