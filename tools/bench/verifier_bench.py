"""Verifier throughput, side by side with the published harness approach, on the same 200 samples.

The samples: the project's 25 problems (``instructforge.verifier.problems``), canonical and broken,
each posed four ways (HumanEval, MBPP with setup, asserts, asserts in reverse order) = 200 short
programs, half of which must pass. Every approach runs all 200; the figures are printed with the
verdict agreement against the known answers.

Approaches, in one run:

- ``published``: what the published harnesses do (re-implemented here, not copied): per sample a
  ``multiprocessing.Manager`` list for the result and a ``multiprocessing.Process`` that makes a
  temporary directory, disables destructive functions, silences stdio and runs the program under
  a 3 s ``setitimer``; the parent joins with a 1 s grace and kills. A thread pool drives the
  samples (Ada-Instruct uses 8 threads, HumanEval's evaluator 4). It runs in a child interpreter
  so that its forking never meets this process's gRPC threads.
- ``core``: the verifier in-process (``Verifier.execute_many``), full isolation.
- ``grpc``: a real verifier server in its own process (``iforge serve verifier``); this process
  streams the 200 requests through ``ExecuteStream``, and also sends them as concurrent unary
  ``Execute`` calls.

Targets (2 cores): the gRPC path ≥ 3x the published approach's throughput and ≥ 50 executions/s.

    python tools/bench/verifier_bench.py                  # all approaches
    python tools/bench/verifier_bench.py --skip grpc      # without the server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for sub in ("services", "clients"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

TARGET_RATIO = 3.0
TARGET_RATE = 50.0


def samples():
    """(published program, core request, should pass) for the 200 samples."""
    from instructforge.verifier.models import AssertTests, ExecuteRequest, MbppTests
    from instructforge.verifier.problems import PROBLEMS

    out = []
    for p in PROBLEMS:
        for broken in (False, True):
            he = p.humaneval(broken).tests
            out.append((he.prompt + he.completion + "\n" + he.test + f"\ncheck({he.entry_point})\n",
                        p.humaneval(broken), not broken))
            mb = p.mbpp(broken).tests
            out.append((mb.code + "\n" + mb.test_setup_code + "\n" + "\n".join(mb.test_list) + "\n",
                        p.mbpp(broken), not broken))
            asserts = p.asserts(broken).tests
            out.append((asserts.code + "\n" + "\n".join(asserts.asserts) + "\n", p.asserts(broken), not broken))
            backwards = tuple(reversed(asserts.asserts))
            out.append((asserts.code + "\n" + "\n".join(backwards) + "\n",
                        ExecuteRequest(AssertTests(asserts.code, backwards)), not broken))
    assert len(out) == 200 and isinstance(out[0][1].tests, type(p.humaneval().tests))
    assert isinstance(out[1][1].tests, MbppTests)
    return out


# --- the published approach -------------------------------------------------------------------

def _published_child(program: str, timeout: float, result) -> None:
    """Runs in the multiprocessing child, as the published harnesses do."""
    import builtins
    import contextlib
    import faulthandler
    import io
    import shutil
    import signal
    import subprocess as sp
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        # "Reliability guard": disable what could destroy the machine (best effort, by design).
        faulthandler.disable()
        builtins.exit = builtins.quit = None
        for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                     "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
                     "fchown", "chmod", "chown", "chroot", "lchown", "getcwd", "chdir"):
            setattr(os, name, None)
        shutil.rmtree = shutil.move = shutil.chown = None
        sp.Popen = None

        def on_alarm(signum, frame):
            raise TimeoutError("timed out")

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                exec(program, {})  # noqa: S102 -- this is the approach being measured
            result.append("passed")
        except TimeoutError:
            result.append("timed out")
        except BaseException as exc:  # noqa: BLE001 -- the published harness reports any failure
            result.append(f"failed: {exc}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _published_check(program: str, timeout: float = 3.0) -> str:
    import multiprocessing

    with multiprocessing.Manager() as manager:
        result = manager.list()
        proc = multiprocessing.Process(target=_published_child, args=(program, timeout, result))
        proc.start()
        proc.join(timeout=timeout + 1)
        if proc.is_alive():
            proc.kill()
            proc.join()
        return result[0] if result else "timed out"


def phase_published(workers: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    work = samples()
    latencies = [0.0] * len(work)

    def one(i: int) -> bool:
        t0 = time.perf_counter()
        verdict = _published_check(work[i][0])
        latencies[i] = time.perf_counter() - t0
        return verdict == "passed"

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passed = list(pool.map(one, range(len(work))))
    elapsed = time.perf_counter() - t0
    agree = sum(p == w[2] for p, w in zip(passed, work, strict=True))
    return {"elapsed": elapsed, "latencies": latencies, "agree": agree, "n": len(work)}


def run_published(workers: int) -> dict:
    """In a fresh interpreter: forking must not meet this process's threads."""
    cmd = [sys.executable, __file__, "--phase", "published", "--published-workers", str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the verifier, in-process and through gRPC ---------------------------------------------------

async def phase_core(in_flight: int) -> dict:
    from instructforge.verifier.verifier import Verifier

    work = samples()
    verifier = await Verifier.create()
    try:
        await verifier.execute(work[0][1])  # warm
        latencies = [0.0] * len(work)
        passed = [False] * len(work)
        started = {}

        async def requests():
            for i, (_prog, req, _want) in enumerate(work):
                started[i] = time.perf_counter()
                yield req

        t0 = time.perf_counter()
        async for i, res in verifier.execute_many(requests(), max_in_flight=in_flight):
            latencies[i] = time.perf_counter() - started[i]
            passed[i] = not isinstance(res, Exception) and res.passed
        elapsed = time.perf_counter() - t0
        return {"elapsed": elapsed, "latencies": latencies, "n": len(work), "mode": verifier.plan.mode,
                "layers": list(verifier.plan.active_layers),
                "agree": sum(p == w[2] for p, w in zip(passed, work, strict=True))}
    finally:
        await verifier.close()


def report(name: str, runs: list[dict]) -> float:
    """One line per approach: the median round (machines shared with others are noisy)."""
    rates = sorted(r["n"] / r["elapsed"] for r in runs)
    r = sorted(runs, key=lambda x: x["n"] / x["elapsed"])[len(runs) // 2]
    lat = sorted(r["latencies"])
    p50, p95 = statistics.median(lat) * 1000, lat[int(0.95 * (len(lat) - 1))] * 1000
    spread = f"{rates[0]:.0f}-{rates[-1]:.0f}"
    print(f"{name:<44} {rates[len(rates) // 2]:9.1f} {spread:>11} {p50:9.1f} {p95:9.1f} "
          f"{min(x['agree'] for x in runs):>5}/{r['n']}  {r.get('mode', '')}")
    return rates[len(rates) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase", choices=("published",), help=argparse.SUPPRESS)
    ap.add_argument("--published-workers", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--in-flight", type=int, default=16, help="requests outstanding at once (ours)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the approaches alternate within each")
    ap.add_argument("--skip", nargs="*", default=[], choices=("published", "core", "grpc"))
    args = ap.parse_args()
    if args.phase == "published":
        print(json.dumps(phase_published(args.published_workers[0])))
        return 0

    cores = len(os.sched_getaffinity(0))
    print(f"verifier benchmark: 200 short samples (25 problems x canonical/broken x 4 forms), {cores} CPUs, "
          f"{args.rounds} alternating rounds, load average {os.getloadavg()[0]:.1f} at start")
    runs: dict[str, list[dict]] = {}
    layers: list[str] = []
    if "grpc" not in args.skip:
        sys.path.insert(0, str(Path(__file__).parent))
        from verifier_grpc_bench import run_grpc
    for _ in range(args.rounds):
        if "published" not in args.skip:
            for w in args.published_workers:
                runs.setdefault(f"published (Process + Manager, {w} threads)", []).append(run_published(w))
        if "core" not in args.skip:
            core = asyncio.run(phase_core(args.in_flight))
            layers = core["layers"]
            runs.setdefault("verifier core, in-process", []).append(core)
        if "grpc" not in args.skip:
            for label, r in run_grpc(samples(), args.in_flight).items():
                runs.setdefault(label, []).append(r)
    print(f"{'approach (median round)':<44} {'exec/s':>9} {'range':>11} {'p50 ms':>9} {'p95 ms':>9} {'agree':>9}"
          "  isolation")
    best_published, rates = 0.0, {}
    for label, got in runs.items():
        rate = report(label, got)
        if label.startswith("published"):
            best_published = max(best_published, rate)
        else:
            rates[label] = rate
    if layers:
        print(f"  active layers: {', '.join(layers)}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    for label, rate in rates.items():
        ratio = rate / best_published if best_published else float("nan")
        ok = ratio >= TARGET_RATIO and rate >= TARGET_RATE
        print(f"{label}: {rate:.1f} exec/s = {ratio:.1f}x the best published approach "
              f"(targets: >= {TARGET_RATIO:.0f}x and >= {TARGET_RATE:.0f}/s) -> {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
