"""What the run report shows, gathered from a run folder: header, summary, and the domain tree.

The report is a view of the folder, never a second source of truth: every figure comes from the
run's summary (`runner.summarize`, the same dict as `summary.json`), and the tree's per-node counts
from its checkpoints and the final dataset. A node's drops are its examples after the last stage that
adds examples (enrich, else extend) minus those it has now: the journal's records cannot say, as they
are keyed by content and a model that repeats itself repeats ids. An interrupted run still has a
report, drawn from its latest tree checkpoint.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructforge.pipeline.state import RunState
from instructforge.pipeline.tree import META_FILE, DomainTree


@dataclass
class TreeNode:
    """One domain-tree node as the report shows it; counts are examples."""

    name: str  # the model's raw task name
    task_name: str
    reason: str = ""
    examples: int = 0  # in the node after every stage
    dropped: int = 0  # removed from the node after it was grown (by the filter)
    in_dataset: int = 0
    pruned: bool = False
    children: list[TreeNode] = field(default_factory=list)

    @property
    def drop_rate(self) -> float | None:
        seen = self.examples + self.dropped
        return self.dropped / seen if seen else None

    def walk(self) -> list[TreeNode]:
        """Every node, pre-order, without recursion (trees may be deep)."""
        out, stack = [], [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


@dataclass
class TagCluster:
    """Hook for the tagger's clusters (not built yet): a label, how many examples, a few of them."""

    label: str
    size: int
    examples: tuple[str, ...] = ()


@dataclass
class ReportData:
    run_id: str
    recipe: str
    name: str
    state: str  # "finished", "interrupted or running", "not started"
    started: float | None
    finished: float | None
    summary: dict[str, Any]
    tree: TreeNode | None = None
    tree_source: str = ""  # the folder (relative to the run) the tree was read from
    tag_clusters: list[TagCluster] | None = None

    @property
    def models(self) -> list[str]:
        return list(self.summary.get("models") or [])


def tree_nodes(tree: DomainTree, grown: Mapping[str, int] | None = None,
               in_dataset: Mapping[str, int] | None = None) -> TreeNode:
    """The report's copy of a domain tree; `grown` (examples at their peak) and `in_dataset` are
    keyed by task name."""
    grown, in_dataset = grown or {}, in_dataset or {}
    made: dict[int, TreeNode] = {}
    for node in tree.nodes():  # pre-order: a parent is made before its children
        name, size = node.task_name, len(node.examples)
        made[id(node)] = TreeNode(node.raw_task_name, name, node.reason, size, max(0, grown.get(name, size) - size),
                                  in_dataset.get(name, 0), node.pruned)
        if node.parent is not None:
            made[id(node.parent)].children.append(made[id(node)])
    return made[id(tree.root)]


def latest_tree(state: RunState) -> tuple[DomainTree, str] | None:
    """The run's final tree, else the checkpoint of the last finished stage that saved a tree."""
    final = state.folder / "tree"
    if (final / META_FILE).exists():
        return DomainTree.load(final), "tree"
    for stage in reversed([s for s in state.stages() if s["status"] == "done"]):
        path = state.checkpoint_path(stage["name"])
        if (path / META_FILE).exists():
            return DomainTree.load(path), str(Path("checkpoints") / stage["name"])
    return None


def grown_sizes(state: RunState) -> dict[str, int]:
    """Examples per node once grown: the checkpoint of enrich, else of extend; empty if neither is done."""
    for stage in ("enrich", "extend"):
        path = state.checkpoint_path(stage)
        if state.stage_done(stage) is not None and (path / META_FILE).exists():
            return {n.task_name: len(n.examples) for n in DomainTree.load(path).nodes()}
    return {}


def collect(state: RunState, summary: dict[str, Any] | None = None, *,
            tag_clusters: list[TagCluster] | None = None) -> ReportData:
    """Everything the report shows; `summary` defaults to what `runner.summarize` makes now."""
    from instructforge.pipeline.runner import summarize  # the runner writes reports: import late

    counts = state.record_counts()
    kept = sum(n for (_, status, _), n in counts.items() if status == "final")
    summary = summary if summary is not None else summarize(state, kept)
    stages = state.stages()
    started = min((s["started"] for s in stages if s["started"]), default=None)
    finished = max((s["finished"] for s in stages if s["finished"]), default=None)
    if started is None:
        started = json.loads((state.folder / "run.json").read_text()).get("created")
    done = bool(stages) and all(s["status"] == "done" for s in stages)
    run_state = ("finished" if done and (state.folder / "dataset.jsonl").exists()
                 else "not started" if not stages else "interrupted or running")
    data = ReportData(state.run_id, state.recipe.recipe, state.recipe.name, run_state, started,
                      finished if run_state == "finished" else None, summary, tag_clusters=tag_clusters)
    found = latest_tree(state) if state.recipe.recipe == "explore_instruct" else None
    if found is not None:
        tree, data.tree_source = found
        in_dataset = Counter(r.task.rpartition("/")[2] for r in state.records("final"))
        data.tree = tree_nodes(tree, grown_sizes(state), in_dataset)
    return data
