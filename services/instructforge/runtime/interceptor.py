"""The one server interceptor: authentication, request validation, metrics and error mapping.

Every RPC of every service passes through `RuntimeInterceptor`, so these concerns live in one place:

- bearer-token authentication (the standard health service is exempt, for probes);
- unary requests are checked against the field rules of the contract before the handler runs
  (streamed requests are validated per message by the service, so one bad item fails alone);
- Prometheus counters, latency histogram and in-flight gauge by service, method and code;
- domain exceptions become a gRPC status with a `google.rpc.Status` carrying an `ErrorInfo` reason
  and, for bad input, a `BadRequest` with every field violation. Unexpected exceptions are logged
  with their traceback and reach the caller as INTERNAL with an id to find that log line.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from instructforge.runtime.errors import InstructForgeError, InvalidArgument
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.validation import validate

log = logging.getLogger(__name__)

ERROR_DOMAIN = "instructforge"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def status_for(error: InstructForgeError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """The gRPC code and rich status a domain error maps to."""
    code = grpc.StatusCode[error.grpc_code]
    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    details.append(info)
    if isinstance(error, InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message, details=packed)
    return code, status


class _Call:
    """Book-keeping of one RPC: metrics labels, start time, final code."""

    __slots__ = ("code", "labels", "start")

    def __init__(self, labels: tuple[str, str, str]):
        self.labels = labels
        self.start = time.perf_counter()
        self.code = "OK"


class RuntimeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics, auth_tokens: Sequence[str] = (), validate_requests: bool = True):
        self._metrics = metrics
        self._tokens = [t.encode() for t in auth_tokens]
        self._validate = validate_requests

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        service, _, name = method.lstrip("/").rpartition("/")
        needs_auth = bool(self._tokens) and not method.startswith(HEALTH_PREFIX)
        if handler.unary_unary:
            kind, inner = "unary", handler.unary_unary
        elif handler.unary_stream:
            kind, inner = "server_stream", handler.unary_stream
        elif handler.stream_unary:
            kind, inner = "client_stream", handler.stream_unary
        else:
            kind, inner = "bidi_stream", handler.stream_stream
        labels = (service, name, kind)
        validate_request = self._validate and kind in ("unary", "server_stream")
        streaming_response = kind in ("server_stream", "bidi_stream")
        wrapped = self._wrap(inner, labels, needs_auth, validate_request, streaming_response)
        factory = {
            "unary": grpc.unary_unary_rpc_method_handler,
            "server_stream": grpc.unary_stream_rpc_method_handler,
            "client_stream": grpc.stream_unary_rpc_method_handler,
            "bidi_stream": grpc.stream_stream_rpc_method_handler,
        }[kind]
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, inner: Callable, labels, needs_auth: bool, validate_request: bool, streaming: bool):
        if streaming:

            async def stream_behavior(request, context):
                call = await self._begin(labels, needs_auth, validate_request, request, context)
                try:
                    result = inner(request, context)
                    if inspect.isasyncgen(result):
                        async for response in result:
                            yield response
                    else:
                        await result
                except BaseException as exc:  # noqa: BLE001 - mapped and re-raised below
                    await self._fail(call, exc, context)
                finally:
                    self._end(call)

            return stream_behavior

        async def unary_behavior(request, context):
            call = await self._begin(labels, needs_auth, validate_request, request, context)
            try:
                return await inner(request, context)
            except BaseException as exc:  # noqa: BLE001 - mapped and re-raised below
                await self._fail(call, exc, context)
            finally:
                self._end(call)

        return unary_behavior

    async def _begin(self, labels, needs_auth: bool, validate_request: bool, request, context) -> _Call:
        """Count the call and run the runtime's own checks; a refused call is ended and raises here."""
        metrics = self._metrics
        metrics.started.labels(*labels).inc()
        metrics.in_flight.labels(*labels).inc()
        call = _Call(labels)
        try:
            if needs_auth and not self._authorized(context):
                raise _Rejected(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token",
                                "UNAUTHENTICATED")
            if validate_request:
                validate(request)
        except BaseException as exc:  # noqa: BLE001 - turned into a status
            try:
                await self._fail(call, exc, context)
            finally:
                self._end(call)
        return call

    def _authorized(self, context: grpc.aio.ServicerContext) -> bool:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = (value if isinstance(value, str) else value.decode()).partition(" ")
                if scheme.lower() == "bearer" and token:
                    presented = token.strip().encode()
                    # Compare with every token so timing says nothing about which one almost matched.
                    matches = [hmac.compare_digest(presented, t) for t in self._tokens]
                    return any(matches)
        return False

    async def _fail(self, call: _Call, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
        """Record the call's code and turn the exception into the caller's status; always raises."""
        if isinstance(exc, asyncio.CancelledError):
            call.code = "CANCELLED"
            raise exc
        if isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ == "AbortError":
            code = context.code()
            call.code = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
            raise exc
        if isinstance(exc, _Rejected):
            call.code = exc.code.name
            info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=ERROR_DOMAIN)
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(code=exc.code.value[0], message=exc.message, details=[detail])
            await context.abort(exc.code, exc.message, trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),))
        if isinstance(exc, InstructForgeError):
            code, status = status_for(exc)
            call.code = code.name
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS):
                log.error("rpc failed", extra={"rpc": "/".join(call.labels[:2]), "reason": exc.reason}, exc_info=exc)
            await context.abort(code, exc.message, trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),))
        error_id = uuid.uuid4().hex[:12]
        call.code = "INTERNAL"
        log.error("unexpected error in rpc", extra={"rpc": "/".join(call.labels[:2]), "error_id": error_id},
                  exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error; the server log has details under error_id={error_id}")

    def _end(self, call: _Call) -> None:
        metrics = self._metrics
        metrics.in_flight.labels(*call.labels).dec()
        metrics.handled.labels(*call.labels, call.code).inc()
        metrics.handling_seconds.labels(*call.labels, call.code).observe(time.perf_counter() - call.start)


class _Rejected(Exception):
    """A call refused by the runtime itself (before the service saw it)."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str):
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason
