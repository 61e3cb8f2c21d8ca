"""Every LLM call of a run over one stream to the gateway (`StreamGenerateBatches`).

Why: a unary call per generation costs the pipeline and the gateway a gRPC call's set-up and
teardown each time; a run keeps hundreds of generations in flight. Over one stream each costs only
its share of a message: the requests ready at once go out in one message, and the gateway sends the
answers ready at once in one (a gRPC message costs each side ~0.1-0.2 ms of CPU in Python, far more
than the item in it, and hundreds of answers can finish together). What is in flight stays bounded:
by the run's call slots first, then by the gateway's stream window and HTTP/2 flow control.

A gateway without `StreamGenerateBatches` (older than this client) answers UNIMPLEMENTED; the stream
then says so (`batches_unsupported`), and `GatewayGenerator` sends its calls again at once over
`StreamGenerate`, an item per message (none of them was answered, so none is paid twice).

One stream at a time. Each generation gets a correlation id and a future; a reader task settles the
futures as answers arrive, in any order. An item the gateway fails comes back as its own
`StreamError` and fails alone. A broken stream (the gateway restarted, the connection dropped, any
status but a refusal of the caller) fails every generation still waiting on it as temporary, which
the run retries on a fresh stream;
the gateway's idempotency keys make such a retry free when the first attempt was answered after all.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import grpc

from instructforge.client import ApiError, GeneratorClient
from instructforge.generator.v1 import generator_pb2 as gen
from instructforge.pipeline.protocols import TransientError

_CODES = {code.value[0]: code for code in grpc.StatusCode}
CLOSE_TIMEOUT_S = 10.0  # for answers still on the way when the run closes its stream
# Requests per message: what is ready, up to this many (the gateway takes up to 4096). Small enough
# that the gateway starts on the first requests of a burst while the rest are still on the way.
MAX_BATCH = 16


class GenerationStream:
    """Sends `GenerateRequest`s over one stream call and returns each one's answer. `batches`:
    StreamGenerateBatches (what is ready goes in one message), else StreamGenerate (one per message)."""

    def __init__(self, client: GeneratorClient, *, batches: bool = True):
        self._outbox: asyncio.Queue[gen.StreamGenerateRequest | None] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[gen.StreamGenerateResponse]] = {}
        self._ids = itertools.count()
        self.closed = False
        self.batches = batches
        self.batches_unsupported = False
        self._reader = asyncio.get_running_loop().create_task(
            self._read(self._batched(client) if batches else self._singles(client)))

    async def call(self, message: gen.GenerateRequest, timeout_s: float, what: str) -> gen.GenerateResponse:
        """The answer to `message`; ApiError for an item the gateway failed, TransientError for a lost stream."""
        if self.closed:
            raise TransientError(f"{what}: the generation stream is closed")
        correlation_id = str(next(self._ids))
        answer = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = answer
        self._outbox.put_nowait(gen.StreamGenerateRequest(correlation_id=correlation_id, request=message))
        try:
            out = await asyncio.wait_for(answer, timeout_s)
        except TimeoutError:
            raise TransientError(f"{what}: no answer on the generation stream within {timeout_s:.0f} s") from None
        finally:
            self._pending.pop(correlation_id, None)
        if out.WhichOneof("result") == "error":
            error = out.error
            raise ApiError(_CODES.get(error.code, grpc.StatusCode.UNKNOWN), error.message, reason=error.reason or None)
        return out.response

    async def _ready_requests(self) -> AsyncIterator[list[gen.StreamGenerateRequest]]:
        """What is in the outbox, in one list, as soon as there is anything (until closed)."""
        while (item := await self._outbox.get()) is not None:
            ready = [item]
            while len(ready) < MAX_BATCH and not self._outbox.empty():
                if (item := self._outbox.get_nowait()) is None:
                    yield ready
                    return
                ready.append(item)
            yield ready

    async def _batched(self, client: GeneratorClient) -> AsyncIterator[gen.StreamGenerateResponse]:
        async def requests() -> AsyncIterator[gen.StreamGenerateBatchesRequest]:
            async for ready in self._ready_requests():
                yield gen.StreamGenerateBatchesRequest(items=ready)

        async for batch in client.stream_generate_batches(requests()):
            for out in batch.items:
                yield out

    async def _singles(self, client: GeneratorClient) -> AsyncIterator[gen.StreamGenerateResponse]:
        async def requests() -> AsyncIterator[gen.StreamGenerateRequest]:
            async for ready in self._ready_requests():
                for item in ready:
                    yield item

        async for out in client.stream_generate(requests()):
            yield out

    async def _read(self, answers: AsyncIterator[gen.StreamGenerateResponse]) -> None:
        failure: Exception = TransientError("the gateway ended the generation stream")
        try:
            async for out in answers:
                answer = self._pending.get(out.correlation_id)
                if answer is not None and not answer.done():
                    answer.set_result(out)
        except ApiError as error:
            if error.code == grpc.StatusCode.UNIMPLEMENTED and self.batches:
                self.batches_unsupported = True
            # The stream's own status judges none of the requests on it: only a refusal of the caller
            # is final. Anything else (the gateway went away, or grpc's local INTERNAL for a request
            # still being sent as the call ended) leaves them to be sent again.
            final = error.refuses_caller or (error.code == grpc.StatusCode.UNIMPLEMENTED and not self.batches)
            failure = error if final else TransientError(f"the generation stream broke: {error}")
        except asyncio.CancelledError:
            failure = TransientError("the generation stream was closed")
            raise
        finally:
            self.closed = True
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_exception(failure)

    async def close(self) -> None:
        """End the request stream, let the gateway finish what it has, then stop reading."""
        self._outbox.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
