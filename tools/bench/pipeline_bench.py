"""Orchestration efficiency of `iforge run`: how close an Explore-Instruct run gets to the ideal.

A fake OpenAI-compatible model (its own process) answers every call after `--latency-s` and lets
`--concurrency` calls in at once; beyond that a call waits for a slot, as a rate-limited provider
would make it. The run (`iforge run`, its own process, with the gateway and dedup services
embedded in a child process of it) explores a domain and enriches every node until it has
`--examples` examples.

The ideal is what the latency and the concurrency allow: `concurrency / latency` calls per second.
Explore-Instruct's tree has levels that must be explored one after the other (a node is extended
only once it exists), so the run-wide ideal adds one latency per tree level to the enrich calls'
ideal. Printed: calls, each stage's wall time, the enrich stage's and the whole run's throughput
against their ideals (the run with and without its start-up: Python, imports, the embedded
services), the CPU time and peak memory of the run's processes (sampled from /proc; the fake's
CPU too, since it shares the machine), and calls in flight at the fake every 0.25 s.

    python tools/bench/pipeline_bench.py                      # 10k examples, 500 ms, 256 at once
    python tools/bench/pipeline_bench.py --examples 2000      # a quicker look
    python tools/bench/pipeline_bench.py --source /tmp/base --source . --repeat 2
                                         # source trees side by side, interleaved (noisy machines)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

FAKE = r'''
import asyncio, resource, sys
sys.path[:0] = [sys.argv[1] + "/tests/pipeline", sys.argv[1] + "/tests/generator", sys.argv[1] + "/tests"]
from layout_openai import LayoutOpenAI

class Limited(LayoutOpenAI):
    """Answers after a fixed latency, at most `limit` calls at once (the rest wait for a slot)."""
    def __init__(self, latency, limit):
        super().__init__()
        self.latency, self.slots, self.peak, self.inside = latency, asyncio.Semaphore(limit), 0, 0
        self.spans = []
    def handle(self, request):
        reply = super().handle(request)
        if request.method != "POST":
            return reply
        async def later():
            arrived = asyncio.get_running_loop().time()
            async with self.slots:
                self.inside += 1
                self.peak = max(self.peak, self.inside)
                await asyncio.sleep(self.latency)
                self.inside -= 1
            self.spans.append((arrived, asyncio.get_running_loop().time()))
            return reply
        return later()

async def main():
    fake = Limited(float(sys.argv[2]), int(sys.argv[3]))
    await fake.start()
    print(fake.url, flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{len(fake.log.calls)} {fake.peak} {usage.ru_utime + usage.ru_stime:.3f}", flush=True)
    buckets = []
    if fake.spans:
        t0 = min(a for a, _ in fake.spans)
        end = max(b for _, b in fake.spans)
        t = t0
        while t < end:
            buckets.append(sum(1 for a, b in fake.spans if a <= t < b))
            t += 0.25
    print(" ".join(map(str, buckets)), flush=True)

asyncio.run(main())
'''


def recipe_text(examples: int, concurrency: int) -> str:
    # Two levels of 12 subtasks (1 + 12 + 144 nodes); enrich the leaves to reach `examples` after
    # the near-duplicate filter and the sampler.
    per_leaf = max(20, round(examples * 1.3 / 144 / 10) * 10)
    return f"""recipe: explore_instruct
