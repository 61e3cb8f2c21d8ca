"""Resource limits of one execution: defaults, maxima, and validation of what a caller asks for.

Every limit is applied in the child as an rlimit with hard = soft (so the program cannot raise it
again), except the wall-clock timeout and the output cap, which the service enforces from outside
by killing the whole sandbox. Field names and units are the API's (``Limits`` in verifier.proto).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from instructforge.runtime.errors import ViolationCollector

from .models import LimitsRequest

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    timeout_ms: int = 5_000
    cpu_time_ms: int = 0  # 0 = the wall budget rounded up to whole seconds, plus one second
    memory_bytes: int = 512 * MIB  # address space of each process
    output_bytes: int = 1 * MIB  # stdout + stderr; more ends the run with OUTPUT_LIMIT
    max_processes: int = 8  # processes and threads at once, the program itself included
    file_size_bytes: int = 16 * MIB
    open_files: int = 64

    @property
    def cpu_seconds(self) -> int:
        """RLIMIT_CPU counts whole seconds; by default the wall timer fires well before it."""
        if self.cpu_time_ms:
            return max(1, math.ceil(self.cpu_time_ms / 1000.0))
        return math.ceil(self.timeout_ms / 1000.0) + 1

    def for_sandbox(self) -> dict:
        """The part the sandbox applies itself, as rlimits."""
        return {
            "cpu_s": self.cpu_seconds,
            "memory_bytes": self.memory_bytes,
            "nproc": self.max_processes,
            "fsize_bytes": self.file_size_bytes,
            "nofile": self.open_files,
            "output_bytes": self.output_bytes,
        }


# Lower bounds below which the interpreter cannot start or report reliably.
MINIMA = Limits(timeout_ms=100, cpu_time_ms=0, memory_bytes=64 * MIB, output_bytes=1024, max_processes=1,
                file_size_bytes=MIB, open_files=16)


@dataclass(frozen=True)
class LimitPolicy:
    """The service's defaults and the most a caller may ask for."""

    default: Limits = Limits()
    maximum: Limits = Limits(timeout_ms=60_000, cpu_time_ms=60_000, memory_bytes=4096 * MIB,
                             output_bytes=16 * MIB, max_processes=64, file_size_bytes=256 * MIB, open_files=1024)

    def __post_init__(self) -> None:
        for f in fields(Limits):
            d, lo, hi = getattr(self.default, f.name), getattr(MINIMA, f.name), getattr(self.maximum, f.name)
            if not (lo <= d <= hi) and not (f.name == "cpu_time_ms" and d == 0):
                raise ValueError(f"default {f.name}={d} must lie in [{lo}, {hi}]")

    def resolve(self, requested: LimitsRequest | None, field_prefix: str = "limits") -> Limits:
        """Defaults for zeros; InvalidArgument naming each field that is out of range."""
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
                continue
            lo, hi = max(getattr(MINIMA, f.name), 1), getattr(self.maximum, f.name)
            bad.check(lo <= asked <= hi, path, f"must be between {lo} and {hi} (0 = the default), got {asked}")
            values[f.name] = asked
        bad.raise_if_any()
        return replace(self.default, **values)
