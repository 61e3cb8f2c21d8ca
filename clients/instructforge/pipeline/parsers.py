"""Parsers for what models write back, tolerant where the published ones lose or mangle data.

Models number items in many ways (`9.`, `9)`, `(9)`, `**9. Instruction:**`), forget `###`, quote
names with curly quotes, put "Input:" or "Output:" inside an answer, and get cut off mid-item. The
rules here: a field marker counts only at the start of a line; an item's first marker after its
instruction decides whether it has an input; everything after the output marker is the output; and
only a response that stopped for length loses its last item. Every item that is not returned is
returned as a `Drop` with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from instructforge.pipeline.filters import Drop
from instructforge.pipeline.protocols import FinishReason


@dataclass(frozen=True)
class Triggers:
    """The three words that introduce an item's fields (Self-Instruct's "trigger words")."""

    instruction: str = "Instruction"
    input: str = "Input"
    output: str = "Output"


DEFAULT_TRIGGERS = Triggers()


@dataclass(frozen=True)
class ParsedExample:
    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class ParsedSubtask:
    name: str
    reason: str
    examples: tuple[ParsedExample, ...]


@dataclass
class Parsed:
    examples: list[ParsedExample] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    subtasks: list[ParsedSubtask] = field(default_factory=list)


_DECOR = r"[ \t]*(?:[#>*\-]+[ \t]*)?"
_NUM = r"\(?(?P<num>\d{1,4})(?:\)[.:]?|[.:])[ \t]*"  # 9. 9) (9) (9). 9:
_BOLD = r"(?:\*\*|__)?"


@lru_cache(maxsize=256)
def marker(*words: str, numbered: bool | None = None) -> re.Pattern[str]:
    """A line-start field marker such as `9. Instruction:`; `numbered=True` requires the number,
    False forbids it, None accepts both. Spaces in a word also match hyphens ("sub-task")."""
    alternatives = "|".join(r"[ \t-]*".join(map(re.escape, w.split())) for w in words)
    num = {True: _NUM, False: "", None: f"(?:{_NUM})?"}[numbered]
    return re.compile(
        rf"^{_DECOR}{_BOLD}{num}{_BOLD}(?P<word>{alternatives}){_BOLD}[ \t]*:{_BOLD}[ \t]*",
        re.IGNORECASE | re.MULTILINE,
    )


# Lines that only separate items: ###, ---, ***, "Example 3:", "Task 4".
_SEPARATOR = re.compile(r"^[ \t]*(?:#{3,}|-{3,}|\*{3,}|(?:example|task|item)[ \t]*#?\d+[ \t]*:?)[ \t]*$",
                        re.IGNORECASE | re.MULTILINE)
_NOINPUT = re.compile(r"^<\s*no[\s_-]*input\s*/?>$", re.IGNORECASE)
_QUOTES = "\"'“”‘’«»`"


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean_field(text: str) -> str:
    """Strip separators and whitespace around a field; `<noinput>` (any spelling) becomes ""."""
    text = _SEPARATOR.sub("", text).strip()
    while text.endswith("###"):
        text = text[:-3].rstrip()
    return "" if _NOINPUT.match(text) else text


def clean_name(text: str) -> str:
    """A subtask name: first line, markdown and (curly) quotes removed, no trailing full stop."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = line.strip().strip("*_ ").strip(_QUOTES).strip()
    return line.rstrip(".").strip().strip(_QUOTES).strip()


def _fields(body: str, number: str | None, triggers: Triggers, with_input: bool) -> ParsedExample | Drop:
    """Split one item's text (after its instruction marker) into instruction, input and output."""
    words = [triggers.output] + ([triggers.input] if with_input else [])
    found = None
    if number is not None:  # prefer markers that carry this item's own number
        found = next((m for m in marker(*words, numbered=True).finditer(body) if m.group("num") == number), None)
    found = found or marker(*words).search(body)
    if found is None:
        return Drop("incomplete_item", "no output marker")
    instruction = clean_field(body[: found.start()])
    rest = body[found.end():]
    input_text = ""
    if found.group("word").lower() == triggers.input.lower():
        output_marker = None
        if number is not None:
            output_marker = next((m for m in marker(triggers.output, numbered=True).finditer(rest)
                                  if m.group("num") == number), None)
        output_marker = output_marker or marker(triggers.output).search(rest)
        if output_marker is None:
            return Drop("incomplete_item", "no output marker")
        input_text, rest = rest[: output_marker.start()], rest[output_marker.end():]
    return ParsedExample(instruction, clean_field(input_text), clean_field(rest))


