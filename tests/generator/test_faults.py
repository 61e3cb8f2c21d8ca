"""Fault classification, Retry-After parsing and the caller-facing errors."""

import email.utils
import time

import pytest

from instructforge.generator.faults import (
    Fault,
    ProviderError,
    fault_for_status,
    parse_retry_after,
    to_domain_error,
)
from instructforge.runtime.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    # The millisecond header (OpenAI, Azure) is more precise and wins.
    assert parse_retry_after({"retry-after": "1", "retry-after-ms": "120"}) == pytest.approx(0.12)
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1.01)
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-4"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status,message,code,fault", [
    (429, "Rate limit reached", "rate_limit_exceeded", Fault.RATE_LIMITED),
    (429, "You exceeded your current quota", "insufficient_quota", Fault.QUOTA_EXHAUSTED),
    (500, "boom", None, Fault.SERVER_ERROR),
    (502, "bad gateway", None, Fault.SERVER_ERROR),
    (503, "overloaded", None, Fault.OVERLOADED),
    (529, "Overloaded", "overloaded_error", Fault.OVERLOADED),
    (408, "timeout", None, Fault.SERVER_ERROR),
    (400, "This model's maximum context length is 4097 tokens", "context_length_exceeded", Fault.CONTEXT_LENGTH),
    (400, "prompt is too long: 215000 tokens > 200000 maximum", "invalid_request_error", Fault.CONTEXT_LENGTH),
    (400, "rejected by our safety system", "content_policy_violation", Fault.CONTENT_POLICY),
    (400, "Invalid value for 'temperature'", "invalid_value", Fault.BAD_REQUEST),
    (422, "unprocessable", None, Fault.BAD_REQUEST),
    (401, "Incorrect API key", "invalid_api_key", Fault.UNAUTHENTICATED),
    (403, "not allowed", None, Fault.PERMISSION_DENIED),
    (404, "model not found", None, Fault.NOT_FOUND),
])
def test_status_classification(status, message, code, fault):
    assert fault_for_status(status, message, code) is fault


def test_retryable_set_is_what_the_issue_says():
    retryable = {f for f in Fault if f.retryable}
    assert retryable == {Fault.RATE_LIMITED, Fault.OVERLOADED, Fault.SERVER_ERROR, Fault.TIMEOUT,
                         Fault.CONNECTION, Fault.TRUNCATED}
    assert {f for f in Fault if f.overload} == {Fault.RATE_LIMITED, Fault.OVERLOADED}


@pytest.mark.parametrize("fault,cls,reason", [
    (Fault.CONTEXT_LENGTH, InvalidArgument, "CONTEXT_LENGTH_EXCEEDED"),
    (Fault.CONTENT_POLICY, InvalidArgument, "CONTENT_POLICY_VIOLATION"),
    (Fault.BAD_REQUEST, InvalidArgument, "PROVIDER_REJECTED_REQUEST"),
    (Fault.UNAUTHENTICATED, Unauthenticated, "PROVIDER_UNAUTHENTICATED"),
    (Fault.PERMISSION_DENIED, PermissionDenied, "PROVIDER_PERMISSION_DENIED"),
    (Fault.NOT_FOUND, NotFound, "PROVIDER_MODEL_NOT_FOUND"),
    (Fault.QUOTA_EXHAUSTED, ResourceExhausted, "PROVIDER_QUOTA_EXHAUSTED"),
    (Fault.RATE_LIMITED, ResourceExhausted, "PROVIDER_RATE_LIMITED"),
    (Fault.OVERLOADED, Unavailable, "PROVIDER_OVERLOADED"),
    (Fault.TIMEOUT, Unavailable, "PROVIDER_TIMEOUT"),
    (Fault.CONNECTION, Unavailable, "PROVIDER_UNREACHABLE"),
    (Fault.TRUNCATED, Unavailable, "PROVIDER_BAD_RESPONSE"),
    (Fault.SERVER_ERROR, Unavailable, "PROVIDER_ERROR"),
])
def test_domain_errors(fault, cls, reason):
    error = to_domain_error(ProviderError(fault, "details", status=418, retry_after=1.5), "dep-a", "chat.messages", 3)
    assert type(error) is cls and error.reason == reason
    if cls is InvalidArgument:
        assert error.violations[0].field in ("chat.messages", "request")
    else:
        assert error.metadata["deployment"] == "dep-a" and error.metadata["attempts"] == "3"
    assert "dep-a" in error.message


def test_bad_request_names_the_providers_parameter_as_our_field():
    error = to_domain_error(ProviderError(Fault.BAD_REQUEST, "bad", param="temperature"), "d", "text")
    assert error.violations[0].field == "sampling.temperature"
