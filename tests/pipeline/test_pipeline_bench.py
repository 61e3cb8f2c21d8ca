"""tools/bench/pipeline_bench.py on a small run: it completes, and its fake provider keeps its promises.

The benchmark's figures are only worth something if its fake answers every call after the latency
and never lets more than `--concurrency` calls in at once (it writes each answer halfway through the
wait, so its own CPU stays off the run's bursts); a change to the harness that broke either would
still print a percentage.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_benchmark_run_keeps_the_latency_and_the_concurrency_limit(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools/bench/pipeline_bench.py"), "--examples", "300", "--latency-s", "0.05",
         "--concurrency", "16", "--repeat", "1", "--keep-runs"],
        check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    text = out.stdout
    kept = int(re.search(r"examples kept\s+([\d,]+)", text).group(1).replace(",", ""))
    assert kept == 300
    peak, limit = map(int, re.search(r"peak (\d+) at once; limit (\d+)", text).groups())
    assert peak == limit == 16
    assert re.search(r"enrich stage\s+[\d,]+ calls in [\d.]+ s = [\d,]+ calls/s -> [\d.]+% of ideal", text)
    # Every call answered after the latency (from its slot, so never sooner than that from arrival).
    folder = Path(re.search(r"\(run folder (.+?)\)", text).group(1)).parent
    try:
        spans = json.loads((folder / "fake-spans.json").read_text())
    finally:
        shutil.rmtree(folder)
    assert spans and min(end - start for start, end in spans) >= 0.05 - 0.002