name: bench-explore
concurrency: {concurrency}
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
    """Samples a process and its descendants from /proc every 0.1 s: CPU seconds and peak RSS of each.

    The embedded services are the descendant whose command line runs `up`. A process's last sample
    is taken up to 0.1 s before it exits, so its CPU is a slight undercount; the bench takes the
    run's total from getrusage and gives the pipeline process what the services did not use.
    """

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.stop = root, threading.Event()
        self.seen: dict[int, dict] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.1)

    def sample(self) -> None:
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
        for pid in tree:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                status = Path(f"/proc/{pid}/status").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
            role = "pipeline" if pid == self.root else ("services" if b"up" in cmdline else "other")
            self.seen[pid] = {"role": role, "cpu": (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
                              "rss_mib": hwm / 1024}

    def by_role(self, role: str) -> tuple[float, float]:
        """CPU seconds and peak RSS (MiB) of the processes in `role`."""
        found = [p for p in self.seen.values() if p["role"] == role]
        return sum(p["cpu"] for p in found), max((p["rss_mib"] for p in found), default=0.0)


def bench_once(args: argparse.Namespace, source: Path | None) -> dict:
    """One run of the fake and `iforge run` (from `source`'s code when given); its figures."""
    fake = subprocess.Popen([sys.executable, "-c", FAKE, str(ROOT), str(args.latency_s), str(args.concurrency)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = fake.stdout.readline().strip()
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    (work / "recipe.yaml").write_text(recipe_text(args.examples, args.concurrency))
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
    watch = ProcessWatch(run.pid)
    watch.start()
    out, _ = run.communicate()
    wall = time.perf_counter() - started
    watch.stop.set()
    watch.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    fake.stdin.write("done\n")
    fake.stdin.flush()
    calls, peak, fake_cpu = fake.stdout.readline().split()
    timeline = fake.stdout.readline().strip()
    fake.wait(10)
    if run.returncode != 0:
        raise SystemExit(f"iforge run failed ({run.returncode}):\n{out[-3000:]}")
    summary = json.loads((work / "run" / "summary.json").read_text())
    with sqlite3.connect(work / "run" / "state.sqlite") as db:
        first_started, last_finished = db.execute("SELECT MIN(started), MAX(finished) FROM stages").fetchone()
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    services_cpu, services_rss = watch.by_role("services")
    _, pipeline_rss = watch.by_role("pipeline")
    stages = {s["name"]: s for s in summary["stages"]}
    enrich = stages.get("enrich", {})
    return {
        "source": str(source or ROOT), "work": str(work), "examples": summary["examples"],
        "calls": int(calls), "peak": int(peak), "wall": wall, "startup": first_started - launched,
        "after_stages": launched + wall - last_finished, "stages": stages,
        "enrich_calls": enrich.get("calls", 0), "enrich_wall": enrich.get("wall_s", 0.0),
        "cpu": cpu, "services_cpu": services_cpu, "pipeline_cpu": cpu - services_cpu,
        "pipeline_rss": pipeline_rss, "services_rss": services_rss, "fake_cpu": float(fake_cpu),
        "timeline": timeline,
    }


def efficiencies(r: dict, args: argparse.Namespace) -> dict:
    rate = args.concurrency / args.latency_s
    ideal_enrich = r["enrich_calls"] / rate
    levels = 2  # extend runs the root, then the 12 children, one level after the other
    ideal_run = levels * args.latency_s + ideal_enrich
    return {"rate": rate, "ideal_enrich": ideal_enrich, "ideal_run": ideal_run, "levels": levels,
            "enrich": ideal_enrich / r["enrich_wall"] * 100 if r["enrich_wall"] else 0.0,
            "run": ideal_run / r["wall"] * 100, "run_after_startup": ideal_run / (r["wall"] - r["startup"]) * 100}


def report(r: dict, args: argparse.Namespace) -> None:
    e = efficiencies(r, args)
    print(f"== {r['source']}  (run folder {r['work']}/run)")
    print(f"examples kept            {r['examples']:,} (target {args.examples:,})")
    print(f"LLM calls at the fake    {r['calls']:,} (peak {r['peak']} at once; limit {args.concurrency})")
    print(f"ideal throughput         {e['rate']:,.0f} calls/s ({args.concurrency} at once / {args.latency_s} s)")
    print("stages                   " + ", ".join(f"{name} {s['wall_s']:.2f} s" + (f" ({s['calls']} calls)"
                                                   if s.get("calls") else "") for name, s in r["stages"].items()))
    print(f"enrich stage             {r['enrich_calls']:,} calls in {r['enrich_wall']:.2f} s = "
          f"{r['enrich_calls'] / r['enrich_wall'] if r['enrich_wall'] else 0:,.0f} calls/s -> "
          f"{e['enrich']:.1f}% of ideal (target >= 90%)")
    print(f"whole run                {r['wall']:.2f} s wall (ideal {e['ideal_run']:.2f} s with {e['levels']} sequential "
          f"tree levels) -> {e['run']:.1f}% of ideal, start-up included")
    print(f"  without start-up       {r['wall'] - r['startup']:.2f} s -> {e['run_after_startup']:.1f}% of ideal "
          f"(start-up {r['startup']:.2f} s: Python, imports, embedded services ready; "
          f"after the last stage {r['after_stages']:.2f} s: dataset, report, services stopped)")
    print(f"client CPU               {r['cpu']:.2f} s ({r['cpu'] / r['wall'] * 100:.0f}% of one core over the run): "
          f"pipeline {r['pipeline_cpu']:.2f} s, embedded services {r['services_cpu']:.2f} s; "
          f"the fake model {r['fake_cpu']:.2f} s")
    print(f"client peak memory       pipeline {r['pipeline_rss']:,.0f} MiB, embedded services "
          f"{r['services_rss']:,.0f} MiB (RSS)")
    print(f"calls at the fake, every 0.25 s: {r['timeline']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--latency-s", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--source", type=Path, action="append",
                        help="a source tree (with clients/ and services/) to run instead of this one; "
                             "repeat to compare trees, run interleaved")
    parser.add_argument("--repeat", type=int, default=1, help="runs per source (default 1)")
    args = parser.parse_args()

    sources = [s.resolve() for s in args.source] if args.source else [None]
    results: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for source in sources:
            r = bench_once(args, source)
            report(r, args)
            results.setdefault(r["source"], []).append(r)
    if len(sources) > 1 or args.repeat > 1:
        print(f"\n== medians over {args.repeat} run(s) each")
        print(f"{'source':<40} {'enrich calls':>12} {'enrich s':>9} {'enrich %':>9} {'run s':>7} {'run %':>6} "
              f"{'w/o start-up %':>15} {'CPU s':>6}")
        for source, runs in results.items():
            def med(figure, runs=runs):
                return statistics.median(figure(r) for r in runs)

            print(f"{source[-40:]:<40} {med(lambda r: r['enrich_calls']):>12,.0f} "
                  f"{med(lambda r: r['enrich_wall']):>9.2f} {med(lambda r: efficiencies(r, args)['enrich']):>9.1f} "
                  f"{med(lambda r: r['wall']):>7.2f} {med(lambda r: efficiencies(r, args)['run']):>6.1f} "
                  f"{med(lambda r: efficiencies(r, args)['run_after_startup']):>15.1f} {med(lambda r: r['cpu']):>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
