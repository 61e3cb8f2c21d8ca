"""Dedup CPU per batch on Explore-Instruct's per-node filter workload, through gRPC and in-process.

In an Explore-Instruct run the pipeline sends, once a tree node's examples are in, one
``CheckAndInsert`` of that node's ~85 instructions into the run's filter collection: partition scope
(the collection's default), the node's name as every item's partition, threshold 0.7, no
references, lexical only, a request id per call. Each partition is written once. This replays that:
``--nodes`` batches of ``--items`` synthetic near-duplicate-bearing instructions (``dedup_corpus``,
one seed per node), and reports the CPU the service spent per batch (``/proc/<pid>/stat``
utime + stime of the server process; CPU, not wall time, because the machine is shared) and the
in-process CPU of ``CollectionManager.check_and_insert`` (WAL on disk, ``fsync=always``). A SHA-256
of every answer (the serialized responses, deterministically) shows whether verdicts changed.

``--source DIR`` runs the code of another checkout (e.g. a ``git worktree`` of the commit before a
change) for both parts; give several to interleave repetitions across them (same machine load):

    python tools/bench/dedup_explore.py --source /tmp/dd-base --source . --reps 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_TICK = os.sysconf("SC_CLK_TCK")


def workload(nodes: int, items: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Per node: its name and its instructions (near-duplicates inside a node, as enrich makes them)."""
    sys.path.insert(0, str(HERE))
    from dedup_corpus import corpus

    return [(f"node-{seed}-{k}", corpus(items, seed=seed * 100_003 + k, dup_rate=0.3)) for k in range(nodes)]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _env(source: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{source / 'clients'}{os.pathsep}{source / 'services'}"}


def grpc_run(source: Path, nodes: int, items: int, seed: int) -> dict:
    """CPU of `iforge serve dedup` (a subprocess running ``source``) over the node batches."""
    import grpc

    sys.path.insert(0, str(HERE))
    from dedup_bench import _free_port

    from instructforge.dedup.v1 import dedup_pb2 as pb
    from instructforge.dedup.v1 import dedup_pb2_grpc as pb_grpc

    work = workload(nodes, items, seed)
    with tempfile.TemporaryDirectory(prefix="dedup-explore-") as state:
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "instructforge.cli.main", "serve", "dedup", "--port", str(port),
             "--state-dir", state, "--no-metrics-enabled", "--log-level", "WARNING"],
            env=_env(source), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=120)
            stub = pb_grpc.DedupServiceStub(channel)
            name = "run-examples"
            stub.CreateCollection(pb.CreateCollectionRequest(name=name, config=pb.CollectionConfig(
                lexical=pb.LexicalConfig(threshold=0.7, comparison=pb.COMPARISON_GREATER),
                default_scope=pb.SCOPE_PARTITION)), timeout=60)
            requests = [pb.CheckAndInsertRequest(
                collection=name, request_id=f"filter/node-{node}/dedup-0",
                items=[pb.Item(id=f"{node}#{i}", text=t, partition=node) for i, t in enumerate(texts)],
                scope=pb.SCOPE_UNSPECIFIED) for node, texts in work]
            stub.CheckAndInsert(requests[0], timeout=60)  # warm-up (first-call imports), not timed
            digest = hashlib.sha256()
            time.sleep(0.2)
            before = _cpu_seconds(proc.pid)
            for request in requests[1:]:
                reply = stub.CheckAndInsert(request, timeout=60)
                digest.update(reply.SerializeToString(deterministic=True))
            cpu = _cpu_seconds(proc.pid) - before
            channel.close()
        finally:
            proc.terminate()
            proc.wait(60)
    return {"cpu_ms_per_batch": 1000 * cpu / (len(work) - 1), "verdicts": digest.hexdigest()}


def core_run(nodes: int, items: int, seed: int) -> dict:
    """In-process CPU of CollectionManager.check_and_insert (WAL on disk, fsync=always)."""
    from instructforge.dedup.collection import Item
    from instructforge.dedup.config import PARTITION, CollectionConfig, LexicalConfig
    from instructforge.dedup.manager import CollectionManager

    work = workload(nodes, items, seed)
    with tempfile.TemporaryDirectory(prefix="dedup-explore-core-") as state:
        m = CollectionManager(Path(state))
        m.open()
        m.create("run-examples", CollectionConfig(lexical=LexicalConfig(0.7, ">"), default_scope=PARTITION))
        batches = [[Item(t, f"{node}#{i}", node) for i, t in enumerate(texts)] for node, texts in work]
        m.check_and_insert("run-examples", batches[0], None, "warm-up")
        digest = hashlib.sha256()
        cpu = 0.0
        for k, batch in enumerate(batches[1:]):
            started = time.process_time()
            verdicts = m.check_and_insert("run-examples", batch, None, f"filter/{k}")
            cpu += time.process_time() - started
            for v in verdicts:
                b = v.best
                digest.update(repr((v.id, v.kept, v.reason, v.max_rouge_l_f,
                                    None if b is None else (b.id, b.text, b.rouge_l_f, b.entry))).encode())
        m.close()
    return {"cpu_ms_per_batch": 1000 * cpu / (len(work) - 1), "verdicts": digest.hexdigest()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", action="append", type=Path, help="checkout(s) to run (default: this one)")
    p.add_argument("--nodes", type=int, default=157)
    p.add_argument("--items", type=int, default=85)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-grpc", action="store_true")
    p.add_argument("--skip-core", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:  # one part, in a process whose imports come from --source
        run = grpc_run(args.source[0], args.nodes, args.items, args.seed) if args.child == "grpc" \
            else core_run(args.nodes, args.items, args.seed)
        print(json.dumps(run))
        return
    sources = [s.resolve() for s in (args.source or [HERE.parent.parent])]
    parts = [k for k, skip in (("grpc", args.skip_grpc), ("core", args.skip_core)) if not skip]
    results: dict[tuple[str, Path], list[dict]] = {}
    for rep in range(args.reps):
        for part in parts:
            for source in sources:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", part, "--source", str(source), "--nodes", str(args.nodes),
                     "--items", str(args.items), "--seed", str(args.seed)],
                    env=_env(source), capture_output=True, text=True, check=True)
                run = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault((part, source), []).append(run)
                print(f"rep {rep} {part:4} {source}: {run['cpu_ms_per_batch']:.2f} ms CPU per batch, "
                      f"verdicts {run['verdicts'][:16]}", flush=True)
    for (part, source), runs in results.items():
        cpu = [r["cpu_ms_per_batch"] for r in runs]
        hashes = {r["verdicts"] for r in runs}
        print(f"{part:4} {source}: median {statistics.median(cpu):.2f} ms CPU per batch "
              f"(min {min(cpu):.2f}, max {max(cpu):.2f}); verdict hashes {sorted(h[:16] for h in hashes)}")


if __name__ == "__main__":
    main()
