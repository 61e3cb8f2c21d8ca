"""The gRPC half of verifier_bench.py: a real server process, this process as its client.

The server is started the way a container starts it (``iforge serve verifier``), with full
isolation found at start-up; the samples go over loopback once through ``ExecuteStream`` and once
as concurrent unary ``Execute`` calls. Run verifier_bench.py, which prints these figures next to
the published approach's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time


def _start_server(state_dir: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "instructforge.cli.main", "serve", "verifier", "--port", "0",
           "--metrics-port", "0", "--state-dir", state_dir]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "IFORGE_LOG_FORMAT": "json"})
    ports: queue.Queue = queue.Queue()

    def read() -> None:  # keep draining: a full pipe would stall the server's logging
        assert proc.stderr is not None
        for line in proc.stderr:
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                if event.get("message") == "service started":
                    ports.put(int(event["port"]))
        ports.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        port = ports.get(timeout=60)
    except queue.Empty:
        port = None
    if port is None:
        proc.kill()
        raise SystemExit(f"the verifier server did not start (exit {proc.poll()})")
    return proc, port


async def _client(port: int, work, in_flight: int) -> dict:
    import grpc

    from instructforge.verifier.models import Status
    from instructforge.verifier.server import outcome_of, request_to_proto
    from instructforge.verifier.v1 import verifier_pb2 as pb
    from instructforge.verifier.v1 import verifier_pb2_grpc as pb_grpc

    protos = [request_to_proto(req) for _prog, req, _want in work]
    wants = [want for _prog, _req, want in work]
    out = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.VerifierServiceStub(channel)
        info = await stub.GetSandboxInfo(pb.GetSandboxInfoRequest(), timeout=30)
        mode = info.isolation.mode
        await stub.Execute(protos[0], timeout=30)  # warm the channel

        # One bidirectional stream carrying all samples.
        sent: dict[str, float] = {}
        latencies = [0.0] * len(protos)
        passed = [False] * len(protos)

        async def requests():
            for i, msg in enumerate(protos):
                sent[str(i)] = time.perf_counter()
                yield pb.ExecuteStreamRequest(correlation_id=str(i), request=msg)

        t0 = time.perf_counter()
        async for answer in stub.ExecuteStream(requests(), timeout=600):
            i = int(answer.correlation_id)
            latencies[i] = time.perf_counter() - sent[answer.correlation_id]
            passed[i] = answer.WhichOneof("result") == "response" and outcome_of(answer.response) is Status.PASSED
        out["verifier via gRPC ExecuteStream"] = {
            "elapsed": time.perf_counter() - t0, "latencies": latencies, "n": len(protos), "mode": mode,
            "agree": sum(p == w for p, w in zip(passed, wants, strict=True))}

        # Concurrent unary calls.
        gate = asyncio.Semaphore(in_flight)
        latencies = [0.0] * len(protos)
        passed = [False] * len(protos)

        async def one(i: int) -> None:
            async with gate:
                t = time.perf_counter()
                resp = await stub.Execute(protos[i], timeout=600)
                latencies[i] = time.perf_counter() - t
                passed[i] = outcome_of(resp) is Status.PASSED

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(protos))))
        out[f"verifier via gRPC Execute ({in_flight} in flight)"] = {
            "elapsed": time.perf_counter() - t0, "latencies": latencies, "n": len(protos), "mode": mode,
            "agree": sum(p == w for p, w in zip(passed, wants, strict=True))}
    return out


def run_grpc(work, in_flight: int) -> dict:
    with tempfile.TemporaryDirectory() as state:
        proc, port = _start_server(state)
        try:
            return asyncio.run(_client(port, work, in_flight))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
