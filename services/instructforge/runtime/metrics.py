"""Prometheus metrics of a server process, served over HTTP on a port of their own.

One `Metrics` per process: in embedded mode every service shares it (and its port); services add
their own metrics to `metrics.registry`. The RPC metrics follow the names scrapers know from
go-grpc-prometheus, so existing dashboards and alerts apply.

`recording=False` says nobody will read the registry (`iforge up --no-metrics-enabled`, as a
pipeline run embeds its services): a service whose metrics cost CPU per unit of work (the gateway
updates a dozen per LLM call) may then leave them out.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# From half a millisecond (a cache hit) to ten minutes (a long generation or a training call).
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
)


class Metrics:
    """The process's registry and the RPC metrics the runtime records for every call."""

    def __init__(self, registry: CollectorRegistry | None = None, *, recording: bool = True):
        self.registry = registry or CollectorRegistry()
        self.recording = recording
        labels = ("grpc_service", "grpc_method", "grpc_type")
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", labels, registry=self.registry
        )
        self.handled = Counter(
            "grpc_server_handled_total", "RPCs completed on the server, by status code.",
            labels + ("grpc_code",), registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds", "Time from the start of an RPC to its end, by status code.",
            labels + ("grpc_code",), buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight", "RPCs being handled now.", labels, registry=self.registry
        )
        self._http: tuple[WSGIServer, threading.Thread] | None = None

    @classmethod
    def for_endpoint(cls, address: tuple[str, int] | None) -> Metrics:
        """A process's metrics, recorded only when `address` serves them: with no endpoint nobody
        reads them, and the gateway's cost CPU on every call."""
        return cls(recording=address is not None)

    def serve_http(self, host: str, port: int) -> int:
        """Start the /metrics endpoint in a background thread; returns the bound port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = (server, thread)
        bound = server.server_port
        log.info("metrics endpoint listening", extra={"address": f"http://{host}:{bound}/metrics"})
        return bound

    def close(self) -> None:
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._http = None
