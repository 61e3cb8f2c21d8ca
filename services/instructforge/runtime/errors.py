"""Domain exceptions shared by every service.

Core logic raises these; it never imports grpc. The server runtime maps each one to a gRPC status
in one place (``instructforge.runtime.interceptor``), with an ``ErrorInfo`` reason and, for bad
input, the path of the offending field. Keeping the mapping out of the core keeps the core usable
from tests, benchmarks and embedded callers without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: a path such as ``items[3].text`` and what is wrong with it."""

    field: str
    description: str


class InstructForgeError(Exception):
    """Base of every domain error.

    ``grpc_code`` names a ``grpc.StatusCode`` member (kept as a string so this module stays
    grpc-free); ``reason`` is the stable, UPPER_SNAKE machine-readable cause sent in ``ErrorInfo``.
    """

    grpc_code = "INTERNAL"
    default_reason = "INTERNAL"
    # Temporary errors may succeed when retried after a delay; permanent ones never will.
    temporary = False

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(InstructForgeError):
    """The request itself is wrong; ``violations`` name each bad field."""

    grpc_code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        violations: list[FieldViolation] | None = None,
        reason: str | None = None,
    ):
        found = list(violations or [])
        if field is not None:
            found.insert(0, FieldViolation(field, message or "is invalid"))
        if not found:
            raise ValueError("InvalidArgument needs a field or violations: the caller must learn what is wrong")
        self.violations = found
        text = message if field is None and message else "; ".join(f"{v.field}: {v.description}" for v in found)
        super().__init__(text, reason=reason)


class NotFound(InstructForgeError):
    grpc_code = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(InstructForgeError):
    grpc_code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(InstructForgeError):
    grpc_code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class OutOfRange(InstructForgeError):
    grpc_code = "OUT_OF_RANGE"
    default_reason = "OUT_OF_RANGE"


class PermissionDenied(InstructForgeError):
    grpc_code = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(InstructForgeError):
    grpc_code = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class ResourceExhausted(InstructForgeError):
    grpc_code = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"
    temporary = True


class Unavailable(InstructForgeError):
    grpc_code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"
    temporary = True


class DeadlineExceeded(InstructForgeError):
    grpc_code = "DEADLINE_EXCEEDED"
    default_reason = "DEADLINE_EXCEEDED"
    temporary = True


class Aborted(InstructForgeError):
    grpc_code = "ABORTED"
    default_reason = "ABORTED"
    temporary = True


class Unimplemented(InstructForgeError):
    grpc_code = "UNIMPLEMENTED"
    default_reason = "NOT_IMPLEMENTED"


class DataLoss(InstructForgeError):
    grpc_code = "DATA_LOSS"
    default_reason = "DATA_LOSS"


class Internal(InstructForgeError):
    grpc_code = "INTERNAL"
    default_reason = "INTERNAL"


@dataclass
class ViolationCollector:
    """Gathers every bad field of a request so the caller learns all of them at once."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.violations.append(FieldViolation(field_path, description))

    def check(self, ok: bool, field_path: str, description: str) -> None:
        if not ok:
            self.add(field_path, description)

    def raise_if_any(self, reason: str | None = None) -> None:
        if self.violations:
            raise InvalidArgument(violations=self.violations, reason=reason)
