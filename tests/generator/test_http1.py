"""The direct client's HTTP/1.1 pool against a loopback server that writes exact bytes: framing by
length, chunks and close, keep-alive reuse, interim answers, compressed bodies, and every way an
answer can go wrong (cut short, not HTTP, closed unanswered, cancelled)."""

import asyncio
import gzip
import json
import ssl

import pytest

from client.client_servers import make_pki
from instructforge.generator.backends.http1 import ConnectionClosed, HTTP1Pool, ProtocolViolation
from instructforge.generator.backends.openai_direct import DirectOpenAIClient
from instructforge.generator.faults import Fault, ProviderError


class ScriptedServer:
    """Reads whole requests and answers each with the next item of `script`: bytes to write, a list
    of byte pieces written one event-loop turn apart (a number: seconds to wait; b"": then close),
    "close" (close unanswered) or "hang"."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[tuple[bytes, dict[str, str], bytes]] = []
        self.connections = 0
        self.open_now = self.open_peak = 0
        self.closed_by_client = asyncio.Event()

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        return f"{'https' if tls else 'http'}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.open_peak = max(self.open_peak, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client.set()
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((lines[0].encode(), headers, body))
                step = self.script.pop(0)
                if step == "close":
                    writer.close()
                    return
                if step == "hang":
                    if not await reader.read(1):
                        self.closed_by_client.set()
                    return
                for piece in step if isinstance(step, list) else [step]:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                        continue
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
                if step[-1:] == [b""] or (isinstance(step, bytes) and b"connection: close" in step.lower()):
                    writer.close()
                    return
        finally:
            self.open_now -= 1


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + head.encode() + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


def run(coro):
    return asyncio.run(coro)


async def serve(script, **pool_args):
    server = ScriptedServer(script)
    url = await server.start()
    pool = HTTP1Pool(url + "/v1", {"Authorization": "Bearer k"}, pool_args.pop("max_connections", 8),
                     connect_timeout_s=5.0, **pool_args)
    return server, pool


def test_a_request_carries_route_host_headers_and_body_and_the_connection_is_kept_alive():
    async def go():
        server, pool = await serve([ok(b'{"a": 1}'), ok(b'{"a": 2}')])
        first = await pool.post("/chat/completions", b'{"x": 1}')
        second = await pool.post("/chat/completions", b'{"x": 2}')
        await pool.aclose()
        await server.stop()
        return server, first, second

    server, first, second = run(go())
    assert (first.status, first.body, second.body) == (200, b'{"a": 1}', b'{"a": 2}')
    assert first.headers["content-type"] == "application/json"
    line, headers, body = server.requests[0]
    assert line == b"POST /v1/chat/completions HTTP/1.1"
    assert headers["host"].startswith("127.0.0.1:") and headers["authorization"] == "Bearer k"
    assert body == b'{"x": 1}' and headers["content-length"] == "8"
    assert server.connections == 1  # the second call reused the first's connection


def test_chunked_answers_split_anywhere_with_extensions_and_trailers():
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    pieces = [answer[i:i + 3] for i in range(0, len(answer), 3)]  # every boundary lands mid-token

    async def go():
        server, pool = await serve([pieces, ok(b"next")])
        got = await pool.post("/completions", b"{}")
        again = await pool.post("/completions", b"{}")
        await server.stop()
        return server, got, again

    server, got, again = run(go())
    assert got.body == b"hello, world" and again.body == b"next"
    assert server.connections == 1


def test_a_body_ended_by_the_close_of_the_connection_and_connection_close_are_not_reused():
    async def go():
        server, pool = await serve([[b"HTTP/1.0 200 OK\r\n\r\n", b"until the ", b"end", b""],
                                    ok(b"two", "Connection: close"), ok(b"three")])
        bodies = [(await pool.post("/c", b"")).body for _ in range(3)]
        await server.stop()
        return server, bodies

    server, bodies = run(go())
    assert bodies == [b"until the end", b"two", b"three"]
    assert server.connections == 3


def test_interim_answers_are_skipped_and_compressed_bodies_decoded():
    packed = gzip.compress(b'{"ok": true}')

    async def go():
        server, pool = await serve([b"HTTP/1.1 100 Continue\r\n\r\n" + ok(packed, "Content-Encoding: gzip")])
        got = await pool.post("/c", b"{}")
        await server.stop()
        return server, got

    server, got = run(go())
    assert got.status == 200 and json.loads(got.body) == {"ok": True}
    assert "gzip" in server.requests[0][1]["accept-encoding"]


@pytest.mark.parametrize("script,error,words", [
    ([b"SMTP ready\r\n\r\n"], ProtocolViolation, "not an HTTP/1.x status line"),
    ([[b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut", b""]], ProtocolViolation, "closed after"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], ProtocolViolation, "bad chunk size"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"], ProtocolViolation, "bad content-length"),
    ([ok(b"not gzip", "Content-Encoding: gzip")], ProtocolViolation, "does not decode"),
    (["close"], ConnectionClosed, "before answering"),
])
def test_answers_that_are_not_whole_http_raise_a_clear_error(script, error, words):
    async def go():
        server, pool = await serve(script)
        try:
            with pytest.raises(error, match=words):
                await pool.post("/c", b"{}")
        finally:
            await server.stop()
        return pool

    pool = run(go())
    assert not pool._idle  # a connection that failed is never handed out again


def test_an_answer_larger_than_the_limit_is_refused_not_read(monkeypatch):
    from instructforge.generator.backends import http1
    monkeypatch.setattr(http1, "MAX_BODY_BYTES", 1000)

    async def go():
        server, pool = await serve([ok(b"x" * 5000), [b"HTTP/1.1 200 OK\r\n\r\n", b"y" * 3000, b""]])
        errors = []
        for _ in range(2):
            with pytest.raises(ProtocolViolation) as caught:
                await pool.post("/c", b"")
            errors.append(str(caught.value))
        await server.stop()
        return errors

    declared, streamed = run(go())
    assert "larger than 1000 bytes (5000)" in declared and "larger than 1000 bytes" in streamed


def test_a_cancelled_call_closes_its_connection_so_the_server_sees_it_end():
    async def go():
        server, pool = await serve(["hang", ok(b"fresh")])
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.post("/c", b"{}")
        await asyncio.wait_for(server.closed_by_client.wait(), 5)
        after = await pool.post("/c", b"{}")
        await server.stop()
        return server, after

    server, after = run(go())
    assert after.body == b"fresh" and server.connections == 2


async def _in_turn(script, count: int, pause: float = 0.0, **pool_args) -> tuple[list[bytes], int]:
    """`count` calls one after the other (`pause` seconds apart): their bodies and the connections opened."""
    server, pool = await serve(script, **pool_args)
    bodies = []
    for i in range(count):
        if i:
            await asyncio.sleep(pause)
        bodies.append((await pool.post("/c", b"")).body)
    await server.stop()
    return bodies, server.connections


def test_bytes_after_a_whole_answer_make_the_connection_unusable():
    assert run(_in_turn([ok(b"one") + b"HTTP/1.1 200 OK\r\n", ok(b"two")], 2)) == ([b"one", b"two"], 2)


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error():
    script = [[ok(b"one"), 0.01, b""], ok(b"two")]  # its keep-alive timer ran out
    assert run(_in_turn(script, 2, pause=0.1)) == ([b"one", b"two"], 2)


def test_a_connection_idle_past_the_keepalive_time_is_not_reused():
    assert run(_in_turn([ok(b"one"), ok(b"two")], 2, keepalive_s=0.0)) == ([b"one", b"two"], 2)


def test_connections_never_exceed_the_limit():
    async def go():
        server, pool = await serve([[0.05, ok(b"x")]] * 6, max_connections=2)
        await asyncio.gather(*(pool.post("/c", b"") for _ in range(6)))
        await server.stop()
        return server

    server = run(go())
    assert server.open_peak == 2 and len(server.requests) == 6


def test_warm_connections_open_at_the_first_call_and_serve_the_burst_after_it():
    async def go():
        server, pool = await serve([ok(b"first")] + [[0.05, ok(b"x")]] * 6, max_connections=8, warm=6)
        await pool.post("/c", b"")
        for _ in range(100):  # the connections open in the background
            if len(pool._idle) >= 6:
                break
            await asyncio.sleep(0.01)
        opened_ahead = server.connections
        await asyncio.gather(*(pool.post("/c", b"") for _ in range(6)))
        await pool.aclose()
        await server.stop()
        return opened_ahead, server.connections

    opened_ahead, opened = run(go())
    assert opened_ahead == 7  # the first call's own, and 6 ahead
    assert opened == 7  # the burst of 6 found them open


def test_connections_that_cannot_be_opened_ahead_do_not_fail_the_calls(caplog):
    async def go():
        server, pool = await serve([ok(b"one")], warm=3)
        connect, opened = pool._connect, []

        async def first_then_refused():  # the server stops taking connections after the call's own
            if opened:
                raise ConnectionRefusedError("refused")
            opened.append(1)
            return await connect()

        pool._connect = first_then_refused
        answer = await pool.post("/c", b"")
        await asyncio.gather(pool._warming)
        await server.stop()
        return answer

    with caplog.at_level("INFO", logger="instructforge.generator.backends.http1"):
        assert run(go()).body == b"one"
    assert "opened 0 of 3 connections ahead" in caplog.text and "refused" in caplog.text


def test_header_values_with_line_breaks_are_refused():
    with pytest.raises(ValueError, match="line break"):
        HTTP1Pool("http://127.0.0.1:1", {"X-Evil": "a\r\nInjected: 1"}, 1, 1.0)
    with pytest.raises(ValueError, match="not an http"):
        HTTP1Pool("ftp://example.com", {}, 1, 1.0)


def test_the_direct_client_classifies_transport_failures():
    async def go():
        server = ScriptedServer([[b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", b""], ok(b"[1]")])
        url = await server.start()
        client = DirectOpenAIClient(url, "k", {}, 4, 2.0, "t")
        faults = []
        for _ in range(2):
            with pytest.raises(ProviderError) as caught:
                await client.post_json("/completions", {"prompt": "p"})
            faults.append((caught.value.fault, str(caught.value)))
        await server.stop()
        refused = DirectOpenAIClient(url, "k", {}, 4, 2.0, "t")  # nothing listens there any more
        with pytest.raises(ProviderError) as caught:
            await refused.post_json("/completions", {})
        faults.append((caught.value.fault, str(caught.value)))
        return faults

    (cut, cut_msg), (not_object, msg), (refused, _) = run(go())
    assert cut is Fault.TRUNCATED and "not valid HTTP" in cut_msg
    assert not_object is Fault.TRUNCATED and "not an object" in msg
    assert refused is Fault.CONNECTION


def test_https_verifies_the_server_certificate(tmp_path):
    pki = make_pki(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(pki.server_cert, pki.server_key)
    trusting = ssl.create_default_context(cafile=pki.ca)
    trusting.check_hostname = False  # the certificate names dedup.iforge.test; the chain is still checked

    async def go():
        server = ScriptedServer([ok(b'{"over": "tls"}'), "hang"])
        url = await server.start(tls=served)
        answer = await HTTP1Pool(url, {}, 2, 5.0, ssl_context=trusting).post("/c", b"{}")
        stranger = DirectOpenAIClient(url, "k", {}, 2, 5.0, "t")  # the system's CAs: ours is not among them
        with pytest.raises(ProviderError) as caught:
            await stranger.post_json("/completions", {})
        await server.stop()
        return answer, caught.value

    answer, refused = run(go())
    assert answer.body == b'{"over": "tls"}'
    assert refused.fault is Fault.CONNECTION and "CERTIFICATE_VERIFY_FAILED" in str(refused)
