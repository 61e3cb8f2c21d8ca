"""How much the generator gateway adds over calling a provider directly, side by side in one run.

One instant fake OpenAI server (its own process; canned answers, no parsing beyond the route) is
called at 1, 64 and 512 concurrent requests by:

- direct       the official openai async client (`chat.completions.create`), as a pipeline would;
- grpc         the gateway's unary Generate (gateway in its own process, `iforge serve generator`);
- stream       the gateway's StreamGenerate, one stream keeping N requests in flight;
- batches      StreamGenerateBatches through the pipeline's own client (`GenerationStream`): the
               requests ready at once in one message, the answers ready at once in one;
- http         the official openai client pointed at the gateway's OpenAI-compatible HTTP API.

Each gateway mode runs twice, once per HTTP client of the gateway's openai backend (two logical
models on the same fake): `/sdk`, the official SDK (the default), and `/direct`, the lean client a
deployment selects with `http_client: direct`.

Every request has its own prompt, so each one is a cache miss that the gateway looks up and then
stores (SQLite by default, as in embedded mode; `--cache none` to leave the cache out). Prints
throughput and latency per mode and concurrency, then the ratios next to the issue's targets (on
2 cores): added latency at 64 concurrent p50 <= 2 ms and p99 <= 10 ms; >= 1,500 generations/s
through StreamGenerate; gateway throughput >= 80% of direct at 512 concurrent.

    python tools/bench/gateway_bench.py [--seconds 4] [--cache sqlite|memory|none] [--modes direct,grpc,stream,batches,http]
                                        [--clients sdk,direct] [--concurrency 1,64,512]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "generator" / "fakes" / "openai_server.py"
CONCURRENCY = (1, 64, 512)
# Changed before every cell, so no prompt repeats across cells or rounds: every request is a cache miss.
PROMPT_PREFIX = ""


def start_fake() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(FAKE), "--instant"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit("the fake OpenAI server did not start")
    return proc, int(line)


def start_gateway(fake_port: int, cache: str, state_dir: str) -> tuple[subprocess.Popen, int, int]:
    config = Path(state_dir) / "gateway.yaml"
    cache_section = {"store": cache} if cache != "sqlite" else {"store": "sqlite"}
    def model(client: str) -> dict:
        return {"name": f"bench-{client}", "deployments": [{
            "backend": "openai", "model": "gpt-fake", "base_url": f"http://127.0.0.1:{fake_port}/v1",
            "max_concurrency": 1024, "http_client": client}]}

    generator = {
        "models": [model("sdk"), model("direct")],
        "cache": cache_section, "stream_window": 1024}
    config.write_text(json.dumps({"generator": generator}))  # JSON is YAML
    cmd = [sys.executable, "-m", "instructforge.cli.main", "serve", "generator", "--port", "0", "--metrics-port", "0",
           "--http-port", "0", "--state-dir", state_dir, "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "IFORGE_LOG_FORMAT": "json", "IFORGE_LOG_LEVEL": "INFO"})
    events: queue.Queue = queue.Queue()

    def read() -> None:  # keep draining: a full pipe would stall the server
        for line in proc.stderr:
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                if event.get("message") in ("service started", "http api listening"):
                    events.put((event["message"], int(event["port"])))
        events.put(None)

    threading.Thread(target=read, daemon=True).start()
    ports = {}
    while len(ports) < 2:
        try:
            event = events.get(timeout=120)
        except queue.Empty:
            event = None
        if event is None:
            proc.kill()
            raise SystemExit(f"the gateway did not start (exit {proc.poll()})")
        ports[event[0]] = event[1]
    return proc, ports["service started"], ports["http api listening"]


def summary(latencies: list[float], elapsed: float) -> dict:
    latencies.sort()
    n = len(latencies)
    return {"rps": n / elapsed, "p50_ms": latencies[n // 2] * 1000, "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
            "n": n}


async def closed_loop(call, concurrency: int, seconds: float) -> dict:
    """`concurrency` workers calling back to back for `seconds` (after a short warm-up)."""
    latencies: list[float] = []
    counter = iter(range(10**9))
    stop_at = 0.0
    measuring = False

    async def worker():
        while time.perf_counter() < stop_at:
            i = next(counter)
            start = time.perf_counter()
            await call(i)
            if measuring:
                latencies.append(time.perf_counter() - start)

    stop_at = time.perf_counter() + min(1.0, seconds / 4)
    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up: connections, caches
    warm = next(counter)
    measuring = True
    begin = time.perf_counter()
    stop_at = begin + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = summary(latencies, time.perf_counter() - begin)
    result["total"] = next(counter) - 1
    result["warm"] = warm
    return result


async def bench_openai(base_url: str, concurrency: int, seconds: float, tag: str, model: str) -> dict:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)

    async def call(i: int):
        await client.chat.completions.create(model=model,
                                             messages=[{"role": "user", "content": f"{PROMPT_PREFIX}{tag}-{concurrency}-{i}"}])

    try:
        return await closed_loop(call, concurrency, seconds)
    finally:
        await client.close()


def _request(pb, text: str, model: str):
    return pb.GenerateRequest(model=model, chat=pb.ChatPrompt(messages=[pb.ChatMessage(role=pb.ROLE_USER,
                                                                                         content=text)]))


async def bench_grpc(port: int, concurrency: int, seconds: float, model: str) -> dict:
    import grpc

    from instructforge.generator.v1 import generator_pb2 as pb
    from instructforge.generator.v1 import generator_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)

        async def call(i: int):
            await stub.Generate(_request(pb, f"{PROMPT_PREFIX}grpc-{model}-{concurrency}-{i}", model), timeout=60)

        return await closed_loop(call, concurrency, seconds)


async def bench_stream(port: int, concurrency: int, seconds: float, model: str) -> dict:
    """One StreamGenerate call per round; a new request goes out whenever an answer comes back (N in flight)."""
    import grpc

    from instructforge.generator.v1 import generator_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        warm = await _stream_round(stub, concurrency, min(1.0, seconds / 4), f"w{model}", model)  # warm-up
        result = await _stream_round(stub, concurrency, seconds, f"m{model}", model)
        result["total"] = warm["n"] + result["n"]
        return result


async def bench_batches(port: int, concurrency: int, seconds: float, model: str) -> dict:
    """N calls in flight over one StreamGenerateBatches call, as a pipeline run makes them."""
    from instructforge.client import GeneratorClient
    from instructforge.generator.v1 import generator_pb2 as pb
    from instructforge.pipeline.generation_stream import GenerationStream

    async with GeneratorClient.connect(f"127.0.0.1:{port}") as client:
        stream = GenerationStream(client)

        async def call(i: int):
            await stream.call(_request(pb, f"{PROMPT_PREFIX}batches-{model}-{concurrency}-{i}", model), 60, "bench")

        result = await closed_loop(call, concurrency, seconds)
        await stream.close()
        return result


async def _stream_round(stub, concurrency: int, duration: float, tag: str, model: str) -> dict:
    from instructforge.generator.v1 import generator_pb2 as pb

    sent: dict[str, float] = {}
    latencies: list[float] = []
    outbox: asyncio.Queue = asyncio.Queue()
    counter = iter(range(10**9))

    def next_request():
        cid = f"{tag}{concurrency}-{next(counter)}"
        sent[cid] = time.perf_counter()
        return pb.StreamGenerateRequest(correlation_id=cid, request=_request(pb, f"{PROMPT_PREFIX}stream-{cid}", model))

    for _ in range(concurrency):
        outbox.put_nowait(next_request())

    async def requests():
        while (item := await outbox.get()) is not None:
            yield item

    call = stub.StreamGenerate(requests())
    begin = time.perf_counter()
    stop_at = begin + duration
    async for out in call:
        if out.WhichOneof("result") != "response":
            raise SystemExit(f"stream item failed: {out.error}")
        latencies.append(time.perf_counter() - sent.pop(out.correlation_id))
        if time.perf_counter() < stop_at:
            outbox.put_nowait(next_request())
        if not sent:
            break
    elapsed = time.perf_counter() - begin
    outbox.put_nowait(None)
    with contextlib.suppress(Exception):
        async for _ in call:
            pass
    return summary(latencies, elapsed)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux), to show where a request's CPU goes."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def median_of(runs: list[dict]) -> dict:
    """Each figure of a cell as the median over its interleaved rounds (one noisy round moves nothing)."""
    import statistics

    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float)) and all(k in r for r in runs)]
    merged = {k: statistics.median(r[k] for r in runs) for k in keys}
    merged["n"] = int(merged["n"])
    return merged


def table(results: dict) -> str:
    header = f"{'mode':<12} {'conc':>5} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'n':>7} {'gateway CPU us/req':>19} {'client CPU us/req':>18}"
    lines = [header]
    for (mode, conc), r in results.items():
        cpu = f"{r['gateway_cpu_us']:.0f}" if r.get("gateway_cpu_us") is not None else "-"
        lines.append(f"{mode:<12} {conc:>5} {r['rps']:>9.0f} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['n']:>7} "
                     f"{cpu:>19} {r['client_cpu_us']:>18.0f}")
    return "\n".join(lines)


def verdicts(results: dict) -> str:
    lines = ["", "targets (2 cores):"]
    direct1, direct64, direct512 = (results.get(("direct", c)) for c in (1, 64, 512))
    for mode in sorted({m for m, _c in results if m != "direct"}):
        r1, r64, r512 = (results.get((mode, c)) for c in (1, 64, 512))
        if direct1 and r1:  # one request at a time: the pure cost of the extra hop, no queueing
            lines.append(f"  {mode:<12} added latency at 1:  p50 {r1['p50_ms'] - direct1['p50_ms']:+.2f} ms  "
                         f"p99 {r1['p99_ms'] - direct1['p99_ms']:+.2f} ms")
        if direct64 and r64:
            p50 = r64["p50_ms"] - direct64["p50_ms"]
            p99 = r64["p99_ms"] - direct64["p99_ms"]
            lines.append(f"  {mode:<12} added latency at 64: p50 {p50:+.2f} ms (target <= 2)  "
                         f"p99 {p99:+.2f} ms (target <= 10)  {'MET' if p50 <= 2 and p99 <= 10 else 'MISSED'}")
        if direct512 and r512:
            ratio = r512["rps"] / direct512["rps"]
            lines.append(f"  {mode:<12} throughput vs direct at 512: {ratio:.2f} (target >= 0.80)  "
                         f"{'MET' if ratio >= 0.8 else 'MISSED'}")
    for client in ("sdk", "direct"):
        best = max((r["rps"] for (m, _c), r in results.items() if m == f"stream/{client}"), default=None)
        if best is not None:
            lines.append(f"  stream/{client} best generations/s: {best:.0f} (target >= 1500)  "
                         f"{'MET' if best >= 1500 else 'MISSED'}")
    return "\n".join(lines)


async def main() -> None:
    global PROMPT_PREFIX
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per mode and concurrency")
    parser.add_argument("--cache", choices=("sqlite", "memory", "none"), default="sqlite")
    parser.add_argument("--modes", default="direct,grpc,stream,batches,http")
    parser.add_argument("--clients", default="sdk,direct", help="the gateway's openai HTTP clients to measure")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over every cell, interleaved; each figure is the median of its rounds")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    args = parser.parse_args()
    modes = args.modes.split(",")
    clients = args.clients.split(",")
    levels = [int(c) for c in args.concurrency.split(",")]
    fake, fake_port = start_fake()
    state = tempfile.mkdtemp(prefix="gateway-bench-")
    gateway = None
    try:
        gateway, grpc_port, http_port = start_gateway(fake_port, args.cache, state)
        print(f"cpus: {os.cpu_count()}  load average: {os.getloadavg()[0]:.2f}  cache: {args.cache}  "
              f"seconds per cell: {args.seconds}", flush=True)
        results: dict = {}
        cells = [(mode, None) if mode == "direct" else (mode, c) for mode in modes
                 for c in (clients if mode != "direct" else [None])]
        rounds: dict = {}
        for round_ in range(args.repeat):
            for conc in levels:
                for mode, client in cells:
                    PROMPT_PREFIX = f"r{round_}-"
                    cpu_before = process_cpu_s(gateway.pid)
                    client_before = time.process_time()
                    model = f"bench-{client}"
                    if mode == "direct":
                        r = await bench_openai(f"http://127.0.0.1:{fake_port}/v1", conc, args.seconds, "direct", "gpt-fake")
                    elif mode == "grpc":
                        r = await bench_grpc(grpc_port, conc, args.seconds, model)
                    elif mode == "stream":
                        r = await bench_stream(grpc_port, conc, args.seconds, model)
                    elif mode == "batches":
                        r = await bench_batches(grpc_port, conc, args.seconds, model)
                    elif mode == "http":
                        r = await bench_openai(f"http://127.0.0.1:{http_port}/v1", conc, args.seconds, "http", model)
                    else:
                        raise SystemExit(f"unknown mode {mode}")
                    label = mode if client is None else f"{mode}/{client}"
                    r["client_cpu_us"] = (time.process_time() - client_before) / max(1, r["total"]) * 1e6
                    if mode != "direct":
                        r["gateway_cpu_us"] = (process_cpu_s(gateway.pid) - cpu_before) / max(1, r["total"]) * 1e6
                    rounds.setdefault((label, conc), []).append(r)
                    print(f"[{round_ + 1}/{args.repeat}] {label:<12} {conc:>5} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                          f"p99 {r['p99_ms']:.2f} ms", flush=True)
        results = {cell: median_of(runs) for cell, runs in rounds.items()}
        print()
        print(table(results))
        print(verdicts(results))
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (other work on the machine skews every figure)")
    finally:
        for proc in (gateway, fake):
            if proc is not None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(15)
        shutil.rmtree(state, ignore_errors=True)  # the gateway's cache database: nothing to keep


if __name__ == "__main__":
    asyncio.run(main())
