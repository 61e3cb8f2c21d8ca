"""ROUGE-L tokenization, identical to rouge-score 0.1.2 without stemming, plus compact token ids.

rouge-score lowercases the text, turns every run of characters outside ``[a-z0-9]`` into a space and
splits; that is the same as finding the runs of ``[a-z0-9]`` in the lowercased text. Lowercasing must
be Python's ``str.lower`` (not ASCII folding): a few non-ASCII letters lower to ASCII ones (the Kelvin
sign becomes ``k``) and rouge-score counts them.

Each distinct token gets an integer id, and a tokenized text is kept as a ``str`` whose code points are
those ids: the LCS kernel (rapidfuzz) compares ``str`` elements by code point, so the LCS of two such
strings is the token-level LCS, computed by a bit-parallel C kernel without any per-token Python work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_TOKEN_RE = re.compile(r"[a-z0-9]+")

# Code points usable as token ids: everything except the UTF-16 surrogate block, so the sequences can
# be written with any Unicode codec. Vocabularies larger than this (~1.1 M distinct tokens) fall back
# to tuples of ints, which the LCS kernel also accepts (slower, still exact).
_SURROGATE_START = 0xD800
_SURROGATE_SIZE = 0x800
MAX_CODEPOINT_IDS = 0x110000 - _SURROGATE_SIZE


def rouge_tokens(text: str) -> list[str]:
    """The tokens rouge-score's default tokenizer yields for ``text`` (no stemming)."""
    return _TOKEN_RE.findall(text.lower())


def id_to_codepoint(token_id: int) -> int:
    return token_id if token_id < _SURROGATE_START else token_id + _SURROGATE_SIZE


def codepoint_to_id(codepoint: int) -> int:
    return codepoint if codepoint < _SURROGATE_START else codepoint - _SURROGATE_SIZE


Sequence_ = str | tuple[int, ...]
"""A tokenized text: a ``str`` of id code points, or (an id past the code points) a tuple of the same
values as ints; the LCS kernel treats both alike, so the two forms compare correctly."""


class Vocabulary:
    """Token string <-> dense id. Append-only, so ids stay valid for everything already stored."""

    __slots__ = ("_ids", "_tokens")

    def __init__(self, tokens: Iterable[str] = ()):
        self._tokens: list[str] = []
        self._ids: dict[str, int] = {}
        for token in tokens:
            self.id_of(token)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def tokens(self) -> list[str]:
        return self._tokens

    def id_of(self, token: str) -> int:
        found = self._ids.get(token)
        if found is None:
            found = len(self._tokens)
            self._ids[token] = found
            self._tokens.append(token)
        return found

    def encode(self, text: str) -> Sequence_:
        """Tokenize ``text`` and return its id sequence (see the module docstring)."""
        get, id_of = self._ids.get, self.id_of
        ids = [i if (i := get(t)) is not None else id_of(t) for t in rouge_tokens(text)]
        return ids_to_sequence(ids)

    def decode(self, seq: Sequence_) -> list[str]:
        return [self._tokens[i] for i in sequence_ids(seq)]


class VocabularyOverlay:
    """Read-only use of a vocabulary: unknown tokens get private ids above the shared ones.

    Concurrent readers (``Check``) tokenize through an overlay each, so they never race on the
    shared vocabulary; a token the collection has never seen cannot match anything stored anyway.
    """

    __slots__ = ("_base", "_extra")

    def __init__(self, base: Vocabulary):
        self._base = base
        self._extra: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._base) + len(self._extra)

    def id_of(self, token: str) -> int:
        found = self._base._ids.get(token)
        if found is None:
            found = self._extra.get(token)
            if found is None:
                found = self._extra[token] = len(self)
        return found

    def encode(self, text: str) -> Sequence_:
        return ids_to_sequence([self.id_of(t) for t in rouge_tokens(text)])


def ids_to_sequence(ids: Sequence[int]) -> Sequence_:
    top = max(ids, default=0)
    if top < _SURROGATE_START:  # the common case: no remapping needed
        return "".join(map(chr, ids))
    if top >= MAX_CODEPOINT_IDS:  # same values as the code points a str would hold, just unbounded
        return tuple(map(id_to_codepoint, ids))
    return "".join(map(chr, map(id_to_codepoint, ids)))


def sequence_ids(seq: Sequence_) -> list[int]:
    values = map(ord, seq) if isinstance(seq, str) else seq
    return [codepoint_to_id(v) for v in values]
