"""Resource limits of one execution: defaults, maxima, and validation of what a caller asks for.

Every limit is applied in the child as an rlimit with hard = soft (so the program cannot raise it
again), except the wall-clock timeout and the output cap, which the service enforces from outside
by killing the whole sandbox.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from instructforge.runtime.errors import ViolationCollector

from .models import LimitsRequest

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    timeout_ms: int = 5_000
    memory_mb: int = 512
    nproc: int = 8
    fsize_mb: int = 16
    nofile: int = 64
    output_bytes: int = 1 * MIB  # stdout+stderr beyond this kills the run (OUTPUT_LIMIT)
    capture_bytes: int = 16 * 1024  # how much of stdout/stderr the result carries back

    @property
    def cpu_s(self) -> int:
        """CPU seconds: the wall budget rounded up plus one, so the wall timer normally fires first."""
        return math.ceil(self.timeout_ms / 1000.0) + 1

    def for_sandbox(self) -> dict:
        """The part the sandbox applies itself (as rlimits), in the units it needs."""
        return {
            "cpu_s": self.cpu_s,
            "memory_bytes": self.memory_mb * MIB,
            "nproc": self.nproc,
            "fsize_bytes": self.fsize_mb * MIB,
            "nofile": self.nofile,
            "output_bytes": self.output_bytes,
        }


# Lower bounds below which Python itself cannot start reliably.
_MINIMA = {"timeout_ms": 10, "memory_mb": 64, "nproc": 1, "fsize_mb": 1, "nofile": 16,
           "output_bytes": 1024, "capture_bytes": 0}


@dataclass(frozen=True)
class LimitPolicy:
    """The service's defaults and the most a caller may ask for."""

    default: Limits = Limits()
    maximum: Limits = Limits(timeout_ms=60_000, memory_mb=4096, nproc=64, fsize_mb=256, nofile=1024,
                             output_bytes=16 * MIB, capture_bytes=1 * MIB)

    def __post_init__(self) -> None:
        for f in fields(Limits):
            d, m = getattr(self.default, f.name), getattr(self.maximum, f.name)
            if d < _MINIMA[f.name] or d > m:
                raise ValueError(f"default {f.name}={d} must lie in [{_MINIMA[f.name]}, {m}]")

    def resolve(self, requested: LimitsRequest | None, field_prefix: str = "limits") -> Limits:
        """Defaults for zeros; InvalidArgument naming each field that is negative or out of range."""
        if requested is None:
            return self.default
        bad = ViolationCollector()
        values = {}
        for f in fields(Limits):
            asked = getattr(requested, f.name)
            path = f"{field_prefix}.{f.name}"
            if not isinstance(asked, int) or isinstance(asked, bool):
                bad.add(path, "must be an integer")
                continue
            if asked == 0:
                values[f.name] = getattr(self.default, f.name)
                continue
            lo, hi = _MINIMA[f.name], getattr(self.maximum, f.name)
            bad.check(lo <= asked <= hi, path, f"must be between {lo} and {hi} (0 = default), got {asked}")
            values[f.name] = asked
        bad.raise_if_any()
        return Limits(**values)