def _items(text: str, instruction_re: re.Pattern[str], numbered: bool) -> list[tuple[str | None, str]]:
    """(number, body) per item; with `numbered`, only markers whose numbers increase start an item,
    so a stray numbered marker inside an answer does not split it."""
    starts: list[re.Match[str]] = []
    last = -1
    for match in instruction_re.finditer(text):
        num = match.group("num")
        if numbered:
            if num is None or int(num) <= last:
                continue
            last = int(num)
        starts.append(match)
    bodies = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        bodies.append((match.group("num"), text[match.end(): end]))
    return bodies


def _collect(items: list[tuple[str | None, str]], triggers: Triggers, with_input: bool,
             finish_reason: FinishReason | str, parsed: Parsed) -> Parsed:
    if items and finish_reason == FinishReason.LENGTH:
        items = items[:-1]
        parsed.drops.append(Drop("truncated", "last item of a response cut at max_tokens"))
    for number, body in items:
        result = _fields(body, number, triggers, with_input)
        (parsed.drops if isinstance(result, Drop) else parsed.examples).append(result)
    return parsed


def parse_numbered_tasks(text: str, *, first_index: int, finish_reason: FinishReason | str,
                         triggers: Triggers = DEFAULT_TRIGGERS, with_input: bool = True) -> Parsed:
    """Self-Instruct: the model continues a numbered list whose item `first_index` the prompt opened
    (`9. Instruction:`). A completion-only backend returns the text after that marker, a chat model
    may restate it: the marker is put back only when missing (the published parser lost item 9)."""
    text = normalize_newlines(text)
    any_instruction = marker(triggers.instruction)
    if not any_instruction.match(text.lstrip()):
        text = f"{first_index}. {triggers.instruction}:\n{text}"
    numbered = marker(triggers.instruction, numbered=True)
    items = _items(text, numbered, numbered=True)
    if not items:  # an unnumbered list: fall back to plain line-start markers
        items = _items(text, any_instruction, numbered=False)
    return _collect(items, triggers, with_input, finish_reason, Parsed())


def parse_examples(text: str, *, finish_reason: FinishReason | str,
                   triggers: Triggers = DEFAULT_TRIGGERS) -> Parsed:
    """Explore-Instruct enrich: `Instruction:/Input:/Output:` blocks, numbered or not, `###` or not."""
    text = normalize_newlines(text)
    items = _items(text, marker(triggers.instruction), numbered=False)
    if not items and text.strip():
        return Parsed(drops=[Drop("unparseable_response", text.strip()[:60])])
    return _collect(items, triggers, True, finish_reason, Parsed())


_SUBTASK = marker("New subtask", "New sub task")
_REASON = marker("Reason")
_EXAMPLES = marker("Examples", "Example", numbered=False)


def parse_subtasks(text: str, *, finish_reason: FinishReason | str,
                   triggers: Triggers = DEFAULT_TRIGGERS) -> Parsed:
    """Explore-Instruct extend: blocks of `New subtask:` / `Reason:` / `Examples:` + example items.
    On a length stop the last example, and a last subtask cut before its examples, are dropped."""
    text = normalize_newlines(text)
    heads = list(_SUBTASK.finditer(text))
    parsed = Parsed()
    if not heads:
        if text.strip():
            parsed.drops.append(Drop("unparseable_response", text.strip()[:60]))
        return parsed
    for i, head in enumerate(heads):
        last = i + 1 == len(heads)
        block = text[head.end(): heads[i + 1].start() if not last else len(text)]
        examples_marker = _EXAMPLES.search(block)
        if last and finish_reason == FinishReason.LENGTH and examples_marker is None:
            parsed.drops.append(Drop("truncated", "subtask cut before its examples"))
            continue
        head_text = block[: examples_marker.start()] if examples_marker else block
        reason_marker = _REASON.search(head_text)
        name = clean_name(head_text[: reason_marker.start()] if reason_marker else head_text)
        if not name:
            parsed.drops.append(Drop("unnamed_subtask"))
            continue
        reason = clean_field(head_text[reason_marker.end():]) if reason_marker else ""
        sub = Parsed()
        if examples_marker is not None:
            body = block[examples_marker.end():]
            _collect(_items(body, marker(triggers.instruction), numbered=False), triggers, True,
                     finish_reason if last else FinishReason.STOP, sub)
        parsed.drops.extend(sub.drops)
        parsed.subtasks.append(ParsedSubtask(name, reason, tuple(sub.examples)))
    return parsed


def parse_back_translation(text: str, *, next_index: int, triggers: Triggers = DEFAULT_TRIGGERS) -> str:
    """Self-consistency: the instruction a model wrote for a given output, up to the next item."""
    text = normalize_newlines(text)
    if (m := marker(triggers.instruction).match(text.lstrip())) is not None:
        text = text.lstrip()[m.end():]
    cut = re.search(rf"^[ \t]*(?:#{{3,}}|{next_index}[ \t]*[.)])", text, re.MULTILINE)
    if cut:
        text = text[: cut.start()]
    found = marker(triggers.output, triggers.input).search(text)
    return clean_field(text[: found.start()] if found else text)
