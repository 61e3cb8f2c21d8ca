"""Parsers survive what models really write: truncation, stray markers, curly quotes, odd numbering."""

from __future__ import annotations

from instructforge.pipeline.parsers import (
    ParsedExample,
    Triggers,
    clean_name,
    parse_back_translation,
    parse_examples,
    parse_numbered_tasks,
    parse_subtasks,
)
from instructforge.pipeline.protocols import FinishReason

STOP, LENGTH = FinishReason.STOP, FinishReason.LENGTH

TRI = """Convert the temperature to Fahrenheit.

9. Input:
20 degrees Celsius

9. Output:
68 degrees Fahrenheit
###
10. Instruction:
Classify the sentence as a question or a statement.

10. Input:
Is it raining? Output: maybe

10. Output:
Question
###
11. Instruction:
Name three rivers in Africa.

11. Input:
<noinput>

11. Output:
The Nile, the Congo and the Niger.
###
12. Instruction:
Summarise the plot of a fam"""


def test_tri_format_with_anchor_put_back_and_truncated_tail():
    parsed = parse_numbered_tasks(TRI, first_index=9, finish_reason=LENGTH)
    assert [e.instruction for e in parsed.examples] == [
        "Convert the temperature to Fahrenheit.",
        "Classify the sentence as a question or a statement.",
        "Name three rivers in Africa.",
    ]
    # A mid-line "Output:" stays inside the input; <noinput> becomes "".
    assert parsed.examples[1] == ParsedExample("Classify the sentence as a question or a statement.",
                                               "Is it raining? Output: maybe", "Question")
    assert parsed.examples[2].input == ""
    assert [d.reason for d in parsed.drops] == ["truncated"]


def test_an_incomplete_last_item_of_a_finished_answer_is_dropped_as_incomplete():
    parsed = parse_numbered_tasks(TRI, first_index=9, finish_reason=STOP)
    assert len(parsed.examples) == 3
    assert [d.reason for d in parsed.drops] == ["incomplete_item"]


def test_a_restated_anchor_is_not_doubled():
    text = "9. Instruction: List two prime numbers.\n9. Output: 2 and 3\n###\n"
    parsed = parse_numbered_tasks(text, first_index=9, finish_reason=STOP, with_input=False)
    assert parsed.examples == [ParsedExample("List two prime numbers.", "", "2 and 3")]


def test_bi_format_keeps_stray_markers_inside_the_output():
    text = ("Write a Python function that doubles a number.\ndef f(x): ...\n\n9. Output:\n"
            "def double(x):\n    return 2 * x\nInput: 3\nOutput: 6\n###\n"
            "10. Instruction:\nReverse a string in Python.\n\n10. Output:\ns[::-1]\n###\n")
    parsed = parse_numbered_tasks(text, first_index=9, finish_reason=STOP, with_input=False)
    assert parsed.examples[0].instruction == "Write a Python function that doubles a number.\ndef f(x): ..."
    assert parsed.examples[0].output == "def double(x):\n    return 2 * x\nInput: 3\nOutput: 6"
    assert parsed.examples[1].output == "s[::-1]"


def test_numbering_variants_markdown_and_missing_separators():
    text = ("**10) Instruction:** Give a synonym for happy.\n**10) Output:** Joyful\n\n"
            "(11). Instruction: Give an antonym for cold.\n(11). Output: Hot\n")
    parsed = parse_numbered_tasks(text, first_index=9, finish_reason=STOP, with_input=False)
    # The answer restates its own first marker (numbered 10, not 9): nothing is put back in front.
    assert [e.output for e in parsed.examples] == ["Joyful", "Hot"]
    assert parsed.drops == []


def test_a_stray_numbered_marker_inside_an_answer_does_not_split_it():
    text = ("Count the vowels.\n9. Output:\nSteps:\n3. Instruction: this line quotes an old item\nDone\n###\n"
            "10. Instruction: Say hello.\n10. Output: Hello\n")
    parsed = parse_numbered_tasks(text, first_index=9, finish_reason=STOP, with_input=False)
    assert len(parsed.examples) == 2
    assert "3. Instruction: this line quotes an old item" in parsed.examples[0].output


