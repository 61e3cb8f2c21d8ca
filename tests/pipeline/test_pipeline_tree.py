"""The domain tree and the published folder layout: exact round trips, the id rule, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instructforge.pipeline.tree import META_FILE, PRUNED_FILE, DomainTree, TreeFormatError, formalize


def node_file(raw: str, name: str, reason: str, examples: list[dict], **extra) -> dict:
    return {"raw_task_name": raw, "task_name": name, "config_filename": f"{name}.json", "reason": reason,
            "examples": examples, **extra}


def write_published_tree(folder: Path) -> None:
    """A tree as the published tool and hand edits leave it: several JSON styles side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"raw_task_name": "Writing help", "task_name": "writing_help", "config_filename": "writing_help.json",
            "reason": "", "children": [
                {"raw_task_name": "Paraphrase", "task_name": "paraphrase", "config_filename": "paraphrase.json",
                 "reason": "Say it again, differently.", "children": [
                     {"raw_task_name": "Résumé wording", "task_name": "r_sum_wording",
                      "config_filename": "r_sum_wording.json", "reason": "CVs.", "children": [],
                      "colour": "blue"}]},
                {"raw_task_name": "Shorten", "task_name": "shorten", "config_filename": "shorten.json",
                 "reason": "Brevity.", "children": []}]}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))  # no final newline, like a hand-saved file
    # The root: hand-formatted, which no json.dumps setting reproduces.
    (folder / "writing_help.json").write_text(
        '{\n    "raw_task_name": "Writing help",\n    "task_name": "writing_help",\n'
        '    "config_filename": "writing_help.json",\n    "reason": "",\n    "examples":\n    [\n'
        '        {\n            "instruction": "Fix this.",\n            "input": "teh cat",\n'
        '            "output": "the cat"\n        }\n    ]\n}')
    # What the tool writes: json.dumps defaults plus a newline; ASCII escapes for "é".
    ex = [{"instruction": "Reword the sentence.", "input": "Café au lait is nice.", "output": "I like café au lait."},
          {"instruction": "Say it another way.", "input": "", "output": "x"}]
    (folder / "paraphrase.json").write_text(json.dumps(node_file("Paraphrase", "paraphrase", "Say it again, differently.", ex)) + "\n")
    # Raw UTF-8, indent 4, and keys the layout does not know.
    (folder / "r_sum_wording.json").write_text(json.dumps(
        node_file("Résumé wording", "r_sum_wording", "CVs.", [{"instruction": "Polish the line.", "input": "I did stuff",
                                                               "output": "Led a team of five", "score": 0.9}],
                  source="manual"), indent=4, ensure_ascii=False) + "\n")
    (folder / "shorten.json").write_text(json.dumps(node_file("Shorten", "shorten", "Brevity.", [])) + "\n")
    (folder / PRUNED_FILE).write_text(json.dumps(["shorten"]))


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_formalize_is_the_published_rule():
    assert formalize("Fix spelling and grammar") == "fix_spelling_and_grammar"
    assert formalize("  Q&A -- (short) answers!! ") == "q_a_short_answers"
    assert formalize("Résumé wording") == "r_sum_wording"
    assert formalize("中文") == "task"


def test_import_then_export_is_byte_identical(tmp_path):
    write_published_tree(tmp_path / "in")
    tree = DomainTree.load(tmp_path / "in")
    assert [n.task_name for n in tree.nodes()] == ["writing_help", "paraphrase", "r_sum_wording", "shorten"]
    assert tree.get("r_sum_wording").depth == 2 and tree.get("r_sum_wording").path == "writing_help/paraphrase/r_sum_wording"
    assert tree.get("shorten").pruned and not tree.get("paraphrase").pruned
    assert tree.get("r_sum_wording").examples[0]["score"] == 0.9
    tree.save(tmp_path / "out")
    assert files(tmp_path / "out") == files(tmp_path / "in")
    # ... and again from the copy.
    DomainTree.load(tmp_path / "out").save(tmp_path / "again")
    assert files(tmp_path / "again") == files(tmp_path / "in")


def test_nodes_saved_one_at_a_time_make_the_same_folder(tmp_path):
    # A stage writes a node's file once it is done with it (save_node), then saves the rest; the
    # folder is byte for byte what one save writes, and the nodes named done are not written again.
    write_published_tree(tmp_path / "in")
    tree = DomainTree.load(tmp_path / "in")
    early = [tree.get("paraphrase"), tree.get("shorten")]
    for node in early:
        assert DomainTree.save_node(tmp_path / "out", node) == tmp_path / "out" / node.config_filename
    written = tree.save(tmp_path / "out", done=early)
    assert {p.name for p in written} == {META_FILE, "writing_help.json", "r_sum_wording.json", PRUNED_FILE}
    assert files(tmp_path / "out") == files(tmp_path / "in")


