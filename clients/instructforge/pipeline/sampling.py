"""Explore-Instruct's `sample` stage: a dataset of N examples balanced over the tree's nodes.

The published rule (SEED-ALGORITHMS §1.10), kept draw for draw so that the same seed gives the same
sample: nodes in level order up to `max_depth`; S = sum of min(len, 500); each node gives
k = min(int(N * min(len, 500) / S) + 1, len) examples drawn without replacement; the concatenation is
cut to N. Its defects are fixed: pruned nodes are really left out when asked (the published flag did
nothing), and a shortfall is topped up without crashing and without repeats — first from the root's
examples not yet drawn (the published source, which raised when the root was small and could repeat
an example), then from the other nodes' undrawn examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from instructforge.pipeline.tree import DomainTree, Node

PER_NODE_SHARE_CAP = 500


@dataclass
class SampleResult:
    picked: list[tuple[Node, dict[str, Any]]] = field(default_factory=list)
    eligible_nodes: int = 0
    excluded_pruned: int = 0
    cut: int = 0  # drawn, then cut to N (the deepest nodes lose first)
    topped_up_from_root: int = 0
    topped_up_from_others: int = 0
    shortfall: int = 0  # still missing: the tree holds fewer than N eligible examples


def eligible_nodes(tree: DomainTree, max_depth: int, exclude_pruned: bool) -> tuple[list[Node], int]:
    nodes, excluded = [], 0
    for node in tree.level_order():
        if node.depth > max_depth:
            continue
        if exclude_pruned and node.pruned:
            excluded += 1
            continue
        nodes.append(node)
    return nodes, excluded


def sample_tree(tree: DomainTree, n: int, rng: random.Random, *, max_depth: int = 3,
                exclude_pruned: bool = False, share_cap: int = PER_NODE_SHARE_CAP) -> SampleResult:
    nodes, excluded = eligible_nodes(tree, max_depth, exclude_pruned)
    result = SampleResult(eligible_nodes=len(nodes), excluded_pruned=excluded)
    total_share = sum(min(len(node.examples), share_cap) for node in nodes)
    drawn: list[tuple[Node, int]] = []  # (node, index into node.examples)
    if total_share > 0:
        for node in nodes:
            size = len(node.examples)
            k = min(int(n * min(size, share_cap) / total_share) + 1, size)
            drawn.extend((node, i) for i in rng.sample(range(size), k))
    result.cut = max(0, len(drawn) - n)
    drawn = drawn[:n]
    if len(drawn) < n:
        taken = {(id(node), i) for node, i in drawn}
        root = tree.root
        if not (exclude_pruned and root.pruned):
            spare = [i for i in range(len(root.examples)) if (id(root), i) not in taken]
            extra = rng.sample(spare, min(n - len(drawn), len(spare)))
            drawn.extend((root, i) for i in extra)
            taken.update((id(root), i) for i in extra)
            result.topped_up_from_root = len(extra)
        if len(drawn) < n:
            spare_others = [(node, i) for node in nodes if node is not root
                            for i in range(len(node.examples)) if (id(node), i) not in taken]
            extra_others = rng.sample(spare_others, min(n - len(drawn), len(spare_others)))
            drawn.extend(extra_others)
            result.topped_up_from_others = len(extra_others)
    result.shortfall = n - len(drawn)
    result.picked = [(node, node.examples[i]) for node, i in drawn]
    return result
