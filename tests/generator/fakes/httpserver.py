"""A small HTTP/1.1 server on raw asyncio, the base of the fake provider servers.

Why not aiohttp: the fakes must misbehave on purpose (reset a connection mid-request, hang, cut a
body or an SSE stream short, send bytes that are not JSON) and the benchmark needs an "instant"
server that costs the client under test as little CPU as possible. A protocol class that parses
keep-alive requests with Content-Length bodies does both in one page.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Self

REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    413: "Payload Too Large", 422: "Unprocessable Entity", 424: "Failed Dependency",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 529: "Overloaded",
}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = 0.0
    # Set when the client closes the connection before the answer was written.
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    """A complete answer; `truncate_at` cuts the body after that many bytes and closes the connection."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    truncate_at: int | None = None

    @classmethod
    def json(cls, status: int, payload, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), dict(headers or {}))


@dataclass
class SSE:
    """A server-sent-event stream; `cut_after` events are written, then the connection drops."""

    events: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None


class Reset:
    """Close the connection with a TCP RST, without answering."""


class Hang:
    """Never answer; the request's `disconnected` event fires when the client gives up."""


Handler = Callable[[Request], "Reply | SSE | Reset | Hang | Awaitable[Reply | SSE | Reset | Hang]"]


def _head(status: int, headers: dict[str, str], content_type: str, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"content-type: {content_type}"]
    if length is not None:
        lines.append(f"content-length: {length}")
    lines.extend(f"{k}: {v}" for k, v in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Connection(asyncio.Protocol):
    def __init__(self, server: FakeHTTPServer):
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.pending: Request | None = None
        self.busy = False

    def connection_made(self, transport):
        self.transport = transport
        self.server.connections += 1
        self.server._open.add(self)

    def connection_lost(self, exc):
        self.server._open.discard(self)
        if self.pending is not None:
            self.pending.disconnected.set()

    def data_received(self, data: bytes):
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self):
        while not self.busy:
            if self.transport is None or self.transport.is_closing():
                return
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            request = Request(method, path, headers, body, asyncio.get_running_loop().time())
            self.server.requests += 1
            outcome = self.server.handler(request)
            if asyncio.iscoroutine(outcome):
                self.busy = True
                self.pending = request
                asyncio.ensure_future(self._finish_async(request, outcome))
                return
            self._answer(request, outcome)

    async def _finish_async(self, request: Request, outcome):
        try:
            result = await outcome
        except Exception as exc:  # noqa: BLE001 - a bug in a fake must be visible, not a hang
            result = Reply.json(500, {"error": {"message": f"fake server bug: {exc!r}", "type": "fake"}})
        if self.transport is None or self.transport.is_closing():
            return
        if isinstance(result, SSE):
            await self._stream(result)
        else:
            self._answer(request, result)
        self.pending = None
        self.busy = False
        if self.buffer and self.transport is not None and not self.transport.is_closing():
            self._next()

    def _answer(self, request: Request, result):
        transport = self.transport
        if isinstance(result, Reset):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
            return
        if isinstance(result, Hang):
            self.busy = True
            self.pending = request
            return
        if isinstance(result, SSE):
            self.busy = True
            self.pending = request
            asyncio.ensure_future(self._stream_then_continue(result))
            return
        body = result.body
        data = _head(result.status, result.headers, result.content_type, len(body)) + body
        if result.truncate_at is not None:
            transport.write(data[: len(data) - len(body) + result.truncate_at])
            transport.close()
            return
        transport.write(data)

    async def _stream_then_continue(self, sse: SSE):
        await self._stream(sse)
        self.pending = None
        self.busy = False
        if self.buffer and self.transport is not None and not self.transport.is_closing():
            self._next()

    async def _stream(self, sse: SSE):
        transport = self.transport
        headers = {"cache-control": "no-cache", "transfer-encoding": "chunked", **sse.headers}
        transport.write(_head(200, headers, "text/event-stream", None))
        for i, event in enumerate(sse.events):
            if sse.cut_after is not None and i >= sse.cut_after:
                transport.close()
                return
            transport.write(b"%x\r\n%s\r\n" % (len(event), event))
            await asyncio.sleep(0)
        transport.write(b"0\r\n\r\n")


class FakeHTTPServer:
    """Serves `handler` on a loopback port; counts connections and requests."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0):
        self.handler = handler
        self.host = host
        self.port = port
        self.connections = 0
        self.requests = 0
        self._server: asyncio.base_events.Server | None = None
        self._open: set[_Connection] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeHTTPServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._open):
                if conn.transport is not None:
                    conn.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
