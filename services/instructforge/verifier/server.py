"""The gRPC face of the verifier: protobuf <-> core, and nothing else.

``Execute`` runs one request; ``ExecuteStream`` runs many over one bidirectional stream, at most
``stream_in_flight`` at once (reading further requests only as results go out, so a fast client
is slowed by flow control rather than rejected), answering each by its correlation id, in the
order they finish; a bad or rejected item fails alone. ``GetSandboxInfo`` reports the isolation
found at start-up. Every ExecuteResponse carries the isolation it ran under.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc
from prometheus_client import Counter, Gauge, Histogram

from instructforge.runtime.errors import (
    FieldViolation,
    InstructForgeError,
    InvalidArgument,
    Unavailable,
)
from instructforge.runtime.metrics import LATENCY_BUCKETS_S, Metrics
from instructforge.runtime.validation import validate
from instructforge.verifier.v1 import verifier_pb2 as pb
from instructforge.verifier.v1 import verifier_pb2_grpc as pb_grpc

from .limits import Limits
from .models import (
    AssertTests,
    ExecuteRequest,
    ExecutionResult,
    HumanEvalTests,
    LimitsRequest,
    MbppTests,
    Status,
    StdioCase,
    StdioTests,
)
from .settings import VerifierSettings
from .verifier import Verifier

log = logging.getLogger(__name__)

_OUTCOMES = {
    Status.PASSED: pb.OUTCOME_PASSED, Status.FAILED: pb.OUTCOME_FAILED, Status.TIMED_OUT: pb.OUTCOME_TIMED_OUT,
    Status.MEMORY_EXCEEDED: pb.OUTCOME_MEMORY_EXCEEDED, Status.OUTPUT_LIMIT: pb.OUTCOME_OUTPUT_LIMIT_EXCEEDED,
    Status.SANDBOX_ERROR: pb.OUTCOME_SANDBOX_ERROR, Status.NOT_RUN: pb.OUTCOME_NOT_RUN,
}
_STATUSES = {v: k for k, v in _OUTCOMES.items()}
_LANGUAGES = {pb.LANGUAGE_PYTHON: "python"}
# Which layer answers each of the contract's yes/no questions.
_FLAGS = {
    "process_per_execution": ("fresh_process",), "resource_limits": ("rlimits",),
    "process_group_kill": ("wall_timeout",), "private_working_directory": ("throwaway_directory",),
    "namespaces": ("pid_namespace",), "network_isolated": ("network_isolation",),
    "read_only_filesystem": ("readonly_filesystem",), "scrubbed_environment": ("scrubbed_environment",),
    "non_root_user": ("non_root_user",),
}
_LIMIT_FIELDS = ("timeout_ms", "cpu_time_ms", "memory_bytes", "output_bytes", "max_processes", "file_size_bytes",
                 "open_files")


# --- conversions ------------------------------------------------------------------------------

def request_from_proto(msg: pb.ExecuteRequest) -> ExecuteRequest:
    language = _LANGUAGES.get(msg.language)
    if language is None:
        raise InvalidArgument(f"unsupported language {msg.language}; supported: LANGUAGE_PYTHON", field="language")
    form = msg.WhichOneof("tests")
    if form == "humaneval":
        tests = HumanEvalTests(msg.humaneval.prompt, msg.program, msg.humaneval.test, msg.humaneval.entry_point)
    elif form == "mbpp":
        tests = MbppTests(msg.program, tuple(msg.mbpp.asserts), msg.mbpp.setup_code)
    elif form == "asserts":
        tests = AssertTests(msg.program, tuple(msg.asserts.asserts))
    elif form == "stdio":
        tests = StdioTests(msg.program, tuple(StdioCase(c.stdin, c.expected_stdout) for c in msg.stdio.cases),
                           exact=msg.stdio.exact_match)
    else:
        raise InvalidArgument("set exactly one test form: humaneval, mbpp, asserts or stdio", field="tests")
    limits = LimitsRequest(**{f: getattr(msg.limits, f) for f in _LIMIT_FIELDS}) if msg.HasField("limits") else None
    return ExecuteRequest(tests, language=language, limits=limits, request_id=msg.request_id)


# The core names fields after the datasets (MBPP's test_list, HumanEval's completion); callers of
# the API must hear the proto's field paths.
_PATHS = (
    ("tests.humaneval.completion", "program"), ("tests.mbpp.code", "program"), ("tests.asserts.code", "program"),
    ("tests.stdio.code", "program"), ("tests.mbpp.test_list", "mbpp.asserts"),
    ("tests.mbpp.test_setup_code", "mbpp.setup_code"), ("tests.asserts.test_setup_code", "program"),
    ("tests.humaneval.", "humaneval."), ("tests.asserts.", "asserts."), ("tests.stdio.", "stdio."),
)


def proto_paths(exc: InvalidArgument, prefix: str = "") -> InvalidArgument:
    """``exc`` with every field path as the proto spells it, under ``prefix``."""
    def rename(path: str) -> str:
        for core, api in _PATHS:
            if path == core or path.startswith(core):
                path = api + path[len(core):]
                break
        return prefix + path

    violations = [FieldViolation(rename(v.field), v.description) for v in exc.violations]
    return InvalidArgument(violations=violations, reason=exc.reason)


def request_to_proto(req: ExecuteRequest) -> pb.ExecuteRequest:
    """The reverse, for callers holding core requests (the verify stage over gRPC)."""
    msg = pb.ExecuteRequest(language=pb.LANGUAGE_PYTHON, request_id=req.request_id)
    t = req.tests
    if isinstance(t, HumanEvalTests):
        msg.program = t.completion
        msg.humaneval.CopyFrom(pb.HumanEvalTests(prompt=t.prompt, test=t.test, entry_point=t.entry_point))
    elif isinstance(t, MbppTests):
        msg.program = t.code
        msg.mbpp.CopyFrom(pb.MbppTests(setup_code=t.test_setup_code, asserts=list(t.test_list)))
    elif isinstance(t, AssertTests):
        msg.program = t.code
        msg.asserts.CopyFrom(pb.AssertTests(asserts=list(t.asserts)))
    else:
        msg.program = t.code
        msg.stdio.CopyFrom(pb.StdioTests(cases=[pb.StdioCase(stdin=c.stdin, expected_stdout=c.expected_stdout)
                                                for c in t.cases], exact_match=t.exact))
    if req.limits is not None:
        msg.limits.CopyFrom(pb.Limits(**{f: getattr(req.limits, f) for f in _LIMIT_FIELDS}))
    return msg


def limits_to_proto(limits: Limits) -> pb.Limits:
    return pb.Limits(**{f: getattr(limits, f) for f in _LIMIT_FIELDS})


def isolation_to_proto(verifier: Verifier) -> pb.Isolation:
    plan = verifier.plan
    active = set(plan.active_layers)
    missing = [layer for layer in plan.layers if not layer.active]
    description = (f"mode {plan.mode}: " + ", ".join(sorted(active)) + ". Missing: "
                   + "; ".join(f"{layer.name} ({layer.detail})" for layer in missing))
    if plan.tried:
        description += ". Stronger modes that failed here: " + "; ".join(f"{m}: {why}" for m, why in plan.tried.items())
    return pb.Isolation(
        **{flag: all(name in active for name in names) for flag, names in _FLAGS.items()},
        description=description, mode=plan.mode,
        layers=[pb.IsolationLayer(name=layer.name, active=layer.active, detail=layer.detail) for layer in plan.layers])


def result_to_proto(r: ExecutionResult, isolation: pb.Isolation) -> pb.ExecuteResponse:
    return pb.ExecuteResponse(
        outcome=_OUTCOMES[r.verdict], message=r.message, passed_count=r.passed_count, failed_count=r.failed_count,
        test_results=[pb.TestResult(index=t.index, outcome=_OUTCOMES[t.status], message=t.message, stdout=t.stdout,
                                    name=t.name, wall_time_us=int(t.wall_ms * 1000)) for t in r.tests],
        stdout=r.stdout, stderr=r.stderr, output_truncated=r.stdout_truncated or r.stderr_truncated,
        wall_time_ms=round(r.wall_ms), cpu_time_ms=round(r.cpu_ms), isolation=isolation,
        max_memory_bytes=r.max_rss_kb * 1024, exit_code=r.exit_code or 0, signal=r.signal,
        leftover_process_count=r.leftover_processes, request_id=r.request_id)


def outcome_of(response: pb.ExecuteResponse) -> Status:
    return _STATUSES[response.outcome]


# --- the servicer -------------------------------------------------------------------------------

class VerifierServicer(pb_grpc.VerifierServiceServicer):
    def __init__(self, settings: VerifierSettings, metrics: Metrics):
        self.settings = settings
        self.options = settings.verifier_options()
        self.verifier: Verifier | None = None
        self._isolation: pb.Isolation | None = None
        registry = metrics.registry
        self._executions = Counter("iforge_verifier_executions_total", "Executions judged, by outcome.",
                                   ("outcome",), registry=registry)
        self._seconds = Histogram("iforge_verifier_execution_seconds", "Time from request to verdict.",
                                  buckets=LATENCY_BUCKETS_S, registry=registry)
        self._waiting = Gauge("iforge_verifier_waiting", "Requests waiting for a sandbox.", registry=registry)
        self._busy = Gauge("iforge_verifier_busy", "Sandboxes running an execution.", registry=registry)
        self._recycled = Gauge("iforge_verifier_sandboxes_recycled", "Sandboxes replaced since start.",
                               registry=registry)
        self._waiting.set_function(lambda: self.verifier.pool.stats()["waiting"] if self.verifier else 0)
        self._busy.set_function(lambda: self.verifier.pool.stats()["busy"] if self.verifier else 0)
        self._recycled.set_function(lambda: self.verifier.pool.recycled if self.verifier else 0)

    async def start(self) -> None:
        """Probe the isolation and start the warm sandboxes before health says SERVING."""
        self.verifier = await Verifier.create(self.options)
        self._isolation = isolation_to_proto(self.verifier)

    async def close(self) -> None:
        if self.verifier is not None:
            await self.verifier.close()

    def is_healthy(self) -> bool:
        """Polled by the runtime: gRPC health says NOT_SERVING while the sandboxes are down."""
        return self.verifier is not None and self.verifier.healthy

    def _ready(self) -> Verifier:
        if self.verifier is None or not self.verifier.healthy:
            raise Unavailable("the verifier's sandboxes are not running", reason="SANDBOX_UNAVAILABLE")
        return self.verifier

    async def _run(self, msg: pb.ExecuteRequest, deadline: float | None, prefix: str = "") -> pb.ExecuteResponse:
        verifier = self._ready()
        t0 = time.perf_counter()
        try:
            result = await verifier.execute(request_from_proto(msg), deadline=deadline)
        except InvalidArgument as exc:
            raise proto_paths(exc, prefix) from None
        self._seconds.observe(time.perf_counter() - t0)
        self._executions.labels(result.verdict.value).inc()
        return result_to_proto(result, self._isolation)

    async def Execute(self, request, context):
        return await self._run(request, _deadline(context))

    async def ExecuteStream(self, request_iterator, context):
        verifier = self._ready()
        limit = self.settings.stream_in_flight or verifier.pool.size * 2
        gate = asyncio.Semaphore(limit)
        results: asyncio.Queue = asyncio.Queue()
        tasks: set[asyncio.Task] = set()
        deadline = _deadline(context)

        async def one(item: pb.ExecuteStreamRequest) -> None:
            try:
                validate(item)
                response = pb.ExecuteStreamResponse(correlation_id=item.correlation_id,
                                                    response=await self._run(item.request, deadline, "request."))
            except InstructForgeError as exc:
                response = pb.ExecuteStreamResponse(correlation_id=item.correlation_id, error=_stream_error(exc))
            except Exception:  # a bug must fail this item, not leave the caller waiting for it
                log.exception("execution failed", extra={"correlation_id": item.correlation_id})
                response = pb.ExecuteStreamResponse(correlation_id=item.correlation_id, error=pb.StreamError(
                    code=grpc.StatusCode.INTERNAL.value[0], message="internal error", reason="INTERNAL"))
            finally:
                gate.release()
            await results.put(response)

        async def read() -> None:
            async for item in request_iterator:
                await gate.acquire()
                task = asyncio.get_running_loop().create_task(one(item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            for _ in range(limit):
                await gate.acquire()
            await results.put(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (response := await results.get()) is not None:
                yield response
            await reader  # surfaces a broken request stream
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(reader, *tasks, return_exceptions=True)

    async def GetSandboxInfo(self, request, context):
        verifier = self._ready()
        stats = verifier.pool.stats()
        policy = verifier.options.limits
        return pb.GetSandboxInfoResponse(
            isolation=self._isolation, capacity=verifier.pool.size, queued_count=stats["waiting"],
            busy_count=stats["busy"], recycled_count=stats["recycled"], default_limits=limits_to_proto(policy.default),
            max_limits=limits_to_proto(policy.maximum), python_executable=verifier.plan.python)


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _stream_error(exc: InstructForgeError) -> pb.StreamError:
    code = grpc.StatusCode[exc.grpc_code]
    return pb.StreamError(code=code.value[0], message=exc.message, reason=exc.reason)


async def create_servicer(settings: VerifierSettings, metrics: Metrics) -> VerifierServicer:
    return VerifierServicer(settings, metrics)
