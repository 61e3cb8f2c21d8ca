"""An OpenAI-compatible loopback server that answers pipeline prompts in their expected layouts.

It is the gateway's fake OpenAI (the real wire protocol, errors included) with a responder that
writes Self-Instruct and Explore-Instruct answers like a model would, and now and then badly: cut
off mid-item, unparseable, or empty. A back-translation prompt (self-consistency) gets a paraphrase
of the instruction the fake itself wrote for that output, or for one output in three an unrelated
instruction (see `self_consistent`). Answers depend only on the prompt and the seed (back-translations
also on what this fake wrote before), so an interrupted run and an uninterrupted one get the same
answers for the same calls. `hold()` makes it
stop answering (requests hang), so a test can kill a run at a moment when every answer it sent has
been received, and count a later identical request as a call paid twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generator"))

from fakes.httpserver import Request
from fakes.openai_server import FakeOpenAI
from pipeline_fakes import FakeLLM


def _bad_answer(prompt: str, body: dict) -> str | None:
    """Every few prompts get a bad answer instead: a truncated, unparseable or empty one."""
    digest = int(hashlib.sha256(f"{prompt}|{body.get('seed')}".encode()).hexdigest()[:8], 16)
    if digest % 11 == 0:
        return ""
    if digest % 11 == 1:
        return "Sure! Here are some ideas:\n- one\n- two\n(no layout at all)"
    return None


# The item a back-translation prompt leaves open: "n. Output:\n<output>\n\nn. Instruction:\n".
_BACK_TRANSLATION = re.compile(r"(\d+)\. Output:\n(.*)\n\n\1\. Instruction:\n\Z", re.DOTALL)
# One generated item of the fake's own layout: its instruction's first line, and its output.
_ITEM = re.compile(r"(?:\d+\. Instruction:\n)?([^\n]+)\n.*\d+\. Output:\n(.+)", re.DOTALL)
UNRELATED_INSTRUCTION = "Name three rivers that flow through Europe."


def self_consistent(output: str) -> bool:
    """Whether the fake back-translates this output to (a paraphrase of) its instruction: two in three."""
    return int(hashlib.sha256(output.strip().encode()).hexdigest()[:8], 16) % 3 != 0


class LayoutOpenAI(FakeOpenAI):
    def __init__(self, **kwargs):
        self._llm = FakeLLM()
        super().__init__(responder=self._respond, **kwargs)
        self._held = False
        # Once this many generations were answered, leave the rest unanswered (see `hold`).
        self.hold_after: int | None = None
        self.held_count = 0
        # Output -> instruction of every item it wrote, to back-translate like a model that can;
        # indexed only when a back-translation is asked for (most runs never ask).
        self._instruction_of: dict[str, str] = {}
        self._unindexed: list[str] = []

    def instruction_of(self, output: str) -> str | None:
        """The instruction of the item this fake wrote with `output`, if it wrote one."""
        for text in self._unindexed:
            for item in text.split("\n###\n"):
                if (found := _ITEM.match(item)) is not None:
                    self._instruction_of[found.group(2).strip()] = found.group(1).strip()
        self._unindexed.clear()
        return self._instruction_of.get(output)

    def _back_translate(self, output: str) -> str:
        instruction = self.instruction_of(output.strip())
        if instruction is None or not self_consistent(output):
            return f"{UNRELATED_INSTRUCTION}\n###\n"
        return f"Please {instruction[0].lower()}{instruction[1:]}\n###\n"

    def _respond(self, prompt: str, body: dict, index: int) -> str:
        if (asked := _BACK_TRANSLATION.match(prompt.rsplit("\n###\n", 1)[-1])) is not None:
            return self._back_translate(asked.group(2))
        bad = _bad_answer(prompt, body)
        if bad is not None:
            return bad
        text = self._llm.answer(prompt, salt=f"{body.get('seed')}/{index}")
        digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
        if digest % 7 == 0:  # cut off in the middle of the last item
            text = text[: max(1, int(len(text) * 0.8))]
        self._unindexed.append(text)
        return text

    def hold(self) -> None:
        """From now on, leave every generation request unanswered."""
        self._held = True

    def release(self) -> None:
        self._held, self.hold_after = False, None

    def handle(self, request: Request):
        if self.hold_after is not None and len(self.log.calls) >= self.hold_after:
            self._held = True
        if self._held and request.method == "POST":
            self.held_count += 1
            return asyncio.Event().wait()  # never answered; the killed client closes the connection
        return super().handle(request)

    def completed_tags(self) -> list[str]:
        """The prompt+seed of every generation answered, in order."""
        return [call.tag for call in self.log.calls]
