"""Turning a failed call's status and trailers into a typed ApiError."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from instructforge.client import ApiError, InvalidArgumentError, UnavailableError
from instructforge.client.errors import STATUS_DETAILS_KEY, TEMPORARY_CODES


def _rpc_error(code: grpc.StatusCode, details: str, *status_details) -> grpc.aio.AioRpcError:
    packed = []
    for detail in status_details:
        if isinstance(detail, bytes):
            return grpc.aio.AioRpcError(
                code, grpc.aio.Metadata(), grpc.aio.Metadata((STATUS_DETAILS_KEY, detail)), details
            )
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    status = status_pb2.Status(code=code.value[0], message=details, details=packed)
    trailers = (
        grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())) if packed else grpc.aio.Metadata()
    )
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details)


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_every_code_has_a_class_the_caller_can_catch(code):
    error = ApiError.from_rpc_error(_rpc_error(code, "boom"))
    assert error.code is code and isinstance(error, ApiError)
    assert (type(error) is ApiError) == (code is grpc.StatusCode.UNKNOWN)
    assert type(error).code is code or code is grpc.StatusCode.UNKNOWN
    assert error.temporary == (code in TEMPORARY_CODES)
    assert error.reason == code.name and error.field_violations == ()


def test_only_codes_worth_retrying_later_are_temporary():
    assert {c.name for c in TEMPORARY_CODES} == {
        "UNAVAILABLE",
        "RESOURCE_EXHAUSTED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
    }


def test_error_info_and_bad_request_are_read_from_the_trailer():
    info = error_details_pb2.ErrorInfo(reason="BAD_ITEMS", domain="instructforge", metadata={"count": "2"})
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="items[0].text", description="too long")
        ]
    )
    error = ApiError.from_rpc_error(
        _rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "items[0].text: too long", info, bad)
    )
    assert isinstance(error, InvalidArgumentError)
    assert (error.reason, error.domain, error.metadata) == ("BAD_ITEMS", "instructforge", {"count": "2"})
    assert [(v.field, v.description) for v in error.field_violations] == [("items[0].text", "too long")]
    assert str(error) == "INVALID_ARGUMENT: items[0].text: too long [BAD_ITEMS]"


def test_unreadable_details_still_give_the_code_and_message():
    error = ApiError.from_rpc_error(_rpc_error(grpc.StatusCode.UNAVAILABLE, "gone", b"\xff\x00not-a-status"))
    assert isinstance(error, UnavailableError)
    assert (error.message, error.reason, error.field_violations) == ("gone", "UNAVAILABLE", ())
