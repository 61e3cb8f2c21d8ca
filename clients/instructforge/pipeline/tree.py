"""Explore-Instruct's domain tree, and its published folder layout read and written back exactly.

The layout (SEED-ALGORITHMS §1.1) is flat: `tree_meta_info.json` holds the hierarchy (one nested
object per node: names, reason, file name, children) and `<task_name>.json` one node's examples.
A tree read from such a folder and written again without changes is byte-identical: each file's
JSON style (indent, ASCII escaping, final newline, key order, unknown keys) is detected on import
and reused; a hand-formatted file no style reproduces is kept verbatim while its content is unchanged.
The published id rule gave up after ten collisions and silently overwrote a node; here it goes on.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META_FILE = "tree_meta_info.json"
PRUNED_FILE = "pruned_subtasks_name.json"
META_KEYS = ("raw_task_name", "task_name", "config_filename", "reason", "children")
FILE_KEYS = ("raw_task_name", "task_name", "config_filename", "reason", "examples")


class TreeFormatError(ValueError):
    """A tree folder that does not follow the layout; the message names the file and the key."""


def formalize(raw_task_name: str) -> str:
    """The published id rule: runs of non-alphanumerics become one space, strip, spaces to `_`, lower."""
    name = re.sub(r"[^0-9A-Za-z]+", " ", raw_task_name).strip().replace(" ", "_").lower()
    return name or "task"  # ours: a name with no ASCII letters still gets an id


@dataclass(frozen=True)
class JsonStyle:
    indent: int | None = None
    ensure_ascii: bool = True
    newline: bool = True

    def dumps(self, obj: Any) -> str:
        return json.dumps(obj, indent=self.indent, ensure_ascii=self.ensure_ascii) + ("\n" if self.newline else "")

    @classmethod
    def guess(cls, text: str) -> JsonStyle:
        lines = text.splitlines()
        indent = None
        if len(lines) > 1:
            second = lines[1]
            indent = len(second) - len(second.lstrip(" ")) or None
        return cls(indent=indent, ensure_ascii=text.isascii(), newline=text.endswith("\n"))


NODE_STYLE = JsonStyle()  # what the published code writes for node files
META_STYLE = JsonStyle(indent=2)


@dataclass
class StoredFile:
    """How one imported file looked: its style, or its verbatim text when no style reproduces it."""

    style: JsonStyle
    verbatim: str | None = None
    content: Any = None  # the parsed content, kept only with `verbatim`

    @classmethod
    def read(cls, path: Path) -> tuple[StoredFile, Any]:
        try:
            text = path.read_text(encoding="utf-8")
            content = json.loads(text)
        except FileNotFoundError:
            raise TreeFormatError(f"{path.name}: file not found in {path.parent}") from None
        except json.JSONDecodeError as e:
            raise TreeFormatError(f"{path.name}: not valid JSON ({e})") from None
        style = JsonStyle.guess(text)
        if style.dumps(content) == text:
            return cls(style), content
        return cls(style, verbatim=text, content=content), content

    def dumps(self, content: Any) -> str:
        if self.verbatim is not None and content == self.content:
            return self.verbatim
        return self.style.dumps(content)


@dataclass(eq=False)
class Node:
    task_name: str
    raw_task_name: str
    reason: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    parent: Node | None = field(default=None, repr=False)
    pruned: bool = False
    config_filename: str = ""
    # Key order and unknown keys of the imported meta entry and node file, written back as found.
    meta_extra: dict[str, Any] = field(default_factory=dict, repr=False)
    file_extra: dict[str, Any] = field(default_factory=dict, repr=False)
    meta_keys: tuple[str, ...] = META_KEYS
    file_keys: tuple[str, ...] = FILE_KEYS
    stored: StoredFile | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.config_filename = self.config_filename or f"{self.task_name}.json"

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def path(self) -> str:
        """Task names from the root down, e.g. `rewriting/paraphrase` (the record's `task`)."""
        return self.task_name if self.parent is None else f"{self.parent.path}/{self.task_name}"

    @property
    def siblings(self) -> list[Node]:
        return [] if self.parent is None else [c for c in self.parent.children if c is not self]

    def _known(self) -> dict[str, Any]:
        return {"raw_task_name": self.raw_task_name, "task_name": self.task_name,
                "config_filename": self.config_filename, "reason": self.reason}

    @staticmethod
    def _ordered(keys: tuple[str, ...], known: dict[str, Any], extra: Mapping[str, Any],
                 structural: str) -> dict[str, Any]:
        """The keys an imported entry had, in its order; the structural key (children, examples) always."""
        out = {k: known[k] if k in known else extra[k] for k in keys if k in known or k in extra}
        out.setdefault(structural, known[structural])
        out.update({k: v for k, v in extra.items() if k not in out})
        return out

    def meta_dict(self) -> dict[str, Any]:
        known = self._known() | {"children": [c.meta_dict() for c in self.children]}
        return self._ordered(self.meta_keys, known, self.meta_extra, "children")

    def file_dict(self) -> dict[str, Any]:
        return self._ordered(self.file_keys, self._known() | {"examples": self.examples}, self.file_extra,
                             "examples")


class DomainTree:
    """The tree plus its id registry; ids (task names) are unique, file names follow them."""

    def __init__(self, root: Node):
        self.root = root
        self._by_name: dict[str, Node] = {}
        self.meta_file: StoredFile | None = None
        self.pruned_file: StoredFile | None = None
        for node in self.nodes():
            if node.task_name in self._by_name:
                raise TreeFormatError(f"{META_FILE}: task_name {node.task_name!r} appears twice (the published "
                                      "code overwrote one node's file with the other's); rename one")
            self._by_name[node.task_name] = node

    @classmethod
    def new(cls, raw_task_name: str, reason: str = "", examples: list[dict[str, Any]] | None = None) -> DomainTree:
        return cls(Node(formalize(raw_task_name), raw_task_name, reason, list(examples or [])))

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, task_name: str) -> bool:
        return task_name in self._by_name

    def get(self, task_name: str) -> Node:
        return self._by_name[task_name]

    def nodes(self) -> Iterator[Node]:
        """Pre-order, children in insertion order (the published traversal)."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def level_order(self) -> Iterator[Node]:
        queue = deque([self.root])
        while queue:
            node = queue.popleft()
            yield node
            queue.extend(node.children)

    def unique_name(self, raw_task_name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
        """`formalize(raw)`, else the first free of `_0`, `_1`, ... (published: `_0`..`_9`, then overwrite)."""
        base = formalize(raw_task_name)
        if base not in self._by_name and base not in taken:
            return base
        suffix = 0
        while f"{base}_{suffix}" in self._by_name or f"{base}_{suffix}" in taken:
            suffix += 1
        return f"{base}_{suffix}"

    def add_child(self, parent: Node, raw_task_name: str, reason: str = "",
                  examples: list[dict[str, Any]] | None = None, task_name: str | None = None) -> Node:
        name = task_name if task_name and task_name not in self._by_name else self.unique_name(raw_task_name)
        node = Node(name, raw_task_name, reason, list(examples or []), parent=parent)
        parent.children.append(node)
        self._by_name[name] = node
        return node

    @property
    def pruned_names(self) -> list[str]:
        return [n.task_name for n in self.level_order() if n.pruned]

    # --- the published folder layout -------------------------------------------------------------

    @classmethod
    def load(cls, folder: str | Path) -> DomainTree:
        folder = Path(folder)
        meta_file, meta = StoredFile.read(folder / META_FILE)

        def build(entry: Any, parent: Node | None, where: str) -> Node:
            if not isinstance(entry, dict):
                raise TreeFormatError(f"{META_FILE}: {where or 'root'} must be an object")
            for key in ("task_name", "children"):
                if key not in entry:
                    raise TreeFormatError(f"{META_FILE}: {where or 'root'}.{key} is missing")
            name = entry["task_name"]
            filename = entry.get("config_filename") or f"{name}.json"
            stored, content = StoredFile.read(folder / filename)
            if not isinstance(content, dict) or not isinstance(content.get("examples", []), list):
                raise TreeFormatError(f"{filename}: must be an object with an 'examples' list")
            node = Node(
                task_name=name, raw_task_name=entry.get("raw_task_name", content.get("raw_task_name", name)),
                reason=entry.get("reason", content.get("reason", "")), examples=list(content.get("examples", [])),
                parent=parent, config_filename=filename,
                meta_extra={k: v for k, v in entry.items() if k not in META_KEYS},
                file_extra={k: v for k, v in content.items() if k not in FILE_KEYS},
                meta_keys=tuple(entry), file_keys=tuple(content), stored=stored,
            )
            node.children = [build(child, node, f"{where or 'root'}.children[{i}]")
                             for i, child in enumerate(entry["children"])]
            return node

        tree = cls(build(meta, None, ""))
        tree.meta_file = meta_file
        if (folder / PRUNED_FILE).exists():
            tree.pruned_file, pruned = StoredFile.read(folder / PRUNED_FILE)
            for name in pruned:
                if name not in tree:
                    raise TreeFormatError(f"{PRUNED_FILE}: {name!r} is not a node of the tree")
                tree.get(name).pruned = True
        return tree

    def save(self, folder: str | Path, done: Collection[Node] = ()) -> list[Path]:
        """Write the layout into `folder` (created); returns the files written. `done`: nodes whose
        file there is already up to date (`save_node`), not written again."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []

        def put(name: str, text: str) -> None:
            path = folder / name
            path.write_text(text, encoding="utf-8")
            written.append(path)

        put(META_FILE, (self.meta_file or StoredFile(META_STYLE)).dumps(self.root.meta_dict()))
        written += [self.save_node(folder, node) for node in self.nodes() if node not in done]
        if self.pruned_file is not None or self.pruned_names:
            put(PRUNED_FILE, (self.pruned_file or StoredFile(NODE_STYLE)).dumps(self.pruned_names))
        return written

    @staticmethod
    def save_node(folder: str | Path, node: Node) -> Path:
        """One node's file, e.g. as soon as a stage has finished with it (then `save(done=...)`)."""
        path = Path(folder) / node.config_filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((node.stored or StoredFile(NODE_STYLE)).dumps(node.file_dict()), encoding="utf-8")
        return path
