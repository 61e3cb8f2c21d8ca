"""The one generic service client: a channel, default deadlines, and failures raised as `ApiError`.

Concrete clients (`services.py`) only name their service and declare their RPCs (see `rpc.py`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Self

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from instructforge.client.channel import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_RETRY,
    ClientTLS,
    RetryPolicy,
    create_channel,
)
from instructforge.client.errors import ApiError
from instructforge.client.rpc import Metadata, Rpc, unary

# A per-call or per-client timeout meaning "no deadline" (None means "the client's default").
NO_DEADLINE = math.inf

_HEALTH_CHECK = unary(health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse)
_HEALTH_CHECK.attach(health_pb2.DESCRIPTOR.services_by_name["Health"], "check")


class ServiceClient:
    """Base of the typed clients: one channel, default deadlines, failures raised as `ApiError`.

    `timeout` is the deadline in seconds of calls with one response; `stream_timeout` that of
    streaming calls, unbounded by default because a stream lives as long as its work (a pipeline,
    a training job). None takes the class default; `NO_DEADLINE` means none. Every call can
    override it with its own `timeout=`.
    """

    service: ClassVar[ServiceDescriptor]
    default_timeout: ClassVar[float] = 30.0
    default_stream_timeout: ClassVar[float] = NO_DEADLINE

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout: float | None = None,
        stream_timeout: float | None = None,
        owns_channel: bool = False,
    ):
        self.channel = channel
        self.timeout = self.default_timeout if timeout is None else timeout
        self.stream_timeout = self.default_stream_timeout if stream_timeout is None else stream_timeout
        self._owns_channel = owns_channel
        self._callables: dict[str, Any] = {}

    @classmethod
    def connect(
        cls,
        target: str | Sequence[str],
        *,
        token: str | None = None,
        tls: ClientTLS | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        timeout: float | None = None,
        stream_timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> Self:
        """A client on a channel of its own (see `create_channel`), closed with the client."""
        channel = create_channel(
            target, token=token, tls=tls, retry=retry, max_message_bytes=max_message_bytes, options=options
        )
        return cls(channel, timeout=timeout, stream_timeout=stream_timeout, owns_channel=True)

    async def close(self) -> None:
        """Close the channel if this client opened it; a shared channel is its owner's to close."""
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def health(self, service: str = "", *, timeout: float | None = None) -> int:
        """The standard health check: `health_pb2.HealthCheckResponse.SERVING`, `NOT_SERVING`, ….

        `service=""` asks about the server as a whole; the service's full name about the service.
        """
        response = await self._unary(
            _HEALTH_CHECK, health_pb2.HealthCheckRequest(service=service), timeout, ()
        )
        return response.status  # type: ignore[attr-defined, no-any-return]

    def _deadline(self, rpc: Rpc[Any], timeout: float | None) -> float | None:
        if timeout is None:
            timeout = self.stream_timeout if rpc.streaming else self.timeout
        return None if math.isinf(timeout) else timeout

    def _callable(self, rpc: Rpc[Any]) -> Any:
        found = self._callables.get(rpc.path)
        if found is None:
            kind = {
                (False, False): self.channel.unary_unary,
                (False, True): self.channel.unary_stream,
                (True, False): self.channel.stream_unary,
                (True, True): self.channel.stream_stream,
            }[(rpc.client_streaming, rpc.server_streaming)]
            found = kind(
                rpc.path,
                request_serializer=rpc.request_type.SerializeToString,
                response_deserializer=rpc.response_type.FromString,
            )
            self._callables[rpc.path] = found
        return found

    async def _unary(self, rpc: Rpc[Any], request: Any, timeout: float | None, metadata: Metadata) -> Message:
        """A call with one response (its request may be a stream)."""
        try:
            response: Message = await self._callable(rpc)(
                request, timeout=self._deadline(rpc, timeout), metadata=metadata or None
            )
        except grpc.aio.AioRpcError as exc:
            raise ApiError.from_rpc_error(exc) from exc
        return response

    async def _stream(
        self, rpc: Rpc[Any], request: Any, timeout: float | None, metadata: Metadata
    ) -> AsyncIterator[Message]:
        """A call with streamed responses; leaving the loop early cancels the call on the server too."""
        call = self._callable(rpc)(request, timeout=self._deadline(rpc, timeout), metadata=metadata or None)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            raise ApiError.from_rpc_error(exc) from exc
        finally:
            call.cancel()
