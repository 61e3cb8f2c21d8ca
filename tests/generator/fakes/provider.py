"""What every fake provider shares: a loopback server, a fault plan, a call log, and fault replies."""

from __future__ import annotations

from .faults import Call, CallLog, FaultPlan
from .httpserver import FakeHTTPServer, Reply, Request


class ProviderFake:
    """Subclasses implement `handle(request)` and use `record` / `failed` for every generation call."""

    def __init__(self, faults: FaultPlan | None = None):
        self.faults = faults or FaultPlan()
        self.log = CallLog()
        self.server = FakeHTTPServer(self.handle)
        self.serial = 0

    def handle(self, request: Request):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self):
        await self.server.start()
        return self

    async def close(self) -> None:
        await self.server.close()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def record(self, request: Request, body: dict, tag: str, *, stream: bool = False) -> Call:
        """Log a call and decide its fault (a cut stream becomes a cut body when not streaming)."""
        attempt = self.log.next_attempt(tag)
        fault = self.faults.choose(tag, attempt)
        if fault == "truncated_stream" and not stream:
            fault = "truncated"
        self.serial += 1
        call = Call(self.serial, tag, attempt, request.received_at, fault, 200, None, body, request.headers,
                    request.disconnected)
        self.log.calls.append(call)
        return call

    @staticmethod
    def failed(call: Call, reply):
        """Note what a fault reply tells the client (status, Retry-After) on the call, and return it."""
        if isinstance(reply, Reply):
            call.status = reply.status
            if "retry-after-ms" in reply.headers:
                call.retry_after = int(reply.headers["retry-after-ms"]) / 1000
            elif "retry-after" in reply.headers:
                call.retry_after = float(reply.headers["retry-after"])
        return reply
