"""The report as a person sees it: rendered by headless Chromium from file://, clicked, read back."""

from __future__ import annotations

import json
import re
import time

import pytest

from instructforge.pipeline.report import figures
from instructforge.pipeline.report.data import ReportData
from instructforge.pipeline.report.html import REPORT_FILE, render
from instructforge.pipeline.tree import DomainTree

from .browser import probe
from .runs import PAYLOAD_NAME, PAYLOAD_REASON, barren_run, big_tree

SEES = """
const seen = (t) => document.body.innerText.includes(t);
const summary = (name) => [...document.querySelectorAll('#tree .name')].find((e) => e.textContent === name)
  .closest('summary');
"""

INTERACTION = SEES + """
const out = {controls: !document.getElementById('tree-controls').hidden, pwned: window.__pwned ?? null,
  images: document.images.length, bold: document.querySelectorAll('#tree b').length,
  scripts: document.scripts.length, title: document.title};
out.header = ['Run report: hostile', 'explore-instruct', 'finished', 'fake-model'].filter(seen);
out.figures = FIGURES.filter(seen);
out.root_and_children = [ROOT, ...CHILDREN].filter(seen);
out.payload = [PAYLOAD_NAME].filter(seen);
out.pruned_badge = summary(PRUNED).innerText.includes('pruned');
out.grandchildren_before = GRANDCHILDREN.filter(seen);
summary(CHILDREN[0]).click();  // a person clicks the first subtask
out.after_click = GRANDCHILDREN.filter(seen);
out.reason_before = seen(PAYLOAD_REASON);
summary(PAYLOAD_NAME).click();
out.reason_after = seen(PAYLOAD_REASON);
document.getElementById('expand-all').click();
out.after_expand_all = GRANDCHILDREN.filter(seen);
document.getElementById('collapse-all').click();
out.after_collapse_all = GRANDCHILDREN.filter(seen);
out.children_after_collapse_all = CHILDREN.filter(seen);
const filter = document.getElementById('tree-filter');
filter.value = GRANDCHILDREN.at(-1).toLowerCase();
filter.dispatchEvent(new Event('input'));
out.filtered = [...CHILDREN, ...GRANDCHILDREN].filter(seen);
out.filter_status = document.getElementById('tree-filter-status').textContent;
report(out);
"""


def test_a_person_sees_the_run_and_can_open_the_tree(hostile_run, tmp_path):
    tree = DomainTree.load(hostile_run / "tree")
    children = [n.raw_task_name for n in tree.root.children]
    grandchildren = [g.raw_task_name for c in tree.root.children for g in c.children]
    first_born = [g.raw_task_name for g in tree.root.children[0].children]
    summary = json.loads((hostile_run / "summary.json").read_text())
    shown = [figures.fmt_cost(summary["cost_per_example_usd"]), "near_duplicate_instruction", "similar_task_name",
             "not_sampled", "Stage funnel", "Drops by reason"] + [s["name"] for s in summary["stages"]]
    seen = probe(hostile_run / REPORT_FILE, INTERACTION, tmp_path, ROOT=tree.root.raw_task_name, CHILDREN=children,
                 GRANDCHILDREN=grandchildren, PRUNED="Paraphrase short texts", PAYLOAD_NAME=PAYLOAD_NAME,
                 PAYLOAD_REASON=PAYLOAD_REASON, FIGURES=shown)
    # The page's own script ran under its policy; nothing a model wrote became markup or code.
    assert seen["controls"] is True
    assert (seen["pwned"], seen["images"], seen["bold"], seen["scripts"]) == (None, 0, 0, 2)
    assert seen["title"] == "Run report: hostile"
    assert len(seen["header"]) == 4 and seen["figures"] == shown
    assert seen["root_and_children"] == [tree.root.raw_task_name, *children]
    assert seen["payload"] == [PAYLOAD_NAME]  # shown as the text the model wrote
    assert seen["pruned_badge"] is True
    # Only the root starts open; opening a node shows its children and nobody else's.
    assert seen["grandchildren_before"] == []
    assert seen["after_click"] == first_born and len(first_born) == 3
    assert (seen["reason_before"], seen["reason_after"]) == (False, True)
    assert seen["after_expand_all"] == grandchildren and seen["after_collapse_all"] == []
    assert seen["children_after_collapse_all"] == children
    # Finding a node by name shows it with its ancestors, and nothing else.
    assert seen["filtered"] == [children[-1], grandchildren[-1]]
    assert seen["filter_status"] == "1 matching node"


LARGE = SEES + """
const names = [...document.querySelectorAll('#tree .name')];
const out = {nodes: document.querySelectorAll('#tree li').length, names: names.length,
  first_level: FIRST_LEVEL.filter(seen), deep_before: seen(DEEP)};
document.getElementById('expand-all').click();
out.deep_after = seen(DEEP);
report(out);
"""


@pytest.mark.slow
def test_ten_thousand_nodes_render(tmp_path, capsys):
    tree = big_tree(100, 99)
    page = tmp_path / "big.html"
    page.write_text(render(ReportData("big-1", "explore_instruct", "big", "finished", None, None, {}, tree)))
    deep = tree.children[-1].children[-1].name
    start = time.monotonic()
    seen = probe(page, LARGE, tmp_path, FIRST_LEVEL=[c.name for c in tree.children[:3]], DEEP=deep)
    with capsys.disabled():  # a figure for the record, not a timed assertion
        print(f"\n10,001-node report: {page.stat().st_size / 1e6:.1f} MB, rendered, expanded and read "
              f"in {time.monotonic() - start:.1f} s")
    assert seen["nodes"] == seen["names"] == 10_001
    assert len(seen["first_level"]) == 3 and (seen["deep_before"], seen["deep_after"]) == (False, True)


EMPTY = SEES + """
report({text: document.body.innerText});
"""


def test_a_run_that_kept_nothing_reads_sensibly(tmp_path):
    folder = barren_run(tmp_path / "run")
    seen = probe(folder / REPORT_FILE, EMPTY, tmp_path)
    text = seen["text"]
    assert "Kept examples\t0" in text and "Cost per kept example\t–" in text
    assert re.search(r"incomplete_item\tgenerate\t2\t\s*100\.0%", text) and "stopped early: stalled" in text
    assert "Domain tree" not in text and "NaN" not in text and "undefined" not in text
