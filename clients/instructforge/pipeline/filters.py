"""The Alpaca/Self-Instruct instruction heuristics, in each published system's variant.

SEED-ALGORITHMS §0.2: the systems share one idea (length, a keyword blacklist, no "Write a program",
no leading punctuation or non-ASCII) but differ in details that change which examples survive, so
each variant is a named rule set, and every rejection comes back as a reason to count, never silently.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cached_property

BASE_BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
                  "map", "maps", "draw", "plot", "go to")
MEDIA_WORDS = ("video", "audio", "music", "flowchart", "diagram")
EXTENDED_BLACKLIST = BASE_BLACKLIST + MEDIA_WORDS


def _without(words: tuple[str, ...], *removed: str) -> tuple[str, ...]:
    return tuple(w for w in words if w not in removed)


@dataclass(frozen=True)
class Drop:
    """Why an example was rejected: `reason` is counted, `detail` explains this one."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class FilterRules:
    """One variant. `min_words`/`max_words` bound the whitespace word count inclusively (None: no bound)."""

    name: str
    min_words: int | None
    max_words: int | None
    blacklist: tuple[str, ...]
    banned_prefixes: tuple[str, ...] = ("Write a program",)
    placeholder_input: bool = False  # Explore-Instruct: reject "<...>" / "(...)" inputs
    empty_output: bool = True  # ours: an example without an answer teaches nothing

    @cached_property
    def _blacklist_re(self) -> re.Pattern[str] | None:
        if not self.blacklist:
            return None
        return re.compile(r"\b(" + "|".join(re.escape(w) for w in self.blacklist) + r")\b", re.IGNORECASE)

    @cached_property
    def _blacklist_lower(self) -> tuple[str, ...]:
        return tuple(w.lower() for w in self.blacklist)

    def blacklisted(self, text: str) -> str | None:
        """The first blacklisted word in `text` (lower-cased), matched whole and in any case.

        Why not the regex alone: an alternation searched case-blind costs ~11 us per instruction,
        the most of any rule. ASCII text holding none of the words as a lower-cased substring cannot
        match, which a few substring tests (~1 us) settle; other text goes to the regex, whose case
        folding also matches letters such as the dotless i or the long s."""
        if self._blacklist_re is None:
            return None
        if text.isascii():
            lowered = text.lower()
            if not any(word in lowered for word in self._blacklist_lower):
                return None
        match = self._blacklist_re.search(text)
        return match.group(1).lower() if match else None

    def check(self, instruction: str, input: str = "", output: str | None = None) -> Drop | None:
        """The first rule the example breaks, or None when it passes. `output=None` skips output rules
        (Self-Instruct's bootstrap stage judges instructions alone)."""
        words = len(instruction.split())
        if words == 0:
            return Drop("empty_instruction")
        if self.min_words is not None and words < self.min_words:
            return Drop("too_short", f"{words} words")
        if self.max_words is not None and words > self.max_words:
            return Drop("too_long", f"{words} words")
        if (word := self.blacklisted(instruction)) is not None:
            return Drop("blacklisted_word", word)
        for prefix in self.banned_prefixes:
            if instruction.startswith(prefix):
                return Drop("programming_task", prefix)
        first = instruction[0]
        if first in string.punctuation:
            return Drop("leading_punctuation", first)
        if not first.isascii():
            return Drop("leading_non_ascii", first)
        stripped = input.strip()
        if self.placeholder_input and stripped and (
            (stripped[0] == "<" and stripped[-1] == ">") or (stripped[0] == "(" and stripped[-1] == ")")
        ):
            return Drop("placeholder_input", stripped[:40])
        if self.empty_output and output is not None and not output.strip():
            return Drop("empty_output")
        return None


# "<= 3 words rejected" means min_words=4; Explore's "< 3" means min_words=3.
VARIANTS: dict[str, FilterRules] = {
    rules.name: rules
    for rules in (
        # yizhongw/self-instruct bootstrap: 13 words.
        FilterRules("self_instruct", 4, 150, BASE_BLACKLIST),
        # Stanford Alpaca: 18 words.
        FilterRules("alpaca", 4, 150, EXTENDED_BLACKLIST),
        # ArmelRandy (HF hub): 13 words, also no "Write a function" unless --keep_programming.
        FilterRules("hf", 4, 150, BASE_BLACKLIST, ("Write a program", "Write a function")),
        FilterRules("hf_keep_programming", 4, 150, BASE_BLACKLIST, ()),
        # Explore-Instruct: 3-word instructions pass; placeholder inputs rejected.
        FilterRules("explore_rewriting", 3, 150, EXTENDED_BLACKLIST, placeholder_input=True),
        FilterRules("explore_brainstorming", 3, 150, _without(EXTENDED_BLACKLIST, "map", "maps"),
                    placeholder_input=True),
        FilterRules("explore_math", None, None, _without(EXTENDED_BLACKLIST, "graph", "graphs", "map", "maps"),
                    placeholder_input=True),
    )
}


def get_rules(name: str) -> FilterRules:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown filter variant {name!r}; known: {', '.join(VARIANTS)}") from None


def ensure_boxed(output: str) -> str:
    """Explore-Instruct math: give a final "Answer: " a `\\boxed{}` when it lacks one.

    The published fix assumes the answer is wrapped in `$...$` and mangles anything else
    (`Answer: 42` became `4\\boxed{}2`); here `$x$` becomes `$\\boxed{x}$` and a bare answer
    `$\\boxed{answer}$`, trailing full stop kept outside.
    """
    index = output.rfind("Answer: ")
    if index < 0 or "\\boxed" in output[index:]:
        return output
    head, tail = output[: index + len("Answer: ")], output[index + len("Answer: "):].strip()
    end = ""
    if tail.endswith("."):
        tail, end = tail[:-1].rstrip(), "."
    if not tail:
        return output
    if len(tail) >= 2 and tail[0] == "$" and tail[-1] == "$":
        inner = tail.strip("$").strip()
        return f"{head}$\\boxed{{{inner}}}${end}"
    return f"{head}$\\boxed{{{tail}}}${end}"
