"""A small HTTP/1.1 client for whole-answer POSTs over pooled keep-alive connections, on asyncio's own
transports (`http_client: direct`, see openai_direct.py).

Why not aiohttp: its client builds a request object, a response object, a header multidict, timers and
trace hooks for every call. Against a local server answering thousands of calls a second that was
most of the gateway's CPU per call (about 0.2 of its 0.7 ms); this client writes one buffer per
request and parses one answer, for a few microseconds.

It speaks enough HTTP/1.1 for any OpenAI-compatible server, and no more: answers framed by
Content-Length, by chunked transfer coding or by the end of the connection; gzip and deflate bodies;
1xx interim answers skipped; `Connection: close` honoured; http and https. A connection goes back to
the pool only after a whole answer with nothing left over; any error, and a cancelled call (the
dispatcher's time limit), abort it, which is how the server learns the call is off.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024  # a status line and headers longer than this are not an answer we can read
MAX_CHUNK_LINE_BYTES = 1024
MAX_BODY_BYTES = 64 * 1024 * 1024  # a whole answer is held in memory: a larger one is refused, not read


class ProtocolViolation(Exception):
    """The bytes received are not a valid HTTP/1.1 answer, or the answer was cut short."""


class ConnectionClosed(ConnectionError):
    """The server closed the connection before a byte of the answer arrived."""


class ConnectTimeout(Exception):
    """The server did not accept a connection within the connect timeout."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased; repeated headers joined by ", "
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; reads one answer at a time (requests are not pipelined)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._received = 0  # bytes of the current answer so far
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep-alive
        self._body = bytearray()
        self._framing = ""  # "length", "chunked" or "close"
        self._left = 0  # body bytes (length) or chunk bytes (chunked) still to come
        self._chunk_state = "size"  # size, data, data_end, trailers
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # bytes nobody asked for: never trust it again
            self.reusable = False
            self.abort()
            return
        self._received += len(data)
        self._buffer += data
        try:
            self._parse()
            if len(self._body) > MAX_BODY_BYTES:  # chunked or until the close: no size announced
                raise ProtocolViolation(f"the answer is larger than {MAX_BODY_BYTES} bytes")
        except ProtocolViolation as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._head is not None and self._framing == "close":
            self._finish()  # the end of the connection ends the body
        elif self._received:
            self._fail(ProtocolViolation(f"the connection closed after {self._received} bytes of the answer"))
        else:
            error = ConnectionClosed("the server closed the connection before answering")
            if exc is not None:
                error.__cause__ = exc
            self._fail(error)

    # one exchange
    async def exchange(self, request: bytes) -> Answer:
        self._waiter = asyncio.get_running_loop().create_future()
        self._received, self._head, self._framing, self.reusable = 0, None, "", False
        self._body.clear()
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.abort()

    def _parse(self) -> None:
        while self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise ProtocolViolation(f"no end of headers in the first {MAX_HEAD_BYTES} bytes")
                return
            head = bytes(self._buffer[:end])
            del self._buffer[:end + 4]
            status, headers, keep_alive = _parse_head(head)
            if 100 <= status < 200:  # an interim answer: the real one follows
                continue
            self._head = (status, headers, keep_alive)
            self._start_body(status, headers)
        if self._framing == "length":
            take = min(self._left, len(self._buffer))
            self._body += self._buffer[:take]
            del self._buffer[:take]
            self._left -= take
            if not self._left:
                self._finish()
        elif self._framing == "chunked":
            self._parse_chunks()
        else:  # until the connection closes
            self._body += self._buffer
            self._buffer.clear()

    def _start_body(self, status: int, headers: dict[str, str]) -> None:
        coding = headers.get("transfer-encoding", "").lower()
        if status in (204, 304):
            self._framing, self._left = "length", 0
        elif coding:
            if coding.rsplit(",", 1)[-1].strip() != "chunked":
                raise ProtocolViolation(f"unsupported transfer-encoding {coding!r}")
            self._framing, self._chunk_state = "chunked", "size"
        elif "content-length" in headers:
            try:
                self._left = int(headers["content-length"])
            except ValueError:
                raise ProtocolViolation(f"bad content-length {headers['content-length']!r}") from None
            if self._left < 0:
                raise ProtocolViolation(f"bad content-length {self._left}")
            if self._left > MAX_BODY_BYTES:
                raise ProtocolViolation(f"the answer is larger than {MAX_BODY_BYTES} bytes ({self._left})")
            self._framing = "length"
        else:
            self._framing = "close"

    def _parse_chunks(self) -> None:
        buffer = self._buffer
        while True:
            if self._chunk_state == "size":
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_CHUNK_LINE_BYTES:
                        raise ProtocolViolation("a chunk size line is too long")
                    return
                line = bytes(buffer[:end]).split(b";", 1)[0].strip()
                del buffer[:end + 2]
                try:
                    self._left = int(line, 16)
                except ValueError:
                    raise ProtocolViolation(f"bad chunk size {line[:20]!r}") from None
                self._chunk_state = "data" if self._left else "trailers"
            elif self._chunk_state == "data":
                take = min(self._left, len(buffer))
                self._body += buffer[:take]
                del buffer[:take]
                self._left -= take
                if self._left:
                    return
                self._chunk_state = "data_end"
            elif self._chunk_state == "data_end":
                if len(buffer) < 2:
                    return
                if buffer[:2] != b"\r\n":
                    raise ProtocolViolation("a chunk does not end where its size says")
                del buffer[:2]
                self._chunk_state = "size"
            else:  # trailers, up to an empty line
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise ProtocolViolation("trailers too long")
                    return
                del buffer[:end + 2]
                if end == 0:
                    self._finish()
                    return

    def _finish(self) -> None:
        status, headers, keep_alive = self._head
        body = bytes(self._body)
        try:
            body = _decode(body, headers.get("content-encoding", ""))
        except zlib.error as exc:
            self._fail(ProtocolViolation(f"the body does not decode as {headers.get('content-encoding')}: {exc}"))
            return
        self.reusable = keep_alive and self._framing != "close" and not self._buffer and not self.closed
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Answer(status, headers, body))


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise ProtocolViolation(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolViolation(f"not a header line: {line[:80]!r}")
        name, value = name.lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if parts[0] == "HTTP/1.1" else "keep-alive" in connection
    return int(parts[1]), headers, keep_alive


def _decode(body: bytes, coding: str) -> bytes:
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if coding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send it
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    raise zlib.error(f"unsupported content-encoding {coding!r}")


class HTTP1Pool:
    """POST to one origin over at most `max_connections` keep-alive connections at once.

    `warm`: connections opened in the background at the first call. Why: a connection costs a TCP
    (and for https a TLS) set-up, about 0.3 ms of CPU on loopback; a run that goes from a few calls to
    hundreds at once paid for hundreds of them while its first calls of the burst waited (in
    tools/bench/pipeline_bench.py, the gateway's 256th call of the burst went out 164 ms into it,
    90 ms with the connections open)."""

    def __init__(self, base_url: str, headers: dict[str, str], max_connections: int, connect_timeout_s: float,
                 keepalive_s: float = 30.0, ssl_context: ssl.SSLContext | None = None, warm: int = 0):
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host, self.tls = url.hostname, url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        self.prefix = url.path.rstrip("/")
        self.connect_timeout_s, self.keepalive_s = connect_timeout_s, keepalive_s
        fixed = {"Host": url.netloc.rsplit("@", 1)[-1], "Accept-Encoding": "gzip, deflate", **headers}
        for name, value in fixed.items():
            if any(c in f"{name}{value}" for c in "\r\n\0") or not name or ":" in name:
                raise ValueError(f"header {name!r} cannot be sent: a name or value with a line break, or a bad name")
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._warm = min(warm, max_connections)
        self._warming: asyncio.Task | None = None
        self._ssl = (ssl_context or ssl.create_default_context()) if self.tls else None  # the system's CAs

    async def post(self, path: str, body: bytes) -> Answer:
        if self._warm and self._warming is None:
            self._warming = asyncio.get_running_loop().create_task(self._open_ahead(self._warm))
        request = b"".join((b"POST ", (self.prefix + path).encode("latin-1"), b" HTTP/1.1\r\n", self._fixed_headers,
                            b"Content-Length: %d\r\n\r\n" % len(body), body))
        async with self._slots:
            connection = self._reuse() or await self._connect()
            try:
                answer = await connection.exchange(request)
            except BaseException:
                connection.abort()  # an error, or the caller's time limit: the server sees the call end
                raise
            if connection.reusable:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.abort()
            return answer

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recent: the least likely to have been closed
            if not connection.closed and not connection.transport.is_closing() \
                    and now - connection.idle_since < self.keepalive_s:
                return connection
            connection.abort()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self._ssl, server_hostname=self.host if self.tls else None)
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {self.host}:{self.port} within {self.connect_timeout_s:g} s") from None
        return connection

    async def _open_ahead(self, count: int) -> None:
        """Open up to `count` connections and leave them idle in the pool; one that fails is skipped
        (the call that needs it opens its own, and reports what is wrong)."""
        async def one() -> None:
            connection = await self._connect()
            connection.idle_since = time.monotonic()
            self._idle.insert(0, connection)  # behind those in use already: reuse takes the newest first

        outcomes = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            log.info("opened %d of %d connections ahead to %s:%d; the first failure: %r",
                     count - len(failed), count, self.host, self.port, failed[0])

    async def aclose(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        while self._idle:
            self._idle.pop().abort()
