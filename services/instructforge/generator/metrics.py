"""The gateway's Prometheus metrics, registered on the process's registry.

Labels stay bounded: logical model, deployment, outcome/fault kind; never run ids or prompts.
Label children are resolved once per (model, deployment) and kept, so recording a call costs a few
attribute reads and increments rather than label-tuple lookups. With `recording=False` (a process
whose metrics nobody reads: `Metrics.recording`) every metric is `UNRECORDED`, whose updates do
nothing, and nothing is registered: Prometheus' locked updates were ~3% of the gateway's CPU per call.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from instructforge.runtime.metrics import LATENCY_BUCKETS_S

WAIT_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
P = "instructforge_generator_"


class _Unrecorded:
    """Stands in for a metric and for each of its children where nobody reads them: updates do nothing."""

    __slots__ = ()

    def labels(self, *values: str) -> _Unrecorded:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


UNRECORDED = _Unrecorded()
_METRICS = ("requests", "latency", "backend_calls", "retries", "fallbacks", "tokens", "cost", "cache", "cache_errors",
            "cooldowns", "in_flight", "concurrency_limit", "rate_limit_wait")


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, recording: bool = True):
        self._per_pair: dict[tuple[str, str], PairMetrics] = {}
        self._per_model: dict[str, ModelMetrics] = {}
        self.recording = recording
        if not recording:
            self.registry = registry
            for name in _METRICS:
                setattr(self, name, UNRECORDED)
            return
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter(P + "requests_total", "Generate requests answered, by outcome "
                                "(ok, cache_hit, or the error reason).", ("model", "deployment", "outcome"), registry=r)
        self.latency = Histogram(P + "latency_seconds", "Time per request, by stage: queue (waiting for a "
                                 "concurrency or rate-limit slot), backend (provider calls), total.",
                                 ("model", "stage"), buckets=LATENCY_BUCKETS_S, registry=r)
        self.backend_calls = Counter(P + "backend_calls_total", "Provider calls (every attempt), by result "
                                     "(ok or the fault).", ("model", "deployment", "result"), registry=r)
        self.retries = Counter(P + "retries_total", "Attempts made after a retryable fault, by that fault.",
                               ("model", "deployment", "fault"), registry=r)
        self.fallbacks = Counter(P + "fallbacks_total", "Requests moved to a fallback model.",
                                 ("model", "fallback"), registry=r)
        self.tokens = Counter(P + "tokens_total", "Tokens billed, by kind (prompt, completion).",
                              ("model", "deployment", "kind"), registry=r)
        self.cost = Counter(P + "cost_usd_total", "Cost billed by providers, in US dollars.",
                            ("model", "deployment"), registry=r)
        self.cache = Counter(P + "cache_samples_total", "Samples looked up in the cache, by result (hit, miss); "
                             "idempotent replays count as idempotent.", ("model", "result"), registry=r)
        self.cache_errors = Counter(P + "cache_errors_total", "Cache store failures (the call went on without it).",
                                    ("operation",), registry=r)
        self.cooldowns = Counter(P + "cooldowns_total", "Times a deployment was benched after repeated failures.",
                                 ("deployment",), registry=r)
        self.in_flight = Gauge(P + "in_flight", "Provider calls in flight.", ("deployment",), registry=r)
        self.concurrency_limit = Gauge(P + "concurrency_limit", "Current adaptive concurrency limit.",
                                       ("deployment",), registry=r)
        self.rate_limit_wait = Histogram(P + "rate_limit_wait_seconds", "Time spent waiting for a slot, by limit "
                                         "(concurrency, rpm, tpm).", ("deployment", "limit"), buckets=WAIT_BUCKETS_S,
                                         registry=r)

    def pair(self, model: str, deployment: str) -> PairMetrics:
        found = self._per_pair.get((model, deployment))
        if found is None:
            found = self._per_pair[(model, deployment)] = PairMetrics(self, model, deployment)
        return found

    def model(self, model: str) -> ModelMetrics:
        found = self._per_model.get(model)
        if found is None:
            found = self._per_model[model] = ModelMetrics(self, model)
        return found


class ModelMetrics:
    __slots__ = ("backend", "hit", "idempotent", "miss", "queue", "total")

    def __init__(self, m: GatewayMetrics, model: str):
        self.queue = m.latency.labels(model, "queue")
        self.backend = m.latency.labels(model, "backend")
        self.total = m.latency.labels(model, "total")
        self.hit = m.cache.labels(model, "hit")
        self.miss = m.cache.labels(model, "miss")
        self.idempotent = m.cache.labels(model, "idempotent")


class PairMetrics:
    """Children of one (logical model, deployment) pair."""

    __slots__ = (
        "completion_tokens",
        "cost",
        "deployment",
        "in_flight",
        "limit",
        "m",
        "model",
        "ok_calls",
        "ok_requests",
        "prompt_tokens",
        "wait_concurrency",
        "wait_rpm",
        "wait_tpm",
    )

    def __init__(self, m: GatewayMetrics, model: str, deployment: str):
        self.m, self.model, self.deployment = m, model, deployment
        self.ok_calls = m.backend_calls.labels(model, deployment, "ok")
        self.ok_requests = m.requests.labels(model, deployment, "ok")
        self.prompt_tokens = m.tokens.labels(model, deployment, "prompt")
        self.completion_tokens = m.tokens.labels(model, deployment, "completion")
        self.cost = m.cost.labels(model, deployment)
        self.in_flight = m.in_flight.labels(deployment)
        self.limit = m.concurrency_limit.labels(deployment)
        self.wait_concurrency = m.rate_limit_wait.labels(deployment, "concurrency")
        self.wait_rpm = m.rate_limit_wait.labels(deployment, "rpm")
        self.wait_tpm = m.rate_limit_wait.labels(deployment, "tpm")

    def failed_call(self, fault: str) -> None:
        self.m.backend_calls.labels(self.model, self.deployment, fault).inc()

    def retry(self, fault: str) -> None:
        self.m.retries.labels(self.model, self.deployment, fault).inc()

    def outcome(self, outcome: str) -> None:
        if outcome == "ok":
            self.ok_requests.inc()
        else:
            self.m.requests.labels(self.model, self.deployment, outcome).inc()
