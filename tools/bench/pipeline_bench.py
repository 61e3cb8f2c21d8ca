"""Orchestration efficiency of `iforge run`: how close an Explore-Instruct run gets to the ideal.

A fake OpenAI-compatible model (its own process) answers every call after `--latency-s` (exactly,
so answers come back in lockstep rounds; `--latency-jitter` spreads them) and lets `--concurrency`
calls in at once; beyond that a call waits for a slot, as a rate-limited provider
would make it. It writes each answer halfway through that wait, not on arrival: a real provider's
work takes none of the client's CPU, and calls arrive exactly while the run turns a burst of answers
into calls (composing them on arrival cost the run 1-2 points of the ideal in interleaved pairs).
The run (`iforge run`, its own process, with the gateway and dedup services embedded in child
processes of it, one per service) explores a domain and enriches every node until it has
`--examples` examples.

The ideal is what the latency and the concurrency allow: `concurrency / latency` calls per second.
Explore-Instruct's tree has levels that must be explored one after the other (a node is extended
only once it exists), so the run-wide ideal adds one latency per tree level to the enrich calls'
ideal.

Printed first, per source tree: the orchestration bound, the tree's own extend and enrich code on
a virtual clock (code costs no time; the fake's latency and slots do, and `--bound-cpu-ms` charges
each call to one shared core), answered by the fake's own responder. It runs the same code on the
same answers as a real run (only the calls sent ahead of need depend on timing), so the two compare
directly: what a real run loses beyond the bound is CPU. Then, per
run: calls, each stage's wall time, the enrich stage's and the whole run's throughput against their
ideals (the run with and without its start-up: Python, imports, the embedded services ready), at a
fixed latency the most any schedule of that many calls could reach (a slot serves one call per
latency, so N calls take at least ceil(N / concurrency) latencies), the
capacity the enrich stage left unused at the fake (before its slots were first all busy, in between,
after they were last all busy), at a fixed latency how long each round trip's calls took to reach
their slots (the run turning the answers before into calls), the
CPU of the run's processes, of the fake and of everything else on the machine (sampled from /proc;
per enrich call, and the cores the ideal pace would need), peak memory, and calls in flight at the
fake every 0.25 s.

    python tools/bench/pipeline_bench.py                      # 10k examples, 500 ms, 256 at once
    python tools/bench/pipeline_bench.py --examples 2000      # a quicker look
    python tools/bench/pipeline_bench.py --source /tmp/base --source . --repeat 3
                                         # source trees side by side, interleaved (noisy machines)
    python tools/bench/pipeline_bench.py --bound-only [--bound-cpu-ms 2]     # the bound alone, in seconds
    python tools/bench/pipeline_bench.py --bound-only --bound-seeds 8 [--bound-cpu-ms 1]
                                         # the bound over recipe seeds 1..8 and its mean: judge a
                                         # scheduler change without the machine's noise
    python tools/bench/pipeline_bench.py --latency-jitter 0.2  # latencies of 400-600 ms (same mean)
    python tools/bench/pipeline_bench.py --recipe-seed 3       # another recipe seed (default 42)
    python tools/bench/pipeline_bench.py --keep-runs          # keep each run's folder (deleted by default)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVICE_ROLES = ("gateway", "dedup", "services")  # the embedded services' processes (see ProcessWatch)

FAKE = r'''
import asyncio, json, resource, sys, time
sys.path[:0] = [sys.argv[1] + "/tests/pipeline", sys.argv[1] + "/tests/generator", sys.argv[1] + "/tests"]
from layout_openai import LayoutOpenAI

class Limited(LayoutOpenAI):
    """Answers after a latency (fixed, or uniform within +-jitter of it), at most `limit` calls at once
    (the rest wait for a slot)."""
    def __init__(self, latency, limit, jitter):
        super().__init__()
        self.latency, self.slots, self.peak, self.inside = latency, asyncio.Semaphore(limit), 0, 0
        self.jitter, self.rng = jitter, __import__("random").Random(7)
        self.spans = []
    def handle(self, request):
        if request.method != "POST":
            return super().handle(request)
        async def later():
            arrived = time.time()  # wall time: comparable with the run's stage times
            async with self.slots:
                self.inside += 1
                self.peak = max(self.peak, self.inside)
                loop = asyncio.get_running_loop()
                due = loop.time() + self.latency * (1 + self.jitter * (2 * self.rng.random() - 1))
                # The answer is written halfway through the wait, not on arrival: calls arrive while
                # the run turns a burst of answers into calls, and a real provider's work would not
                # take the CPU the run then needs (here it shares the machine).
                await asyncio.sleep((due - loop.time()) / 2)
                reply = LayoutOpenAI.handle(self, request)
                await asyncio.sleep(max(0.0, due - loop.time()))
                self.inside -= 1
            self.spans.append((arrived, time.time()))
            return reply
        return later()

async def main():
    fake = Limited(float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    await fake.start()
    print(fake.url, flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    phase = max(b for _, b in fake.spans) - min(a for a, _ in fake.spans) if fake.spans else 0.0
    print(f"{len(fake.log.calls)} {fake.peak} {usage.ru_utime + usage.ru_stime:.3f} {phase:.3f}", flush=True)
    buckets = []
    if fake.spans:
        t0 = min(a for a, _ in fake.spans)
        end = max(b for _, b in fake.spans)
        t = t0
        while t < end:
            buckets.append(sum(1 for a, b in fake.spans if a <= t < b))
            t += 0.25
    print(" ".join(map(str, buckets)), flush=True)
    print(json.dumps([[round(a, 4), round(b, 4)] for a, b in fake.spans]), flush=True)

asyncio.run(main())
'''


def recipe_text(examples: int, concurrency: int, seed: int | None = None) -> str:
    # Two levels of 12 subtasks (1 + 12 + 144 nodes); enrich the leaves to reach `examples` after
    # the near-duplicate filter and the sampler. `seed`: the recipe's (default 42), which draws the
    # demonstrations, so the prompts and with them which answers come back bad.
    per_leaf = max(20, round(examples * 1.3 / 144 / 10) * 10)
    seed_line = f"seed: {seed}\n" if seed is not None else ""
    return f"""recipe: explore_instruct
