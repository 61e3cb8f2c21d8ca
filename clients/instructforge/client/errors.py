"""Failed calls as typed exceptions, with what the server put in `grpc-status-details-bin`.

The runtime's interceptor sends a `google.rpc.Status` whose details carry an `ErrorInfo` (a stable
UPPER_SNAKE `reason` plus metadata) and, for bad input, a `BadRequest` naming every bad field. A
caller should branch on the exception class (or `.code`) and `.reason`, never on message text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"

# Codes that may succeed when the same call is made again after a delay.
TEMPORARY_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    }
)


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: a path such as `items[3].text` and what is wrong with it."""

    field: str
    description: str


class ApiError(Exception):
    """A call that ended with a non-OK status.

    `reason` is the server's `ErrorInfo` reason, or the code's name when the server sent none (a
    status from gRPC itself, e.g. a deadline or a refused connection).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        domain: str = "",
        field_violations: tuple[FieldViolation, ...] = (),
        metadata: Mapping[str, str] | None = None,
    ):
        super().__init__(
            f"{code.name}: {message}" + (f" [{reason}]" if reason and reason != code.name else "")
        )
        self.code = code
        self.message = message
        self.reason = reason or code.name
        self.domain = domain
        self.field_violations = field_violations
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def temporary(self) -> bool:
        """True when retrying later may succeed; permanent errors fail the same way every time."""
        return self.code in TEMPORARY_CODES

    @property
    def refuses_caller(self) -> bool:
        """True when the server refused the caller rather than the request (a wrong or missing token,
        no permission): no other request with the same credentials will fare better."""
        return self.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> ApiError:
        """The subclass for the call's code, filled from its rich status when the server sent one."""
        code = error.code()
        message = error.details() or ""
        error_class = _BY_CODE.get(code, ApiError)
        status = _rich_status(error.trailing_metadata())
        if status is None:
            return error_class(code, message)
        info, violations = error_details_pb2.ErrorInfo(), list[FieldViolation]()
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
        return error_class(
            code,
            status.message or message,
            reason=info.reason or None,
            domain=info.domain,
            field_violations=tuple(violations),
            metadata=info.metadata,
        )


def _rich_status(trailing_metadata: Iterable[tuple[str, str | bytes]] | None) -> status_pb2.Status | None:
    """The `google.rpc.Status` in the trailers; None when absent or unreadable (never fail twice)."""
    for key, value in trailing_metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


class CancelledError(ApiError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgumentError(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(ApiError):
    code = grpc.StatusCode.ABORTED


class OutOfRangeError(ApiError):
    code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(ApiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(ApiError):
    code = grpc.StatusCode.INTERNAL


class UnavailableError(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLossError(ApiError):
    code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {c.code: c for c in ApiError.__subclasses__()}
