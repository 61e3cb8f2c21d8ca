"""The gRPC face of the gateway: protobuf <-> core types, deadlines, and StreamGenerate's flow control.

The only module that touches `_pb2`. Unary requests arrive validated by the runtime's interceptor
against the proto's field rules; streamed ones are validated here one by one, so a bad item fails
alone. The caller's gRPC deadline becomes the core's deadline, and a cancelled RPC cancels the core
call (and with it the provider request).

StreamGenerate keeps at most `stream_window` requests of one stream between "read" and "answer
written" (StreamGenerateBatches the same, counting items, and sends the answers that are ready
together, up to `BATCH_ANSWERS` a message). When the window is full the handler stops reading,
HTTP/2 flow control stops the client, and memory stays bounded however fast the client sends;
answers go out as they complete, in any order, each with its `correlation_id`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from google.rpc import code_pb2

from instructforge.generator.gateway import Gateway
from instructforge.generator.metrics import GatewayMetrics
from instructforge.generator.request import (
    CachePolicy,
    GenerateRequest,
    GenerateResponse,
    Message,
    Sampling,
)
from instructforge.generator.settings import GeneratorSettings
from instructforge.generator.v1 import generator_pb2 as pb
from instructforge.generator.v1 import generator_pb2_grpc
from instructforge.runtime.errors import InstructForgeError, InvalidArgument
from instructforge.runtime.metrics import Metrics
from instructforge.runtime.validation import violations

log = logging.getLogger(__name__)

ROLES = {pb.ROLE_SYSTEM: "system", pb.ROLE_USER: "user", pb.ROLE_ASSISTANT: "assistant"}
POLICIES = {pb.CACHE_POLICY_UNSPECIFIED: CachePolicy.USE, pb.CACHE_POLICY_USE: CachePolicy.USE,
            pb.CACHE_POLICY_REFRESH: CachePolicy.REFRESH, pb.CACHE_POLICY_BYPASS: CachePolicy.BYPASS}
_OPTIONAL = ("temperature", "top_p", "top_k", "max_tokens", "seed", "presence_penalty", "frequency_penalty",
             "repetition_penalty")
DEFAULT_PAGE_SIZE = 100
_END = object()
# Answers per StreamGenerateBatches message: what is ready, up to this many. Small enough that the
# caller starts on the first answers of a burst while the gateway still writes the rest, and a few
# per message already take most of the per-message cost away.
BATCH_ANSWERS = 16


def to_core(message: pb.GenerateRequest) -> GenerateRequest:
    kind = message.WhichOneof("prompt")
    text = message.text if kind == "text" else None
    messages = None
    if kind == "chat":
        messages = tuple(Message(ROLES.get(m.role, "unspecified"), m.content) for m in message.chat.messages)
    s = message.sampling
    values: dict[str, Any] = {name: getattr(s, name) for name in _OPTIONAL if s.HasField(name)}
    sampling = Sampling(stop=tuple(s.stop_sequences), logit_bias=dict(s.logit_bias), **values)
    return GenerateRequest(
        model=message.model, text=text, messages=messages, sample_count=message.sample_count or 1, sampling=sampling,
        cache_policy=POLICIES.get(message.cache_policy, CachePolicy.USE), idempotency_key=message.idempotency_key,
        run_id=message.run_id, record_id=message.record_id, template_version=message.template_version,
        labels=dict(message.labels))


def to_proto(response: GenerateResponse, out: pb.GenerateResponse | None = None) -> pb.GenerateResponse:
    """The response as protobuf, written into `out` when given: a stream's answer is written where it is
    sent, in its batch, since a message passed to a constructor or a repeated field is copied (twice
    an answer's text per stream answer, more CPU than writing it)."""
    if out is None:
        out = pb.GenerateResponse()
    else:
        out.SetInParent()
    add_sample = out.samples.add
    for s in response.samples:
        add_sample(index=s.index, text=s.text, finish_reason=s.finish_reason.value)
    usage = out.usage
    usage.SetInParent()
    usage.prompt_tokens = response.usage.prompt_tokens
    usage.completion_tokens = response.usage.completion_tokens
    out.cost_usd = response.cost_usd
    out.cache_hit = response.cache_hit
    out.deployment = response.deployment
    out.provider_model = response.provider_model
    out.attempt_count = response.attempt_count
    out.queue_time_ms = round(response.queue_time_s * 1000)
    out.backend_time_ms = round(response.backend_time_s * 1000)
    return out


def write_answer(out: pb.StreamGenerateResponse, correlation_id: str, result: GenerateResponse | pb.StreamError) -> None:
    """One stream answer, written into `out` (a new message, or the next item of a batch)."""
    out.correlation_id = correlation_id
    if isinstance(result, GenerateResponse):
        to_proto(result, out.response)
    else:
        out.error.CopyFrom(result)


def stream_error(error: InstructForgeError) -> pb.StreamError:
    return pb.StreamError(code=getattr(code_pb2, error.grpc_code), message=error.message, reason=error.reason)


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, gateway: Gateway, settings: GeneratorSettings):
        self.gateway = gateway
        self.settings = settings
        self.http = None
        if settings.http_port is not None:
            from instructforge.generator.http_face import HttpFace  # aiohttp: only when the HTTP API is on

            self.http = HttpFace(gateway, settings.http_host or settings.host, settings.http_port,
                                 [t.get_secret_value() for t in settings.auth_tokens], settings.default_timeout_s)

    async def start(self) -> None:
        if self.http is not None:
            await self.http.start()

    async def close(self) -> None:
        if self.http is not None:
            await self.http.stop()
        await self.gateway.close()

    def _deadline(self, context) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            remaining = self.settings.default_timeout_s
        return asyncio.get_running_loop().time() + remaining

    async def Generate(self, request, context):
        response = await self.gateway.generate(to_core(request), self._deadline(context))
        return to_proto(response)

    async def StreamGenerate(self, request_iterator, context):
        async def singles():
            async for item in request_iterator:
                yield (item,)

        async for answers in self._stream(singles(), context, batch=False):
            out = pb.StreamGenerateResponse()
            write_answer(out, *answers[0])
            yield out

    async def StreamGenerateBatches(self, request_iterator, context):
        async def batches():
            async for batch in request_iterator:
                found = violations(batch, nested=False)  # its size; each item is checked on its own, below
                if found:
                    raise InvalidArgument(violations=found)
                yield batch.items

        async for answers in self._stream(batches(), context, batch=True):
            out = pb.StreamGenerateBatchesResponse()
            add = out.items.add
            for answer in answers:
                write_answer(add(), *answer)
            yield out

    async def _stream(self, item_groups, context, *, batch: bool):
        """Answers each item of `item_groups` (iterables of StreamGenerateRequest) as it completes.
        Yields lists of answers, (correlation id, GenerateResponse or StreamError) each: one at a time,
        or (`batch`) those ready by then, up to BATCH_ANSWERS."""
        loop = asyncio.get_running_loop()
        remaining = context.time_remaining()
        stream_deadline = None if remaining is None else loop.time() + remaining
        window = asyncio.Semaphore(self.settings.stream_window)
        answers: asyncio.Queue = asyncio.Queue()
        running: dict[str, asyncio.Task] = {}
        state = {"accepted": 0}

        async def answer(correlation_id: str, message: pb.GenerateRequest) -> None:
            deadline = stream_deadline or loop.time() + self.settings.default_timeout_s
            result: GenerateResponse | pb.StreamError
            try:
                result = await self.gateway.generate(to_core(message), deadline)
            except InstructForgeError as exc:
                result = stream_error(exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("generation failed unexpectedly", extra={"correlation_id": correlation_id})
                result = pb.StreamError(code=code_pb2.INTERNAL, message="internal error; see the gateway's log",
                                        reason="INTERNAL")
            answers.put_nowait((correlation_id, result))

        def refuse(correlation_id: str, error: InstructForgeError) -> None:
            answers.put_nowait((correlation_id, stream_error(error)))

        async def read() -> None:
            try:
                async for items in item_groups:
                    for item in items:
                        await window.acquire()  # a full window stops the reading: flow control
                        state["accepted"] += 1
                        cid = item.correlation_id
                        found = violations(item)
                        if found:
                            refuse(cid, InvalidArgument(violations=found))
                        elif cid in running:
                            refuse(cid, InvalidArgument(field="correlation_id",
                                                        message=f"{cid!r} is already in flight on this stream"))
                        else:
                            task = loop.create_task(answer(cid, item.request))
                            running[cid] = task
                            task.add_done_callback(lambda _t, cid=cid: running.pop(cid, None))
                answers.put_nowait(_END)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, which re-raises it
                answers.put_nowait(exc)

        reader = loop.create_task(read())
        written = 0
        ended = False
        try:
            while not (ended and written == state["accepted"]):
                ready = [await answers.get()]
                while batch and len(ready) < BATCH_ANSWERS and not answers.empty():
                    ready.append(answers.get_nowait())
                out = []
                for item in ready:
                    if item is _END:
                        ended = True
                    elif isinstance(item, BaseException):
                        raise item
                    else:
                        out.append(item)
                if out:
                    yield out
                    written += len(out)
                    for _ in out:
                        window.release()
        finally:
            reader.cancel()
            for task in list(running.values()):
                task.cancel()
            await asyncio.gather(reader, *running.values(), return_exceptions=True)

    async def ListModels(self, request, context):
        routes = self.gateway.routes()
        start = _page_start(request.page_token, len(routes))
        size = request.page_size or DEFAULT_PAGE_SIZE
        now = asyncio.get_running_loop().time()
        models = []
        for route in routes[start:start + size]:
            deployments = []
            for dep in route.deployments:
                c = dep.config
                deployments.append(pb.Deployment(
                    name=dep.name, backend=c.backend, provider_model=c.model, weight=c.weight,
                    max_concurrency=c.max_concurrency, requests_per_minute=c.requests_per_minute or 0,
                    tokens_per_minute=c.tokens_per_minute or 0,
                    input_cost_per_million_tokens_usd=c.input_cost_per_million_tokens_usd,
                    output_cost_per_million_tokens_usd=c.output_cost_per_million_tokens_usd,
                    cooling_down=dep.cooling(now)))
            models.append(pb.Model(name=route.name, deployments=deployments, fallbacks=route.fallbacks))
        following = start + size
        token = _page_token(following) if following < len(routes) else ""
        return pb.ListModelsResponse(models=models, next_page_token=token)

    async def GetUsage(self, request, context):
        return pb.GetUsageResponse(models=[
            pb.ModelUsage(model=u.model, request_count=u.request_count, cache_hit_count=u.cache_hit_count,
                          prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, cost_usd=u.cost_usd)
            for u in self.gateway.usage(request.run_id)])


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"models:{offset}".encode()).decode()


def _page_start(token: str, total: int) -> int:
    if not token:
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        start = int(offset)
        if kind != "models" or not 0 <= start <= total:
            raise ValueError
        return start
    except ValueError:
        raise InvalidArgument(field="page_token", message="is not a token this API returned") from None


async def create_servicer(settings: GeneratorSettings, metrics: Metrics) -> GeneratorServicer:
    gateway = await Gateway.create(settings.gateway_config(), state_dir=settings.service_state_dir,
                                   metrics=GatewayMetrics(metrics.registry, recording=metrics.recording))
    return GeneratorServicer(gateway, settings)
