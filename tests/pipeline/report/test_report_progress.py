"""The progress display on a terminal and in a log, and the end-of-run summary table."""

from __future__ import annotations

import io
import json
import re

from pipeline_fakes import FakeLLM, MemoryNovelty, MemorySimilarity
from rich.console import Console

from instructforge.pipeline.recipe import parse_recipe
from instructforge.pipeline.report import figures
from instructforge.pipeline.report.progress import LineProgress, RichProgress, print_summary, progress_for
from instructforge.pipeline.runner import execute
from instructforge.pipeline.state import RunState
from instructforge.pipeline.stats import StageStats

from .runs import HOSTILE_RECIPE, hostile

STAGES = ["extend", "enrich", "prune", "filter", "sample"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def console(terminal: bool) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=120, color_system="standard" if terminal else None)


async def run_with(reporter, folder):
    state = RunState.create(folder, parse_recipe(HOSTILE_RECIPE))
    try:
        with reporter:
            return await execute(state, FakeLLM(script=hostile), MemoryNovelty(), MemorySimilarity(), reporter=reporter)
    finally:
        state.close()


async def test_a_terminal_gets_a_bar_per_stage(tmp_path):
    out = console(terminal=True)
    reporter = progress_for(out)
    assert isinstance(reporter, RichProgress)
    run = await run_with(reporter, tmp_path / "run")
    text = out.file.getvalue()
    assert "\x1b[" in text  # drawn in place
    final = text.rpartition("\x1b[2K")[2]  # the last frame, once every stage is done
    rows = [line for line in final.splitlines() if "✓" in line]
    assert [row.split()[0] for row in rows] == STAGES
    done = dict(zip(STAGES, (re.search(r"(\d+)/(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", r)).groups() for r in rows),
                    strict=True))
    enrich = next(s for s in run.stats if s.name == "enrich")
    assert done["enrich"] == (str(enrich.outputs), str(enrich.outputs))  # advanced to its total
    assert done["prune"] == ("11", "11")  # a stage that never advances ends at its outputs


def test_a_bar_shows_its_total_and_an_eta():
    out, clock = console(terminal=True), Clock()
    reporter = RichProgress(out, clock=clock, auto_refresh=False)
    reporter.stage_started("generate", None)
    reporter.advance("generate", 0, total=100)
    clock.now = 10.0
    reporter.advance("generate", 25)
    clock.now = 20.0
    reporter.advance("generate", 25)
    frame = Console(file=io.StringIO(), width=120)
    frame.print(reporter.progress.make_tasks_table(reporter.progress.tasks))
    line = frame.file.getvalue()
    assert re.search(r"generate\s+━+\s+50/100\s+50%\s+0:00:20\s+0:00:\d\d", line), line
    assert "-:--:--" not in line  # an estimate, not the unknown-ETA placeholder


async def test_a_log_gets_plain_lines(tmp_path):
    out = console(terminal=False)
    reporter = progress_for(out)
    assert isinstance(reporter, LineProgress)
    run = await run_with(reporter, tmp_path / "run")
    lines = out.file.getvalue().splitlines()
    assert "\x1b" not in out.file.getvalue()
    assert [ln.split()[0] for ln in lines if ln.endswith("started")] == [f"[{s}]" for s in STAGES]
    finished = [ln for ln in lines if " done in " in ln]
    filtered = next(s for s in run.stats if s.name == "filter")
    assert len(finished) == 5 and finished[3].startswith("[filter] done in ")
    assert f"{filtered.inputs:,} in, {filtered.outputs:,} out, 19 dropped (near_duplicate_instruction 19)" in finished[3]
    steps = [int(m.group(1)) for ln in lines if (m := re.match(r"\[enrich\] \d+/\d+ \((\d+)%\)", ln))]
    assert steps and steps == sorted(steps) and len(steps) <= 10  # at most one line per tenth


def test_log_lines_carry_counts_and_an_eta():
    out, clock = console(terminal=False), Clock()
    reporter = LineProgress(out, clock=clock)
    reporter.stage_started("generate", None)
    reporter.advance("generate", 0, total=200)
    clock.now = 30.0
    reporter.advance("generate", 15)  # 7.5%: no line yet
    reporter.advance("generate", 45)  # 30%: one line, not three
    clock.now = 95.0
    stats = StageStats("generate", inputs=260, outputs=200, calls=12)
    stats.drop("too_short", 60)
    reporter.stage_finished("generate", stats)
    assert out.file.getvalue().splitlines() == [
        "[generate] started",
        "[generate] 60/200 (30%), 30 s elapsed, about 1 min 10 s left",
        "[generate] done in 1 min 35 s: 260 in, 200 out, 60 dropped (too_short 60), 12 LLM calls",
    ]


def test_the_summary_table_has_the_runs_figures(hostile_run):
    summary = json.loads((hostile_run / "summary.json").read_text())
    out = console(terminal=False)
    print_summary(summary, out)
    text = out.file.getvalue()
    for label, value in figures.totals(summary):
        assert re.search(rf"{re.escape(label)}\s+{re.escape(value)}", text), (label, value)
    for stage in summary["stages"]:
        assert re.search(rf"\b{stage['name']}\s+\w+\s+{stage['inputs']:,}\s+{stage['outputs']:,}\s", text)
    share = figures.fmt_share(19, sum(summary["drops"].values()))
    assert share == "25.0%" and re.search(rf"near_duplicate_instruction\s+filter\s+19\s+{re.escape(share)}", text)
    assert "Records per stage" in text and "Drops by reason" in text