name: bench-explore
{seed_line}concurrency: {concurrency}
domain:
  preset: custom
  name: Packing lists
  description: Writing packing lists for trips of every kind.
  examples:
    - instruction: Write a packing list for a weekend of camping.
      input: ""
      output: Tent, sleeping bag, stove, water filter, headlamp.
stages:
  extend: {{max_depth: 2, extend_nums: [12, 12]}}
  enrich: {{enrich_nums: [0, 0, {per_leaf}]}}
  filter: {{scope: node}}
  sample: {{example_num: {examples}}}
"""


class ProcessWatch(threading.Thread):
    """Samples the run's processes, the fake's and the whole machine's CPU from /proc every 0.1 s.

    Roles: `pipeline` (the `iforge run` process), `gateway` and `dedup` (its descendants running
    `iforge up` for those services; `services` for any other), `fake`, and `machine` (every core's
    busy time, whoever used it). A process's last sample is
    taken up to 0.1 s before it exits, so its total is a slight undercount; the bench takes the run's
    total from getrusage and gives the pipeline process what the services did not use.
    """

    def __init__(self, root: int, fake: int):
        super().__init__(daemon=True)
        self.root, self.fake, self.stop = root, fake, threading.Event()
        self.seen: dict[int, dict] = {}
        self.series: list[tuple[float, dict[str, float]]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.1)

    def sample(self) -> None:
        now = time.time()
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rpartition(")")[2].split()[1])
                children.setdefault(ppid, []).append(int(entry))
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        for pid in tree + [self.fake]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                status = Path(f"/proc/{pid}/status").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
            known = self.seen.get(pid)  # an exiting process has no command line or memory left to read
            role = known["role"] if known else self._role(pid, cmdline)
            self.seen[pid] = {"role": role, "cpu": (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
                              "rss_mib": max(hwm / 1024, known["rss_mib"] if known else 0.0)}
        cpu = {"machine": self._machine_busy()}
        for p in self.seen.values():
            cpu[p["role"]] = cpu.get(p["role"], 0.0) + p["cpu"]
        self.series.append((now, cpu))

    def _role(self, pid: int, cmdline: list[bytes]) -> str:
        if pid in (self.root, self.fake):
            return "pipeline" if pid == self.root else "fake"
        if b"up" not in cmdline:
            return "other"
        return {b"generator": "gateway", b"dedup": "dedup"}.get(next(
            (cmdline[i + 1] for i, arg in enumerate(cmdline[:-1]) if arg == b"--services"), b""), "services")

    @staticmethod
    def _machine_busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # all but idle and iowait

    def by_role(self, *roles: str) -> tuple[float, float]:
        """CPU seconds and peak RSS (MiB, each process's peak, summed) of the processes in `roles`."""
        found = [p for p in self.seen.values() if p["role"] in roles]
        return sum(p["cpu"] for p in found), sum(p["rss_mib"] for p in found)

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each role used from `start` to `end` (the nearest samples inside)."""
        inside = [(t, cpu) for t, cpu in self.series if start <= t <= end]
        if len(inside) < 2:
            return {}
        (_, first), (_, last) = inside[0], inside[-1]
        return {role: last.get(role, 0.0) - first.get(role, 0.0) for role in last} | \
            {"seconds": inside[-1][0] - inside[0][0]}


def bench_once(args: argparse.Namespace, source: Path | None) -> dict:
    """One run of the fake and `iforge run` (from `source`'s code when given); its figures."""
    fake = subprocess.Popen([sys.executable, "-c", FAKE, str(ROOT), str(args.latency_s), str(args.concurrency),
                             str(args.latency_jitter)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = fake.stdout.readline().strip()
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    (work / "recipe.yaml").write_text(recipe_text(args.examples, args.concurrency, args.recipe_seed))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "IFORGE"))}
    env.update(IFORGE_LLM_BASE_URL=url, IFORGE_LLM_MODEL="gpt-fake", HF_HUB_OFFLINE="1")
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source / "clients"), str(source / "services")])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.time()
    started = time.perf_counter()
    run = subprocess.Popen([sys.executable, "-m", "instructforge.cli.main", "run", str(work / "recipe.yaml"),
                            "--run-dir", str(work / "run")], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    watch = ProcessWatch(run.pid, fake.pid)
    watch.start()
    out, _ = run.communicate()
    wall = time.perf_counter() - started
    watch.stop.set()
    watch.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    fake.stdin.write("done\n")
    fake.stdin.flush()
    calls, peak, fake_cpu, llm_phase = fake.stdout.readline().split()
    timeline = fake.stdout.readline().strip()
    spans = json.loads(fake.stdout.readline())
    fake.wait(10)
    if args.keep_runs:  # each call at the fake: when it arrived, when it was answered (wall time)
        (work / "fake-spans.json").write_text(json.dumps(spans))
    if run.returncode != 0:  # the run folder stays, for its services' logs
        raise SystemExit(f"iforge run failed ({run.returncode}); its folder: {work / 'run'}\n{out[-3000:]}")
    try:
        summary = json.loads((work / "run" / "summary.json").read_text())
        with sqlite3.connect(work / "run" / "state.sqlite") as db:
            first_started, last_finished = db.execute("SELECT MIN(started), MAX(finished) FROM stages").fetchone()
            window = db.execute("SELECT started, finished FROM stages WHERE name = 'enrich'").fetchone()
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        services_cpu, services_rss = watch.by_role(*SERVICE_ROLES)
        _, pipeline_rss = watch.by_role("pipeline")
        stages = {s["name"]: s for s in summary["stages"]}
        enrich = stages.get("enrich", {})
        return {
            "source": str(source or ROOT), "work": str(work) if args.keep_runs else None,
            "examples": summary["examples"],
            "calls": int(calls), "peak": int(peak), "wall": wall, "startup": first_started - launched,
            "after_stages": launched + wall - last_finished, "stages": stages,
            "enrich_calls": enrich.get("calls", 0), "enrich_wall": enrich.get("wall_s", 0.0),
            "enrich_unused": enrich.get("notes", {}).get("unused_calls", 0),
            "enrich_used": enrich.get("notes", {}).get("answers_used"),
            "cpu": cpu, "services_cpu": services_cpu, "pipeline_cpu": cpu - services_cpu,
            "pipeline_rss": pipeline_rss, "services_rss": services_rss, "fake_cpu": float(fake_cpu),
            "timeline": timeline, "enrich_cpu": watch.between(*window) if window else {},
            "enrich_losses": capacity_losses(spans, *window, args.concurrency) if window else {},
            "enrich_rounds": round_trips(spans, *window, args.latency_s) if window and not args.latency_jitter else [],
            "llm_phase": float(llm_phase),
        }
    finally:
        # A run folder holds every prompt and answer of the run (about 40 MB here): kept only when
        # asked, or a few dozen runs fill the disk.
        if not args.keep_runs:
            shutil.rmtree(work, ignore_errors=True)


def capacity_losses(spans: list[list[float]], start: float, end: float, concurrency: int) -> dict:
    """Where the enrich stage's time went, from the fake's view: the slot-seconds it left unused,
    in seconds of full capacity, before its slots were first all busy (ramp-up), after they were last
    all busy (the last nodes' dependent rounds), and in between; and when the first call arrived."""
    during = [(a, b) for a, b in spans if start <= a < end]
    events = sorted([(a, 1) for a, _ in during] + [(b, -1) for _, b in during])
    if not events:
        return {}
    inside, last, full_first, full_last = 0, start, None, None
    pieces = []  # (from, to, idle slots)
    for t, step in events:
        t = min(t, end)
        pieces.append((last, t, concurrency - inside))
        inside += step
        last = t
        if inside >= concurrency:
            full_first = t if full_first is None else full_first
            full_last = t
    pieces.append((last, end, concurrency - inside))
    unused = {"ramp": 0.0, "middle": 0.0, "tail": 0.0}
    for a, b, idle in pieces:
        part = "ramp" if full_first is None or b <= full_first else "tail" if a >= full_last else "middle"
        unused[part] += max(0, idle) * (b - a) / concurrency
    return {**unused, "first_call": events[0][0] - start}


def round_trips(spans: list[list[float]], start: float, end: float, latency: float) -> list[tuple[int, float]]:
    """At a fixed latency: the enrich stage's calls by the latency window they took their provider
    slot in (the k-th window starts k latencies after the first call, a tenth of one early) and, per
    window, the seconds from its first slot to its last. A round trip's calls go out as the answers
    of the one before come back through the gateway and the run, so the spread is the time the run
    and its services took to turn a round trip's answers into calls; once it nears the latency the
    round trips run into each other and the windows no longer separate them."""
    slots = sorted(b - latency for a, b in spans if start <= a < end)  # when each call got its slot
    if not slots:
        return []
    rounds: dict[int, list[float]] = {}
    for t in slots:
        rounds.setdefault(int((t - slots[0] + latency * 0.1) // latency), []).append(t)
    return [(len(ts), ts[-1] - ts[0]) for _, ts in sorted(rounds.items())]


def kept_calls(r: dict) -> int:
    """The enrich calls whose answers the nodes kept. A tree from before the stage counted them
    (`answers_used`) gives its calls less those unused, which also subtracts the unused calls still
    on the way at the stage's end, which its calls do not count: a slight undercount."""
    return r["enrich_used"] if r.get("enrich_used") is not None else r["enrich_calls"] - r["enrich_unused"]


def efficiencies(r: dict, args: argparse.Namespace) -> dict:
    rate = args.concurrency / args.latency_s
    ideal_enrich = r["enrich_calls"] / rate
    levels = 2  # extend runs the root, then the 12 children, one level after the other
    ideal_run = levels * args.latency_s + ideal_enrich
    return {"rate": rate, "ideal_enrich": ideal_enrich, "ideal_run": ideal_run, "levels": levels,
            "llm_phase": r["calls"] / rate / r["llm_phase"] * 100 if r.get("llm_phase") else 0.0,
            "enrich": ideal_enrich / r["enrich_wall"] * 100 if r["enrich_wall"] else 0.0,
            "enrich_kept": kept_calls(r) / rate / r["enrich_wall"] * 100
            if r["enrich_wall"] else 0.0,
            "run": ideal_run / r["wall"] * 100, "run_after_startup": ideal_run / (r["wall"] - r["startup"]) * 100}


def fixed_latency_cap(calls: int, args: argparse.Namespace) -> str:
    """What any schedule of `calls` can reach when every answer takes the same time: a slot serves one
    call per latency, so some slot serves ceil(calls / concurrency) of them one after the other."""
    full, rest = divmod(calls, args.concurrency)
    rounds = full + (rest > 0)
    floor_s = rounds * args.latency_s
    return (f"{calls:,} calls = {full} full rounds of {args.concurrency}" + (f" and {rest} more" if rest else "")
            + f": at least {rounds} x {args.latency_s} s = {floor_s:.2f} s, so at most "
            f"{calls / (args.concurrency / args.latency_s) / floor_s * 100:.1f}% of ideal for any schedule")


def report(r: dict, args: argparse.Namespace) -> None:
    e = efficiencies(r, args)
    print(f"== {r['source']}" + (f"  (run folder {r['work']}/run)" if r["work"] else ""))
    print(f"examples kept            {r['examples']:,} (target {args.examples:,})")
    print(f"LLM calls at the fake    {r['calls']:,} (peak {r['peak']} at once; limit {args.concurrency})")
    print(f"ideal throughput         {e['rate']:,.0f} calls/s ({args.concurrency} at once / {args.latency_s} s)")
    print("stages                   " + ", ".join(f"{name} {s['wall_s']:.2f} s" + (f" ({s['calls']} calls)"
                                                   if s.get("calls") else "") for name, s in r["stages"].items()))
    print(f"enrich stage             {r['enrich_calls']:,} calls in {r['enrich_wall']:.2f} s = "
          f"{r['enrich_calls'] / r['enrich_wall'] if r['enrich_wall'] else 0:,.0f} calls/s -> "
          f"{e['enrich']:.1f}% of ideal (target >= 90%)")
    print(f"  counting kept calls    {kept_calls(r):,} calls ({r['enrich_unused']} sent ahead of "
          f"need and not used) -> {e['enrich_kept']:.1f}% of ideal")
    if not args.latency_jitter and r["enrich_calls"]:
        print("  at a fixed latency     " + fixed_latency_cap(r["enrich_calls"], args))
    if loss := r.get("enrich_losses"):
        print(f"  capacity left unused   {loss['ramp'] + loss['middle'] + loss['tail']:.2f} s at full capacity: "
              f"{loss['ramp']:.2f} s before all slots were first busy (first call at the fake "
              f"{loss['first_call'] * 1000:.0f} ms into the stage), {loss['middle']:.2f} s in between, "
              f"{loss['tail']:.2f} s after they were last all busy")
    if rounds := r.get("enrich_rounds"):
        print(f"  by latency window      calls {', '.join(str(n) for n, _ in rounds)}; each window's calls took their "
              f"slots over {', '.join(f'{s:.2f}' for _, s in rounds)} s (the time to turn a round trip's answers into calls)")
    print(f"LLM phase                {r['calls']:,} calls from the first request to the last answer at the fake in "
          f"{r['llm_phase']:.2f} s -> {e['llm_phase']:.1f}% of ideal (extend's levels included, no allowance)")
    print(f"whole run                {r['wall']:.2f} s wall (ideal {e['ideal_run']:.2f} s with {e['levels']} sequential "
          f"tree levels) -> {e['run']:.1f}% of ideal, start-up included")
    print(f"  without start-up       {r['wall'] - r['startup']:.2f} s -> {e['run_after_startup']:.1f}% of ideal "
          f"(start-up {r['startup']:.2f} s: Python, imports, embedded services ready; "
          f"after the last stage {r['after_stages']:.2f} s: dataset, report, services stopped)")
    print(f"client CPU               {r['cpu']:.2f} s ({r['cpu'] / r['wall'] * 100:.0f}% of one core over the run): "
          f"pipeline {r['pipeline_cpu']:.2f} s, embedded services {r['services_cpu']:.2f} s; "
          f"the fake model {r['fake_cpu']:.2f} s")
    c, n = r["enrich_cpu"], r["enrich_calls"]
    if c and n:
        others = c["machine"] - sum(c.get(role, 0) for role in ("pipeline", *SERVICE_ROLES, "fake"))
        per_call = {role: c.get(role, 0.0) / n * 1000 for role in ("pipeline", *SERVICE_ROLES, "fake")}
        print(f"enrich CPU per call      pipeline {per_call['pipeline']:.2f} ms, embedded gateway "
              f"{per_call['gateway']:.2f} ms, dedup {per_call['dedup']:.2f} ms, the fake model {per_call['fake']:.2f} ms: "
              f"{sum(per_call.values()):.2f} ms (the ideal pace needs {sum(per_call.values()) * e['rate'] / 1000:.2f} "
              f"cores); other processes used {others / c['seconds']:.2f} of the machine's {os.cpu_count()} cores")
    print(f"client peak memory       pipeline {r['pipeline_rss']:,.0f} MiB, embedded services "
          f"{r['services_rss']:,.0f} MiB (RSS)")
    print(f"calls at the fake, every 0.25 s: {r['timeline']}")


def orchestration_bound(args: argparse.Namespace, seed: int | None = None) -> dict:
    """The run's own extend and enrich code on a `VirtualClock`, answered after `latency` by the fake's
    responder with `concurrency` slots: the stages' wall time with free CPU, and their calls (the same
    calls as a real run's, since answers depend only on prompt and seed)."""
    fakes = [str(ROOT / "tests/pipeline"), str(ROOT / "tests/generator"), str(ROOT / "tests")]
    sys.path[:0] = [path for path in fakes if path not in sys.path]  # once, however many seeds
    from fakes.faults import apply_limits
    from layout_openai import LayoutOpenAI
    from pipeline_fakes import VirtualClock

    from instructforge.pipeline.context import RunContext
    from instructforge.pipeline.explore_grow import enrich_stage, extend_stage
    from instructforge.pipeline.explore_instruct import initial_tree, resolve_domain
    from instructforge.pipeline.filters import get_rules
    from instructforge.pipeline.protocols import Completion, FinishReason
    from instructforge.pipeline.recipe import load_recipe
    from instructforge.pipeline.state import RunState
    from instructforge.pipeline.stats import StageStats

    responder = LayoutOpenAI()._respond
    jitter = random.Random(7)
    spans: list[tuple[float, float]] = []

    class Model:
        def __init__(self) -> None:
            self.slots = asyncio.Semaphore(args.concurrency)
            self.cpu = asyncio.Lock()

        async def generate(self, request):
            loop = asyncio.get_running_loop()
            async with self.slots:
                start = loop.time()
                await asyncio.sleep(args.latency_s * (1 + args.latency_jitter * (2 * jitter.random() - 1)))
                spans.append((start, loop.time()))
            if args.bound_cpu_ms:  # one core, shared by every call: the answers queue for it
                async with self.cpu:
                    await asyncio.sleep(args.bound_cpu_ms / 1000)
            s = request.sampling
            text, finish = apply_limits(responder(request.prompt, {"seed": s.seed}, 0), s.max_tokens, list(s.stop))
            return Completion((text,), (FinishReason(finish),))

    async def stages() -> dict:
        work = Path(tempfile.mkdtemp(prefix="pipeline-bound-"))
        (work / "recipe.yaml").write_text(recipe_text(args.examples, args.concurrency, seed))
        recipe = load_recipe(work / "recipe.yaml")
        state = RunState.create(work / "run", recipe)
        # The calls the embedded gateway would hold beyond the provider's slots wait on Model's slots
        # (a source tree from before `gateway_backlog` has none).
        try:
            from instructforge.pipeline.session import gateway_backlog
        except ImportError:
            ctx = RunContext.journaled(state, Model(), None)
        else:
            ctx = RunContext.journaled(state, Model(), None, backlog=gateway_backlog(recipe, embedded_gateway=True))
        domain = resolve_domain(recipe)
        rules = get_rules(domain.filter_variant)
        loop = asyncio.get_running_loop()
        extend, enrich = StageStats("extend"), StageStats("enrich")
        t0 = loop.time()
        tree = await extend_stage(ctx, recipe, initial_tree(recipe, domain), domain, rules, extend)
        t1 = loop.time()
        await enrich_stage(ctx, recipe, tree, domain, rules, enrich)
        t2 = loop.time()
        state.close()
        shutil.rmtree(work)
        return {"extend_wall": t1 - t0, "extend_calls": extend.calls, "enrich_wall": t2 - t1,
                "enrich_calls": enrich.calls, "enrich_examples": enrich.outputs,
                "enrich_unused": enrich.notes.get("unused_calls", 0), "enrich_used": enrich.notes.get("answers_used"),
                "timeline": [sum(1 for a, b in spans if a <= t < b) for t in _ticks(t1, t2)]}

    with asyncio.Runner(loop_factory=VirtualClock) as runner:
        return runner.run(stages())


def print_bound_over_seeds(args: argparse.Namespace) -> int:
    """The enrich bound for recipe seeds 1..N: its wall time against the round trips its kept calls
    need at the least (ceil(kept / concurrency)), which no schedule beats; the rest is the schedule's."""
    rate = args.concurrency / args.latency_s
    print(f"orchestration bound over recipe seeds 1..{args.bound_seeds}, with {_bound_cpu(args)} (virtual clock)")
    walls, shares, beyond = [], [], 0
    for seed in range(1, args.bound_seeds + 1):
        b = orchestration_bound(args, seed)
        kept = kept_calls(b)
        least = math.ceil(kept / args.concurrency) * args.latency_s
        share = b["enrich_calls"] / rate / b["enrich_wall"] * 100
        walls.append(b["enrich_wall"])
        shares.append(share)
        # A round trip more ends a latency later; with CPU charged, the last round trip's answers
        # alone come back up to concurrency x bound_cpu_ms later, so half a latency would miscount.
        beyond += b["enrich_wall"] > least + args.latency_s * 0.9
        print(f"  seed {seed:>3}: enrich {b['enrich_calls']:,} calls ({kept:,} kept: at least {least:.1f} s) in "
              f"{b['enrich_wall']:.2f} s -> {share:.1f}% of ideal")
    print(f"  mean {statistics.mean(walls):.3f} s, {statistics.mean(shares):.1f}% of ideal; {beyond} of "
          f"{args.bound_seeds} seeds took a round trip more than their kept calls need")
    return 0


def _bound_cpu(args: argparse.Namespace) -> str:
    return f"{args.bound_cpu_ms:g} ms of one core per call" if args.bound_cpu_ms else "free CPU"


def _ticks(start: float, end: float, step: float = 0.25) -> list[float]:
    ticks, t = [], start
    while t < end:
        ticks.append(t)
        t += step
    return ticks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--latency-s", type=float, default=0.5)
    parser.add_argument("--latency-jitter", type=float, default=0.0,
                        help="each call's latency uniform within +-this fraction of --latency-s (same mean; "
                             "default 0: every call takes exactly --latency-s, answers come back in lockstep)")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--source", type=Path, action="append",
                        help="a source tree (with clients/ and services/) to run instead of this one; "
                             "repeat to compare trees, run interleaved")
    parser.add_argument("--repeat", type=int, default=1, help="runs per source (default 1)")
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep each run's folder (its state, dataset, report, services' log and the fake's "
                             "fake-spans.json) and print where; by default it is deleted once its figures are read")
    parser.add_argument("--recipe-seed", type=int, default=None,
                        help="the recipe's seed (default: the recipe's own, 42); it draws the demonstrations, so "
                             "the prompts, and with them which answers come back bad and which node finishes last")
    parser.add_argument("--bound-cpu-ms", type=float, default=0.0,
                        help="in the orchestration bound, CPU milliseconds every call costs on one shared core "
                             "(default 0: free CPU)")
    parser.add_argument("--bound-only", action="store_true",
                        help="print only the orchestration bound (virtual clock, no processes, seconds to run)")
    parser.add_argument("--bound-seeds", type=int, default=0,
                        help="with --bound-only: the bound for recipe seeds 1..N (each draws other prompts, so other "
                             "answers come back bad), and their mean: a scheduler change judged without noise")
    args = parser.parse_args()

    if args.bound_only and args.bound_seeds:
        return print_bound_over_seeds(args)

    if args.bound_only:
        bound = orchestration_bound(args, args.recipe_seed)
        rate = args.concurrency / args.latency_s
        print(f"orchestration bound      with {_bound_cpu(args)} (virtual clock): extend {bound['extend_wall']:.2f} s "
              f"({bound['extend_calls']} calls), enrich {bound['enrich_calls']:,} calls in {bound['enrich_wall']:.2f} s "
              f"-> {bound['enrich_calls'] / rate / bound['enrich_wall'] * 100:.1f}% of ideal")
        print(f"  calls in flight every 0.25 s: {' '.join(map(str, bound['timeline']))}")
        return 0

    sources = [s.resolve() for s in args.source] if args.source else [None]
    results: dict[str, list[dict]] = {}
    for source in sources:  # in a process of its own: the tree's code is imported there
        env = dict(os.environ)
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(source / "clients"), str(source / "services")])
        flags = [f"--{name.replace('_', '-')}={getattr(args, name)}"
                 for name in ("examples", "latency_s", "latency_jitter", "concurrency", "bound_cpu_ms", "recipe_seed")
                 if getattr(args, name) is not None]
        bound = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--bound-only", *flags], env=env, capture_output=True,
                               text=True, check=True).stdout
        print(f"== {source or ROOT}\n{bound}", end="")
    for _ in range(args.repeat):
        for source in sources:
            r = bench_once(args, source)
            report(r, args)
            results.setdefault(r["source"], []).append(r)
    if len(sources) > 1 or args.repeat > 1:
        print(f"\n== medians over {args.repeat} run(s) each")
        print(f"{'source':<40} {'enrich calls':>12} {'enrich s':>9} {'enrich %':>9} {'run s':>7} {'run %':>6} "
              f"{'w/o start-up %':>15} {'LLM phase %':>12} {'CPU s':>6} {'unused':>7} {'kept %':>7}  "
              f"unused capacity, s: ramp / middle / tail")
        for source, runs in results.items():
            def med(figure, runs=runs):
                return statistics.median(figure(r) for r in runs)

            print(f"{source[-40:]:<40} {med(lambda r: r['enrich_calls']):>12,.0f} "
                  f"{med(lambda r: r['enrich_wall']):>9.2f} {med(lambda r: efficiencies(r, args)['enrich']):>9.1f} "
                  f"{med(lambda r: r['wall']):>7.2f} {med(lambda r: efficiencies(r, args)['run']):>6.1f} "
                  f"{med(lambda r: efficiencies(r, args)['run_after_startup']):>15.1f} "
                  f"{med(lambda r: efficiencies(r, args)['llm_phase']):>12.1f} {med(lambda r: r['cpu']):>6.2f} "
                  f"{med(lambda r: r['enrich_unused']):>7.0f} {med(lambda r: efficiencies(r, args)['enrich_kept']):>7.1f}  "
                  + " / ".join(f"{med(lambda r, p=part: r['enrich_losses'].get(p, 0.0)):.2f}"
                               for part in ("ramp", "middle", "tail")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
