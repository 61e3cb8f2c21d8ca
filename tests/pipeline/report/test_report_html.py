"""The report page built from real (fake-backed) runs: figures, per-node counts, escaping, edge cases."""

from __future__ import annotations

import asyncio
import json
import re
from html.parser import HTMLParser

import pytest
from pipeline_fakes import FakeLLM, KilledError, run_recipe

from instructforge.pipeline.report import figures
from instructforge.pipeline.report.data import ReportData, TagCluster, TreeNode, collect
from instructforge.pipeline.report.html import REPORT_FILE, esc, render, write_report
from instructforge.pipeline.state import RunState
from instructforge.pipeline.tree import DomainTree

from .runs import HOSTILE_RECIPE, PAYLOAD_NAME, PAYLOAD_REASON, barren_run, big_tree


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, as a browser's parser sees them."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.tags)


def visible_text(page: str) -> str:
    """The page's text without tags, style and script (for checks that need no browser)."""
    page = re.sub(r"<(style|script)>.*?</\1>", "", page, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_every_finished_run_writes_its_report(hostile_run):
    page = (hostile_run / REPORT_FILE).read_text(encoding="utf-8")
    summary = json.loads((hostile_run / "summary.json").read_text())
    text = visible_text(page)
    for label, value in figures.totals(summary):
        assert esc(f"{label} {value}").replace("&#x27;", "'") in text
    assert summary["examples"] == 98 and "Cost per kept example $0.000" in text
    for row in figures.stage_rows(summary):
        assert f"{row.name} {row.unit} {row.inputs:,} {row.outputs:,}" in text
    drops = figures.drop_rows(summary)
    assert [d.reason for d in drops] == ["not_sampled", "near_duplicate_instruction", "duplicate_example",
                                         "similar_task_name"]
    assert all(f"{d.reason} {d.stage} {d.count:,}" in text for d in drops)


def test_tree_counts_come_from_the_runs_records(hostile_run):
    state = RunState.open(hostile_run)
    try:
        data = collect(state)
        final = state.records("final")
    finally:
        state.close()
    tree = DomainTree.load(hostile_run / "tree")
    nodes = {n.task_name: n for n in data.tree.walk()}
    assert data.tree_source == "tree" and len(nodes) == len(tree) == 13
    assert {n.task_name: n.examples for n in data.tree.walk()} == {n.task_name: len(n.examples) for n in tree.nodes()}
    assert sum(n.in_dataset for n in nodes.values()) == len(final) == 98
    filtered = next(s for s in data.summary["stages"] if s["name"] == "filter")
    assert sum(n.dropped for n in nodes.values()) == filtered["drops"]["near_duplicate_instruction"] == 19
    payload = next(n for n in nodes.values() if n.name == PAYLOAD_NAME)
    assert (payload.examples, payload.dropped, payload.reason) == (2, 19, PAYLOAD_REASON)
    assert payload.drop_rate == pytest.approx(19 / 21)
    assert [n.task_name for n in nodes.values() if n.pruned] == ["paraphrase_short_texts"]
    assert (data.state, data.models) == ("finished", ["fake-model"])
    assert data.started <= data.finished


def test_model_written_text_is_escaped_everywhere():
    evil = '<x-evil a="1">&'
    root = TreeNode(evil, evil, evil, 3, 1, 1, pruned=True, children=[TreeNode(evil, "c", evil)])
    summary = {"run_id": evil, "models": [evil], "examples": 1, "usage": {"cost_usd": 0.5},
               "stages": [{"name": evil, "inputs": 2, "outputs": 1, "drops": {evil: 1}}]}
    data = ReportData(evil, "explore_instruct", evil, "finished", 0.0, 1.0, summary, root, evil,
                      [TagCluster(evil, 3, (evil, evil))])
    page = render(data)
    assert "<x-evil" not in page and 'a="1"' not in page
    places = {"run id": 1, "name (title, h1)": 2, "models": 1, "stage (funnel, drops)": 2, "drop reason": 1,
              "node names": 2, "root's task name": 1, "node reasons": 2, "tree source": 1, "cluster": 3}
    assert page.count("&lt;x-evil a=&quot;1&quot;&gt;&amp;") == sum(places.values())


def test_the_page_asks_for_nothing_outside_itself(hostile_run):
    page = (hostile_run / REPORT_FILE).read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in csp and re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", csp)
    tags = Tags(page)
    assert not [t for t, _ in tags.tags if t in ("link", "img", "iframe", "object", "embed", "b", "x-evil")]
    assert not [a for _, attrs in tags.tags for a in attrs if a in ("src", "href", "action") or a.startswith("on")]
    assert tags.count("script") == 1 and page.startswith("<!doctype html>")
    assert tags.count("details") == 13


def test_a_run_that_kept_nothing(tmp_path):
    folder = barren_run(tmp_path / "run")
    text = visible_text((folder / REPORT_FILE).read_text())
    assert "Kept examples 0" in text and "Cost per kept example –" in text
    assert "Domain tree" not in text and "generate examples 0 0" in text
    assert "incomplete_item generate 2 100.0%" in text and "stopped early: stalled" in text


def test_a_run_not_started_and_an_interrupted_one(tmp_path):
    from instructforge.pipeline.recipe import parse_recipe

    state = RunState.create(tmp_path / "new", parse_recipe(HOSTILE_RECIPE))
    try:
        text = visible_text(write_report(state).read_text())
    finally:
        state.close()
    assert "not started" in text and "No stage has finished yet." in text and "Nothing was dropped." in text
    assert "No tree yet" in text

    with pytest.raises(KilledError):
        asyncio.run(run_recipe(tmp_path / "cut", HOSTILE_RECIPE, FakeLLM(die_after=6)))
    state = RunState.open(tmp_path / "cut")
    try:
        data = collect(state)
        path = write_report(state)
    finally:
        state.close()
    assert (data.state, data.finished, data.tree_source) == ("interrupted or running", None, "checkpoints/extend")
    assert len(data.tree.walk()) == 13 and path.exists()


def test_tag_clusters_have_a_section_once_the_tagger_gives_them(hostile_run):
    state = RunState.open(hostile_run)
    try:
        data = collect(state)
    finally:
        state.close()
    assert "Tag clusters" not in render(data)
    data.tag_clusters = [TagCluster("rewrite/tone", 30, ("Make it friendlier.",)), TagCluster("translate", 10)]
    text = visible_text(render(data))
    assert "Tag clusters" in text and "rewrite/tone 30 75.0% Make it friendlier." in text


def test_ten_thousand_nodes_stay_a_few_megabytes():
    tree = big_tree(100, 99)
    page = render(ReportData("big-1", "explore_instruct", "big", "finished", None, None, {}, tree))
    assert len(tree.walk()) == 10_001 and Tags(page).count("details") == 10_001
    per_node = len(page.encode()) / 10_001
    assert per_node < 400, per_node  # ~3.7 MB; Chromium parses it in about a second on a busy 2-core box


def test_node_drop_rates_are_marked():
    nodes = [TreeNode("a", "a", examples=10), TreeNode("b", "b", examples=7, dropped=3),
             TreeNode("c", "c", examples=1, dropped=9), TreeNode("d", "d")]
    page = render(ReportData("r", "explore_instruct", "r", "finished", None, None, {},
                             TreeNode("root", "root", children=nodes)))
    marks = re.findall(r'(?:<span class="(\w+)">)?(\d+) dropped \(([^)]*)\)', page)
    assert marks[1:] == [("", "0", "0.0%"), ("hi", "3", "30.0%"), ("vhi", "9", "90.0%"), ("", "0", "–")]


@pytest.mark.parametrize(("value", "text"), [(None, "–"), (0, "$0"), (0.000158333, "$0.000158"), (0.019, "$0.0190"),
                                             (3.14159, "$3.1416"), (1234.5, "$1,234.50")])
def test_costs_read_as_dollars(value, text):
    assert figures.fmt_cost(value) == text


@pytest.mark.parametrize(("seconds", "text"), [(None, "–"), (0.04, "0.0 s"), (9.96, "10.0 s"), (42.4, "42 s"),
                                               (61, "1 min 01 s"), (3 * 3600 + 5 * 60 + 7, "3 h 05 min")])
def test_durations_read_as_a_person_would_say_them(seconds, text):
    assert figures.fmt_duration(seconds) == text