def test_custom_trigger_words():
    t = Triggers("Task", "Context", "Solution")
    text = "Add the numbers.\n9. Context:\n2 and 2\n9. Solution:\n4\n###\n"
    parsed = parse_numbered_tasks(text, first_index=9, finish_reason=STOP, triggers=t)
    assert parsed.examples == [ParsedExample("Add the numbers.", "2 and 2", "4")]


ENRICH = """Examples:
###
1. Instruction: Make the sentence more concise.
Input: At this point in time we are unable to respond.
Output: We cannot respond now.
###
2. Instruction: Fix the grammar.
Input: He don't like apples.
Output: He doesn't like apples.
###
3. Instruction: Turn the note into a polite request.
Input: Send the file."""


def test_enrich_items_and_length_cut():
    parsed = parse_examples(ENRICH, finish_reason=LENGTH)
    assert [e.instruction for e in parsed.examples] == ["Make the sentence more concise.", "Fix the grammar."]
    assert [d.reason for d in parsed.drops] == ["truncated"]
    # Finished answers keep a complete last item, but one without an output is incomplete.
    assert [d.reason for d in parse_examples(ENRICH, finish_reason=STOP).drops] == ["incomplete_item"]


def test_enrich_examples_without_numbers_or_input_lines():
    text = ("Instruction: Brainstorm names for a cat.\nInput: <noinput>\nOutput: Miso, Pixel, Juniper\n\n"
            "Example 2:\nInstruction: List picnic foods.\nOutput: Sandwiches, fruit, lemonade\n")
    parsed = parse_examples(text, finish_reason=STOP)
    assert parsed.examples == [ParsedExample("Brainstorm names for a cat.", "", "Miso, Pixel, Juniper"),
                               ParsedExample("List picnic foods.", "", "Sandwiches, fruit, lemonade")]


def test_unparseable_answers_are_counted():
    assert [d.reason for d in parse_examples("Sorry, I can't.", finish_reason=STOP).drops] == ["unparseable_response"]
    assert [d.reason for d in parse_subtasks("No.", finish_reason=STOP).drops] == ["unparseable_response"]


EXTEND = """New subtask: “Tone adjustment”
Reason: Readers react to tone as much as to content.
Examples:
###
1. Instruction: Make the reply friendlier.
Input: No.
Output: I'm afraid not, sorry!
###
2. Instruction: Make it more formal.
Input: Thanks a lot!
Output: Thank you very much.
###

**New Sub-task:** 'Shortening'
**Reason:** Shorter text is read more often.
**Example:**
Instruction: Cut the sentence to ten words.
Input: The meeting that was planned for the afternoon has been moved to the next morning instead.
Output: The afternoon meeting moved to tomorrow morning.

New subtask: Clarity
Reason: Clear text saves time.
Examples:
1. Instruction: Clarify the sentence.
Input: It was done by them to it.
Out"""


def test_extend_subtasks_with_curly_quotes_markdown_and_a_cut_tail():
    parsed = parse_subtasks(EXTEND, finish_reason=LENGTH)
    assert [s.name for s in parsed.subtasks] == ["Tone adjustment", "Shortening", "Clarity"]
    assert parsed.subtasks[0].reason == "Readers react to tone as much as to content."
    assert [len(s.examples) for s in parsed.subtasks] == [2, 1, 0]
    assert [d.reason for d in parsed.drops] == ["truncated"]


def test_extend_subtask_cut_before_its_examples_is_dropped_only_on_length():
    text = "New subtask: A\nReason: r\nExamples:\nInstruction: x y z\nInput: i\nOutput: o\n\nNew subtask: B\nReas"
    cut = parse_subtasks(text, finish_reason=LENGTH)
    assert [s.name for s in cut.subtasks] == ["A"] and [d.reason for d in cut.drops] == ["truncated"]
    finished = parse_subtasks(text, finish_reason=STOP)
    assert [s.name for s in finished.subtasks] == ["A", "B"]


def test_clean_name():
    assert clean_name('  "Fix spelling."\nmore text') == "Fix spelling"
    assert clean_name("**‘Summaries’**") == "Summaries"


def test_back_translation():
    assert parse_back_translation("Reverse the list.\n###\n10. Output:\n...", next_index=10) == "Reverse the list."
    assert parse_back_translation("9. Instruction: Reverse it.\n10. Output: x", next_index=10) == "Reverse it."
    assert parse_back_translation("Explain recursion.\nOutput: a function", next_index=10) == "Explain recursion."
    assert parse_back_translation("", next_index=10) == ""
