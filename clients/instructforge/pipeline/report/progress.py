"""The progress display of `iforge run` (a `stats.Reporter`) and the summary printed at the end.

On a terminal: a rich progress bar per stage with its total and ETA (totals arrive late or grow:
a stage starts with none and sets it once known). Anywhere else (CI logs, a pipe, `nohup`): plain
lines, one when a stage starts, one per tenth of its total and one when it finishes, so a log stays
short and greppable and carries no control codes. The summary table shows the same figures as
`summary.json` and the HTML report (see `figures`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Self

from rich import box
from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from instructforge.pipeline.report import figures
from instructforge.pipeline.stats import StageStats

Clock = Callable[[], float]


def _finished_line(stage: str, stats: StageStats, seconds: float) -> str:
    dropped = sum(stats.drops.values())
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in stats.drops.most_common())
    return (f"[{stage}] done in {figures.fmt_duration(seconds)}: {stats.inputs:,} in, {stats.outputs:,} out, "
            f"{dropped:,} dropped" + (f" ({reasons})" if reasons else "") + f", {stats.calls:,} LLM calls")


class RichProgress:
    """One rich task per stage: description, bar, done/total, percent, elapsed, ETA."""

    def __init__(self, console: Console | None = None, *, clock: Clock | None = None, auto_refresh: bool = True):
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("{task.description:<18}", markup=False), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(elapsed_when_finished=True),
            console=self.console, auto_refresh=auto_refresh, **({"get_time": clock} if clock else {}))
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, stage: str, total: int | None = None) -> TaskID:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        return self.tasks[stage]

    def stage_started(self, stage: str, total: int | None) -> None:
        self._task(stage, total)

    def advance(self, stage: str, amount: int = 1, *, total: int | None = None) -> None:
        task = self._task(stage, total)
        if total is not None:
            self.progress.update(task, total=total)
        if amount:
            self.progress.advance(task, amount)

    def stage_finished(self, stage: str, stats: StageStats) -> None:
        """The bar ends full at what was done (a stage may stop short of its target; the count says so)."""
        task = self._task(stage)
        done = int(self.progress.tasks[task].completed) or stats.outputs
        self.progress.update(task, total=done, completed=done, description=f"{stage} ✓")
        self.progress.stop_task(task)


class LineProgress:
    """Plain lines for logs: start, each 10% of a known total (with an ETA), finish."""

    def __init__(self, console: Console | None = None, *, clock: Clock = time.monotonic, step: float = 0.1):
        self.console = console or Console()
        self.clock, self.step = clock, step
        self.started: dict[str, float] = {}
        self.done: dict[str, int] = {}
        self.totals: dict[str, int | None] = {}
        self.next_mark: dict[str, float] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stage_started(self, stage: str, total: int | None) -> None:
        self.started[stage], self.done[stage], self.totals[stage] = self.clock(), 0, total
        self.next_mark[stage] = self.step
        self._say(f"[{stage}] started" + (f", {total:,} to do" if total else ""))

    def advance(self, stage: str, amount: int = 1, *, total: int | None = None) -> None:
        if stage not in self.started:
            self.stage_started(stage, total)
        if total is not None:
            self.totals[stage] = total
        self.done[stage] += amount
        total, done = self.totals[stage], self.done[stage]
        if not total or done / total < self.next_mark[stage] or done >= total:
            return
        while self.next_mark[stage] <= done / total:
            self.next_mark[stage] += self.step
        elapsed = self.clock() - self.started[stage]
        eta = elapsed / done * (total - done) if done else None
        self._say(f"[{stage}] {done:,}/{total:,} ({100 * done / total:.0f}%), {figures.fmt_duration(elapsed)} "
                  f"elapsed, about {figures.fmt_duration(eta)} left")

    def stage_finished(self, stage: str, stats: StageStats) -> None:
        seconds = self.clock() - self.started.get(stage, self.clock())
        self._say(_finished_line(stage, stats, seconds))


def progress_for(console: Console | None = None, *, clock: Clock | None = None) -> RichProgress | LineProgress:
    """Bars when the console is a terminal, lines otherwise; use as `with progress_for() as reporter:`."""
    console = console or Console()
    if console.is_terminal:
        return RichProgress(console, clock=clock)
    return LineProgress(console, clock=clock or time.monotonic)


def summary_table(summary: Mapping[str, Any]) -> Group:
    """The end-of-run summary: totals, then records per stage, then drops by reason."""
    totals = Table(title=Text(f"Run {summary.get('run_id', '')}"), box=box.SIMPLE, show_header=False, title_justify="left")
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    for label, value in figures.totals(summary):
        totals.add_row(Text(label), Text(value))
    stages = Table(title="Records per stage", box=box.SIMPLE, title_justify="left")
    for name in ("Stage", "Counts", "In", "Out", "Dropped", "LLM calls", "Tokens", "Cost", "Wall time"):
        stages.add_column(name, justify="left" if name in ("Stage", "Counts") else "right")
    for s in figures.stage_rows(summary):
        stages.add_row(Text(s.name), s.unit, f"{s.inputs:,}", f"{s.outputs:,}", f"{s.dropped:,}", f"{s.calls:,}",
                       f"{s.tokens:,}", figures.fmt_cost(s.cost_usd), figures.fmt_duration(s.wall_s))
    parts: list[Table] = [totals, stages]
    drops = figures.drop_rows(summary)
    if drops:
        table = Table(title="Drops by reason", box=box.SIMPLE, title_justify="left")
        for name in ("Reason", "Stage", "Count", "Share"):
            table.add_column(name, justify="right" if name in ("Count", "Share") else "left")
        total = sum(d.count for d in drops)
        for d in drops:
            table.add_row(Text(d.reason), Text(d.stage), f"{d.count:,}", figures.fmt_share(d.count, total))
        parts.append(table)
    return Group(*parts)


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(summary_table(summary))
