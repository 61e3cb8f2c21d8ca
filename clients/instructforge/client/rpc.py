"""How a client declares an RPC: one checked, typed line per RPC of the contract.

A concrete client names each RPC in snake_case:

    create_collection = unary(dedup_pb2.CreateCollectionRequest, dedup_pb2.CreateCollectionResponse)

The declaration is checked against the proto's descriptor when the class is defined (name, message
types, streaming kind), so a client that drifts from its contract fails at import, not mid-pipeline.
Type checkers see each attribute as an async method of exactly those message types.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from types import MethodType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, overload

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

if TYPE_CHECKING:
    from instructforge.client.base import ServiceClient

Metadata = Sequence[tuple[str, str | bytes]]
ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)
_Req_contra = TypeVar("_Req_contra", bound=Message, contravariant=True)
_Resp_co = TypeVar("_Resp_co", bound=Message, covariant=True)
CallT = TypeVar("CallT")


class UnaryCall(Protocol[_Req_contra, _Resp_co]):
    async def __call__(
        self, request: _Req_contra, /, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> _Resp_co: ...


class ServerStreamCall(Protocol[_Req_contra, _Resp_co]):
    def __call__(
        self, request: _Req_contra, /, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> AsyncIterator[_Resp_co]: ...


class ClientStreamCall(Protocol[_Req_contra, _Resp_co]):
    async def __call__(
        self,
        requests: Iterable[_Req_contra] | AsyncIterable[_Req_contra],
        /,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> _Resp_co: ...


class BidiStreamCall(Protocol[_Req_contra, _Resp_co]):
    def __call__(
        self,
        requests: Iterable[_Req_contra] | AsyncIterable[_Req_contra],
        /,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[_Resp_co]: ...


def snake_case(name: str) -> str:
    """`CheckAndInsert` -> `check_and_insert`, the Python name of an RPC."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Rpc(Generic[CallT]):
    """One RPC of a client class; read from a client instance, it is the bound, typed call."""

    def __init__(
        self,
        request_type: type[Message],
        response_type: type[Message],
        client_streaming: bool,
        server_streaming: bool,
    ):
        self.request_type, self.response_type = request_type, response_type
        self.client_streaming, self.server_streaming = client_streaming, server_streaming
        self.path = ""

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming

    def __set_name__(self, owner: type, name: str) -> None:
        self.attach(owner.service, name)  # type: ignore[attr-defined]
        self.function = self._function(f"{owner.__name__}.{name}")

    def attach(self, service: ServiceDescriptor, name: str) -> None:
        """Bind to the RPC of `service` whose snake_case name is `name`, checking the declaration."""
        methods = {snake_case(m.name): m for m in service.methods}
        method = methods.get(name)
        if method is None:
            raise TypeError(f"{service.full_name} has no RPC whose snake_case name is {name!r}")
        declared = (
            self.request_type.DESCRIPTOR.full_name,
            self.response_type.DESCRIPTOR.full_name,
            self.client_streaming,
            self.server_streaming,
        )
        actual = (
            method.input_type.full_name,
            method.output_type.full_name,
            method.client_streaming,
            method.server_streaming,
        )
        if declared != actual:
            raise TypeError(
                f"{name} is declared as {declared} but {service.full_name}/{method.name} is {actual}"
            )
        self.path = f"/{service.full_name}/{method.name}"

    def _function(self, qualname: str) -> Any:
        call = _stream_method(self) if self.server_streaming else _unary_method(self)
        call.__name__, call.__qualname__ = qualname.rpartition(".")[2], qualname
        call.__doc__ = f"{self.path}: {self.request_type.__name__} -> {self.response_type.__name__}"
        return call

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, obj: ServiceClient, owner: type | None = None) -> CallT: ...

    def __get__(self, obj: ServiceClient | None, owner: type | None = None) -> Any:
        return self if obj is None else MethodType(self.function, obj)


def unary(request: type[ReqT], response: type[RespT]) -> Rpc[UnaryCall[ReqT, RespT]]:
    return Rpc(request, response, False, False)


def server_stream(request: type[ReqT], response: type[RespT]) -> Rpc[ServerStreamCall[ReqT, RespT]]:
    return Rpc(request, response, False, True)


def client_stream(request: type[ReqT], response: type[RespT]) -> Rpc[ClientStreamCall[ReqT, RespT]]:
    return Rpc(request, response, True, False)


def bidi_stream(request: type[ReqT], response: type[RespT]) -> Rpc[BidiStreamCall[ReqT, RespT]]:
    return Rpc(request, response, True, True)


def _unary_method(rpc: Rpc[Any]) -> Any:
    async def call(
        client: ServiceClient, request: Any, /, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> Message:
        return await client._unary(rpc, request, timeout, metadata)

    return call


def _stream_method(rpc: Rpc[Any]) -> Any:
    def call(
        client: ServiceClient, request: Any, /, *, timeout: float | None = None, metadata: Metadata = ()
    ) -> AsyncIterator[Message]:
        return client._stream(rpc, request, timeout, metadata)

    return call
