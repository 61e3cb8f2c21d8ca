"""What a collection is configured with, validated once, persisted as JSON next to its data.

Defaults are the seeds' rule: ROUGE-L F ``> 0.7`` against everything kept drops an item (so a score of
exactly 0.7 is kept); ``>=`` is selectable. Semantic dedup is off unless a threshold is given.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from instructforge.dedup import rouge
from instructforge.dedup.decide import Item
from instructforge.dedup.embedder import CLIENT, DEFAULT_MODEL, validate_model
from instructforge.dedup.postings import MAX_TOKENS
from instructforge.dedup.semantic import IndexPolicy
from instructforge.dedup.tokenize import rouge_tokens
from instructforge.runtime.errors import InvalidArgument, ViolationCollector

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
MAX_KEY_CHARS = 1024
MAX_DIMENSION = 16384
NO_SEMANTIC = "is given, but the collection has no semantic dedup (its semantic threshold is unset)"
PARTITION, GLOBAL = "partition", "collection"
SCOPES = (PARTITION, GLOBAL)


@dataclass(frozen=True)
class Limits:
    """Per-node limits; the service settings fill these in."""

    max_batch_items: int = 100_000
    max_text_bytes: int = 256 * 1024
    max_entries: int = 10_000_000
    max_references: int = 100_000
    remembered_requests: int = 10_000


@dataclass(frozen=True)
class LexicalConfig:
    threshold: float = 0.7
    comparison: str = rouge.GT


@dataclass(frozen=True)
class SemanticConfig:
    threshold: float = 0.9
    comparison: str = rouge.GT
    model: str = DEFAULT_MODEL
    index: IndexPolicy = field(default_factory=IndexPolicy)
    dimension: int = 0
    """The vectors' length: required for ``client``; for a model, filled in from it when created."""


@dataclass(frozen=True)
class CollectionConfig:
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    semantic: SemanticConfig | None = None
    references: tuple[Item, ...] = ()
    """Texts that count as kept before anything is inserted (seed tasks). One with a partition is seen
    only from that partition; one without, from every partition."""
    default_scope: str = GLOBAL
    drop_exact_duplicates: bool = False
    """Also drop byte-identical repeats that ROUGE-L cannot see (texts without tokens, or a threshold
    no F can exceed). Off by default: then decisions are exactly rouge-score's."""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["references"] = [[r.text, r.id, r.partition] for r in self.references]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> CollectionConfig:
        sem = data.get("semantic")
        semantic = None
        if sem is not None:
            semantic = SemanticConfig(**{**sem, "index": IndexPolicy(**sem.get("index", {}))})
        return cls(
            lexical=LexicalConfig(**data.get("lexical", {})),
            semantic=semantic,
            references=tuple(Item(*r) for r in data.get("references", ())),
            default_scope=data.get("default_scope", GLOBAL),
            drop_exact_duplicates=bool(data.get("drop_exact_duplicates", False)),
        )

    def validate(self, limits: Limits, prefix: str = "config") -> None:
        """Raise :class:`InvalidArgument` naming every bad field at once."""
        bad = ViolationCollector()
        lex = self.lexical
        if lex.comparison not in rouge.COMPARISONS:
            bad.add(f"{prefix}.lexical.comparison", "must be '>' or '>='")
        if not _finite(lex.threshold) or not 0.0 <= lex.threshold <= 1.0:
            bad.add(f"{prefix}.lexical.threshold", f"must be a number in [0, 1], got {lex.threshold!r}")
        elif lex.comparison == rouge.GE and lex.threshold == 0.0:
            bad.add(f"{prefix}.lexical.threshold", "'>= 0' would drop every item after the first; use '> 0'")
        sem = self.semantic
        if sem is not None:
            if sem.comparison not in rouge.COMPARISONS:
                bad.add(f"{prefix}.semantic.comparison", "must be '>' or '>='")
            if not _finite(sem.threshold) or not -1.0 <= sem.threshold <= 1.0:
                bad.add(f"{prefix}.semantic.threshold", f"must be a cosine in [-1, 1], got {sem.threshold!r}")
            if not isinstance(sem.dimension, int) or not 0 <= sem.dimension <= MAX_DIMENSION:
                bad.add(f"{prefix}.semantic.dimension", f"must be in [0, {MAX_DIMENSION}], got {sem.dimension!r}")
            elif sem.model == CLIENT and sem.dimension == 0:
                bad.add(f"{prefix}.semantic.dimension",
                        f"is required with embedding_model {CLIENT!r}: the length of the vectors callers send")
            for check in (
                lambda: validate_model(sem.model, f"{prefix}.semantic.model", client=True),
                lambda: sem.index.validate(f"{prefix}.semantic.index"),
            ):
                try:
                    check()
                except InvalidArgument as exc:
                    bad.violations.extend(exc.violations)
        if self.default_scope not in SCOPES:
            bad.add(f"{prefix}.default_scope", f"must be one of {SCOPES}")
        if len(self.references) > limits.max_references:
            bad.add(f"{prefix}.references", f"at most {limits.max_references} references, got {len(self.references)}")
        for k, ref in enumerate(self.references):
            problem = text_problem(ref.text, limits)
            if problem:
                bad.add(f"{prefix}.references[{k}].text", problem)
            for attr in ("id", "partition"):
                if len(getattr(ref, attr)) > MAX_KEY_CHARS:
                    bad.add(f"{prefix}.references[{k}].{attr}", f"must be at most {MAX_KEY_CHARS} characters")
            if ref.embedding is not None and sem is None:
                bad.add(f"{prefix}.references[{k}].embedding", NO_SEMANTIC)
        bad.raise_if_any()


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def text_problem(text, limits: Limits) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if not isinstance(text, str):
        return f"must be a string, got {type(text).__name__}"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    if size > limits.max_text_bytes:
        return f"is {size} bytes; the limit is {limits.max_text_bytes}"
    if size > 2 * MAX_TOKENS and len(rouge_tokens(text)) > MAX_TOKENS:
        return f"has more than {MAX_TOKENS} ROUGE tokens"
    return None


def validate_name(name, field: str = "name") -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidArgument(
            "must be 1-128 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", field=field
        )
