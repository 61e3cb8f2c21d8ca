"""The direct client's reading of error answers: the same faults the SDK path finds, from any server's envelope."""

import pytest

from instructforge.generator.backends.openai_direct import status_error
from instructforge.generator.faults import Fault


@pytest.mark.parametrize("status,body,fault,param", [
    (429, b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}',
     Fault.RATE_LIMITED, None),
    (429, b'{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}}',
     Fault.QUOTA_EXHAUSTED, None),
    (400, (b'{"error": {"message": "This model\'s maximum context length is 8192 tokens", "param": "messages",'
           b' "code": "context_length_exceeded"}}'), Fault.CONTEXT_LENGTH, "messages"),
    (400, (b'{"object": "error", "message": "temperature must be non-negative", "type": "BadRequestError",'
           b' "param": "temperature", "code": 400}'), Fault.BAD_REQUEST, "temperature"),  # vLLM's flat envelope
    (400, b'{"error": {"message": "flagged by our safety system", "code": "content_policy_violation"}}',
     Fault.CONTENT_POLICY, None),
    (502, b"<html><body>Bad Gateway</body></html>", Fault.SERVER_ERROR, None),  # a proxy's error page
    (503, b"", Fault.OVERLOADED, None),
    (401, b'{"error": {"message": "Incorrect API key provided"}}', Fault.UNAUTHENTICATED, None),
])
def test_error_answers_are_classified_like_the_sdk_path(status, body, fault, param):
    error = status_error(status, body, {"retry-after-ms": "1500"})
    assert error.fault is fault and error.status == status and error.param == param
    assert error.retry_after == 1.5
    assert error.message.startswith(f"Error code: {status} - ")
    assert len(error.message) < 600  # an error page is cut, not copied whole into a status message


def test_a_non_json_error_page_is_quoted_not_lost():
    error = status_error(502, b"upstream connect error or disconnect/reset before headers", {})
    assert "upstream connect error" in error.message and error.retry_after is None
