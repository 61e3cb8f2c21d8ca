"""Orchestration efficiency of `iforge run`: how close an Explore-Instruct run gets to the ideal.

A fake OpenAI-compatible model (its own process) answers every call after `--latency-s` and lets
`--concurrency` calls in at once; beyond that a call waits for a slot, as a rate-limited provider
would make it. The run (`iforge run`, its own process, with the gateway and dedup services
embedded) explores a domain and enriches every node until it has `--examples` examples.

The ideal is what the latency and the concurrency allow: `concurrency / latency` calls per second.
Explore-Instruct's tree has levels that must be explored one after the other (a node is extended
only once it exists), so the run-wide ideal adds one latency per tree level to the enrich calls'
ideal. Printed: calls, the enrich stage's and the whole run's throughput against their ideals, and
the client process's CPU time and peak memory.

    python tools/bench/pipeline_bench.py                      # 10k examples, 500 ms, 256 at once
    python tools/bench/pipeline_bench.py --examples 2000      # a quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE = r'''
import asyncio, sys
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
    print(f"{len(fake.log.calls)} {fake.peak}", flush=True)
    if fake.spans:
        t0 = min(a for a, _ in fake.spans)
        end = max(b for _, b in fake.spans)
        buckets = []
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--latency-s", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()

    fake = subprocess.Popen([sys.executable, "-c", FAKE, str(ROOT), str(args.latency_s), str(args.concurrency)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = fake.stdout.readline().strip()
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    (work / "recipe.yaml").write_text(recipe_text(args.examples, args.concurrency))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "IFORGE"))}
    env.update(IFORGE_LLM_BASE_URL=url, IFORGE_LLM_MODEL="gpt-fake", HF_HUB_OFFLINE="1")
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "instructforge.cli.main", "run", str(work / "recipe.yaml"),
                          "--run-dir", str(work / "run")], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    fake.stdin.write("done\n")
    fake.stdin.flush()
    calls, peak = (int(x) for x in fake.stdout.readline().split())
    timeline = fake.stdout.readline().strip()
    fake.wait(10)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        return 1
    summary = json.loads((work / "run" / "summary.json").read_text())
    stages = {s["name"]: s for s in summary["stages"]}
    enrich = stages.get("enrich", {})
    enrich_calls, enrich_wall = enrich.get("calls", 0), enrich.get("wall_s", 0.0)
    rate = args.concurrency / args.latency_s
    ideal_enrich = enrich_calls / rate
    levels = 2  # extend runs the root, then the 12 children, one level after the other
    ideal_run = levels * args.latency_s + ideal_enrich
    # The client's CPU: the `iforge run` process (pipeline, gateway and dedup embedded), not the fake.
    cpu = usage.ru_utime + usage.ru_stime
    print(f"examples kept            {summary['examples']:,} (target {args.examples:,})")
    print(f"LLM calls at the fake    {calls:,} (peak {peak} at once; limit {args.concurrency})")
    print(f"ideal throughput         {rate:,.0f} calls/s ({args.concurrency} at once / {args.latency_s} s)")
    print(f"enrich stage             {enrich_calls:,} calls in {enrich_wall:.2f} s = "
          f"{enrich_calls / enrich_wall if enrich_wall else 0:,.0f} calls/s -> "
          f"{ideal_enrich / enrich_wall * 100 if enrich_wall else 0:.1f}% of ideal (target >= 90%)")
    print(f"whole run                {wall:.2f} s wall (ideal {ideal_run:.2f} s with {levels} sequential tree "
          f"levels) -> {ideal_run / wall * 100:.1f}% of ideal, start-up included")
    print(f"client CPU               {cpu:.2f} s ({cpu / wall * 100:.0f}% of one core over the run)")
    print(f"calls at the fake, every 0.25 s: {timeline}")
    print(f"client peak memory       {usage.ru_maxrss / 1024:,.0f} MiB (largest child process, RSS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