def test_changed_nodes_are_rewritten_in_their_own_style(tmp_path):
    write_published_tree(tmp_path / "in")
    tree = DomainTree.load(tmp_path / "in")
    tree.root.examples.append({"instruction": "Shorter please.", "input": "a b c", "output": "a b"})
    tree.get("r_sum_wording").examples.append({"instruction": "Add a verb.", "input": "Team lead", "output": "Led the team"})
    tree.add_child(tree.get("shorten"), "Headline writing", "Titles.", [])
    tree.save(tmp_path / "out")
    before, after = files(tmp_path / "in"), files(tmp_path / "out")
    assert after["paraphrase.json"] == before["paraphrase.json"]
    assert after["shorten.json"] == before["shorten.json"]
    assert after[PRUNED_FILE] == before[PRUNED_FILE]
    resume = after["r_sum_wording.json"].decode()
    assert resume.startswith('{\n    "raw_task_name": "Résumé wording"') and '"source": "manual"' in resume
    assert json.loads(after["writing_help.json"])["examples"][-1]["instruction"] == "Shorter please."
    assert after["headline_writing.json"] == (json.dumps(tree.get("headline_writing").file_dict()) + "\n").encode()
    meta = json.loads(after[META_FILE])
    assert meta["children"][1]["children"][0]["task_name"] == "headline_writing"
    assert meta["children"][0]["children"][0]["colour"] == "blue"  # unknown keys survive
    assert list(meta) == ["raw_task_name", "task_name", "config_filename", "reason", "children"]


def test_a_new_tree_round_trips(tmp_path):
    tree = DomainTree.new("Math help", "Numbers.", [{"instruction": "Add.", "input": "1 2", "output": "3"}])
    child = tree.add_child(tree.root, "Fractions", "Parts of a whole.")
    child.pruned = True
    tree.save(tmp_path / "a")
    again = DomainTree.load(tmp_path / "a")
    assert again.get("fractions").pruned and again.root.examples == tree.root.examples
    again.save(tmp_path / "b")
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_names_never_collide(tmp_path):
    """Published: _0.._9, then the eleventh twin silently overwrote the tenth's file."""
    tree = DomainTree.new("Root")
    names = [tree.add_child(tree.root, "Paraphrase!", str(i), [{"instruction": str(i)}]).task_name for i in range(13)]
    assert names == ["paraphrase"] + [f"paraphrase_{i}" for i in range(12)]
    written = tree.save(tmp_path / "t")
    assert len(written) == 1 + 14
    reloaded = DomainTree.load(tmp_path / "t")
    assert [n.reason for n in reloaded.root.children] == [str(i) for i in range(13)]
    assert tree.unique_name("Paraphrase", taken={"paraphrase_12"}) == "paraphrase_13"


def test_duplicate_task_names_in_a_published_tree_are_refused(tmp_path):
    write_published_tree(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["children"][1]["task_name"] = "paraphrase"
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(TreeFormatError, match="'paraphrase' appears twice"):
        DomainTree.load(tmp_path)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: (d / "shorten.json").unlink(), r"shorten\.json: file not found"),
    (lambda d: (d / "shorten.json").write_text("{oops"), r"shorten\.json: not valid JSON"),
    (lambda d: (d / PRUNED_FILE).write_text('["nope"]'), r"pruned_subtasks_name\.json: 'nope' is not a node"),
    (lambda d: (d / META_FILE).write_text('{"children": []}'), r"tree_meta_info\.json: root\.task_name is missing"),
    (lambda d: (d / META_FILE).unlink(), r"tree_meta_info\.json: file not found"),
])
def test_broken_folders_name_the_file_and_key(tmp_path, damage, message):
    write_published_tree(tmp_path)
    damage(tmp_path)
    with pytest.raises(TreeFormatError, match=message):
        DomainTree.load(tmp_path)


def test_traversal_orders():
    tree = DomainTree.new("R")
    a, b = tree.add_child(tree.root, "A"), tree.add_child(tree.root, "B")
    tree.add_child(a, "A1"), tree.add_child(b, "B1"), tree.add_child(a, "A2")
    assert [n.task_name for n in tree.nodes()] == ["r", "a", "a1", "a2", "b", "b1"]
    assert [n.task_name for n in tree.level_order()] == ["r", "a", "b", "a1", "a2", "b1"]
    assert [s.task_name for s in a.siblings] == ["b"] and tree.root.siblings == []
