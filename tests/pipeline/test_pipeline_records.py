"""The example record: content ids that re-runs agree on, and the common.v1.Example round trip."""

from __future__ import annotations

from instructforge.common.v1 import record_pb2
from instructforge.pipeline.records import Record, content_id


def test_id_depends_on_content_only():
    a = Record("Sort the list.", "3, 1, 2", "1, 2, 3", task="math/sorting", meta={"model": "x"})
    b = Record("Sort the list.", "3, 1, 2", "1, 2, 3", task="other", meta={"model": "y"})
    assert a.id == b.id == content_id("Sort the list.", "3, 1, 2", "1, 2, 3")
    assert a.id.startswith("ex-") and len(a.id) == 35
    assert Record("Sort the list.", "3, 1, 2", "1, 2, 4").id != a.id


def test_field_boundaries_are_part_of_the_id():
    # The same characters split differently between fields are different examples.
    assert Record("ab", "c", "").id != Record("a", "bc", "").id


def test_with_meta_keeps_the_id():
    r = Record("Say hi.", output="Hi!")
    assert r.with_meta(score=0.5).id == r.id
    assert r.with_meta(score=0.5).meta == {"score": 0.5}


def test_dict_round_trip_and_alpaca_rows():
    r = Record("Translate to French.", "Good morning", "Bonjour", task="t", meta={"k": [1, "a"]})
    assert Record.from_dict(r.to_dict()) == r
    row = Record.from_dict({"instruction": "Add.", "input": None, "output": "3"}, task="root")
    assert (row.input, row.task, row.id) == ("", "root", content_id("Add.", "", "3"))
    assert list(r.alpaca()) == ["instruction", "input", "output"]


def test_proto_round_trip():
    r = Record("Name a colour.", "", "Blue", task="brainstorming/colours",
               meta={"model": "fake", "scores": [0.25, 1], "nested": {"ok": True}})
    message = r.to_proto()
    assert isinstance(message, record_pb2.Example)
    assert (message.id, message.task, message.input) == (r.id, "brainstorming/colours", "")
    back = Record.from_proto(record_pb2.Example.FromString(message.SerializeToString()))
    assert back.id == r.id and back.instruction == r.instruction and back.task == r.task
    # google.protobuf.Struct stores every number as a double.
    assert back.meta == {"model": "fake", "scores": [0.25, 1.0], "nested": {"ok": True}}
