"""Dedup benchmark: sequential ROUGE-L novelty filtering, the published method next to the service.

Keep-if-novel at threshold 0.7 (drop when F > 0.7 against anything kept so far) over N instructions
of a synthetic corpus with near-duplicates (``dedup_corpus.py``, deterministic by seed):

* published: rouge-score 0.1.2, texts tokenized once, ``_score_lcs`` against every kept text (the
  Alpaca / Self-Instruct / Explore-Instruct loop without its process pool). Run on the first
  ``--sample`` items; extrapolated quadratically to N (``t_sample * (N / sample)^2``) and, tighter,
  from the exact number of pairs that loop would score at N (sum of kept-so-far, known from the
  service's decisions) divided by the pairs per second measured on the sample.
* service: ``iforge serve dedup`` in a subprocess (fsync always), the client sending ordered
  ``CheckAndInsert`` batches over gRPC; wall time from the first request to the last answer.
  ``--in-process`` also times the core without gRPC.

Decisions are compared on the sample: they must be identical. A semantic part times one 1k-query
batch against a partition of ``--vectors`` vectors (IVF, as the service switches to past
``exact_max``), its recall against exact search, and the embedding model on 1k texts.

    python tools/bench/dedup_bench.py                       # 10k, 50k, 100k + semantic 1M
    python tools/bench/dedup_bench.py --sizes 10000 --vectors 100000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_corpus import corpus


def published(texts: list[str], threshold: float = 0.7) -> tuple[list[bool], float, int]:
    """The published loop: (decisions, seconds, pairs scored)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    started = time.perf_counter()
    kept_tokens: list[list[str]] = []
    decisions, pairs = [], 0
    for text in texts:
        tokens = scorer._tokenizer.tokenize(text)
        scores = [rouge_scorer._score_lcs(tokens, other).fmeasure for other in kept_tokens]
        pairs += len(scores)
        keep = max(scores, default=0.0) <= threshold
        decisions.append(keep)
        if keep:
            kept_tokens.append(tokens)
    return decisions, time.perf_counter() - started, pairs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`iforge serve dedup` as a subprocess on a free port, state in a temporary folder."""

    def __init__(self, state_dir: str, workers: int):
        self.port = _free_port()
        cmd = [sys.executable, "-m", "instructforge.cli.main", "serve", "dedup", "--port", str(self.port),
               "--state-dir", state_dir, "--no-metrics-enabled", "--fsync", "always", "--log-level", "WARNING",
               "--lexical-workers", str(workers), "--max-message-bytes", str(256 << 20)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}", options=[("grpc.max_receive_message_length", 256 << 20),
                                               ("grpc.max_send_message_length", 256 << 20)])
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
        raise RuntimeError("the dedup service did not start: " + self.proc.stderr.read().decode()[-2000:])

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(60)


def service_grpc(server: Server, name: str, texts: list[str], batch: int) -> tuple[list[bool], float]:
    from instructforge.dedup.v1 import dedup_pb2 as pb
    from instructforge.dedup.v1 import dedup_pb2_grpc as pb_grpc

    stub = pb_grpc.DedupServiceStub(server.channel)
    stub.CreateCollection(pb.CreateCollectionRequest(name=name))
    decisions: list[bool] = []
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        request = pb.CheckAndInsertRequest(
            collection=name, items=[pb.Item(text=t) for t in texts[start : start + batch]],
            request_id=f"{name}-{start}",
        )
        reply = stub.CheckAndInsert(request, timeout=600)
        decisions += [r.verdict == pb.VERDICT_KEPT for r in reply.results]
    return decisions, time.perf_counter() - started


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def service_core(texts: list[str], batch: int, workers: int) -> tuple[list[bool], float, object]:
    from instructforge.dedup.collection import Item
    from instructforge.dedup.config import CollectionConfig
    from instructforge.dedup.manager import CollectionManager

    m = CollectionManager(None, workers=workers)
    m.open()
    m.create("bench", CollectionConfig())
    decisions: list[bool] = []
    rss = _rss()
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        decisions += [v.kept for v in m.check_and_insert("bench", [Item(t) for t in texts[start : start + batch]])]
    elapsed = time.perf_counter() - started
    coll = m.get("bench")
    print(f"  core, N={len(texts)}: {elapsed:.1f} s; {len(coll)} entries; memory {coll.memory_bytes() / len(coll):.0f} "
          f"bytes/entry by the collection's own account, process RSS grew {(_rss() - rss) / len(coll):.0f} "
          f"bytes/entry; {coll.lexical.stats.lcs_pairs} LCS pairs, {coll.lexical.stats.postings_scanned} "
          f"postings scanned")
    m.close()
    return decisions, elapsed, coll


def _pairs_of(decisions: list[bool]) -> int:
    """Pairs the published loop scores: every item against everything kept before it."""
    kept = total = 0
    for keep in decisions:
        total += kept
        kept += keep
    return total


def _fmt_s(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.1f} s"


def lexical(args) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    texts_all = corpus(max(sizes), seed=args.seed, dup_rate=args.dup_rate, edge_rate=0.01)
    print(f"corpus: {max(sizes)} synthetic instructions, seed {args.seed}, dup_rate {args.dup_rate}; "
          f"threshold 0.7 ('>'); cores: {len(os.sched_getaffinity(0))}; batch {args.batch}")
    sample = texts_all[: args.sample]
    pub_decisions, pub_seconds, pub_pairs = published(sample)
    pairs_per_s = pub_pairs / pub_seconds
    print(f"published method on the first {len(sample)}: {pub_seconds:.1f} s, {pub_pairs} pairs, "
          f"{pairs_per_s:,.0f} pairs/s, kept {sum(pub_decisions)}")
    rows = []
    with tempfile.TemporaryDirectory() as state:
        server = Server(state, args.workers)
        try:
            for n in sizes:
                texts = texts_all[:n]
                ours, seconds = service_grpc(server, f"bench-{n}", texts, args.batch)
                identical = ours[: len(sample)] == pub_decisions[:n]
                quad = pub_seconds * (n / len(sample)) ** 2
                by_pairs = _pairs_of(ours) / pairs_per_s
                core = service_core(texts, args.batch, args.workers)[1] if args.in_process else None
                rows.append((n, quad, by_pairs, seconds, core, sum(ours), identical))
        finally:
            server.close()
    print()
    print(f"{'N':>7} | {'published (quadratic)':>21} | {'published (pairs)':>17} | {'service gRPC':>12} | "
          f"{'speed-up':>9} | {'core only':>9} | {'kept':>6} | sample identical")
    for n, quad, by_pairs, seconds, core, kept, identical in rows:
        core_s = f"{core:.1f} s" if core is not None else "-"
        print(f"{n:>7} | {_fmt_s(quad):>21} | {_fmt_s(by_pairs):>17} | {seconds:>10.1f} s | "
              f"{by_pairs / seconds:>8,.0f}x | {core_s:>9} | {kept:>6} | {'yes' if identical else 'NO'}")
    print("targets: 100k in <= 60 s through gRPC, identical decisions, >= 1000x the published method")


def semantic(args) -> None:
    import numpy as np

    from instructforge.dedup.semantic import IndexPolicy, VectorIndex

    n, dim = args.vectors, 384
    rng = np.random.default_rng(args.seed)
    # Clustered unit vectors, like sentence embeddings of a topical corpus.
    centers = rng.standard_normal((4096, dim)).astype(np.float32)
    index = VectorIndex(dim, IndexPolicy(exact_max=min(100_000, n - 1), large_kind=args.large_index))
    started = time.perf_counter()
    chunk = 100_000
    data = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = centers[rng.integers(0, len(centers), m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        data[start : start + m] = x
        index.add(x, np.arange(start, start + m))
    build = time.perf_counter() - started
    picks = rng.integers(0, n, 1000)
    # near-duplicates: cosine ~0.9 to the vector they were made from
    queries = data[picks] + 0.025 * rng.standard_normal((1000, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index.search(queries[:10], 1)  # warm up
    started = time.perf_counter()
    scores, entries = index.search(queries, 1)
    search = time.perf_counter() - started
    best = np.full(len(queries), -np.inf, np.float32)
    exact = np.zeros(len(queries), np.int64)
    for start in range(0, n, chunk):  # exact neighbours, a block of vectors at a time
        sims = queries @ data[start : start + chunk].T
        top = np.argmax(sims, axis=1)
        better = sims[np.arange(len(queries)), top] > best
        best[better], exact[better] = sims[np.arange(len(queries)), top][better], start + top[better]
    recall = float(np.mean(entries[:, 0] == exact))
    agree = float(np.mean((scores[:, 0] > 0.8) == (best > 0.8)))
    shape = (f"nlist {index.index.nlist}, nprobe {index.policy.ivf_nprobe}" if index.kind == "ivf"
             else f"M {index.policy.hnsw_m}, efSearch {index.policy.hnsw_ef_search}")
    print(f"\nsemantic: {n:,} vectors ({dim}-d) in one partition, index {index.kind} ({shape}); "
          f"built in {build:.1f} s; {index.nbytes() / n:.0f} bytes/vector")
    print(f"  1k near-duplicate queries (cosine ~{float(np.median(best)):.2f}): {search * 1000:.0f} ms "
          f"(target <= 1000 ms); recall@1 vs exact {recall:.3f}; drop decisions at cosine > 0.8 "
          f"same as exact search: {agree:.3f}")
    if not args.skip_model:
        from instructforge.dedup.embedder import get_embedder

        model = get_embedder("all-MiniLM-L6-v2")
        texts = corpus(1000, seed=args.seed + 1)
        model.encode(texts[:8])
        started = time.perf_counter()
        model.encode(texts)
        print(f"  embedding 1k texts with all-MiniLM-L6-v2 on CPU: {time.perf_counter() - started:.2f} s "
              "(a GPU node embeds them in well under 0.1 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--sample", type=int, default=1500, help="items the published method runs on")
    parser.add_argument("--batch", type=int, default=2000, help="items per CheckAndInsert call")
    parser.add_argument("--workers", type=int, default=0, help="LCS threads; 0 = all usable CPUs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dup-rate", type=float, default=0.25)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--large-index", choices=("ivf", "hnsw"), default="ivf")
    parser.add_argument("--in-process", action="store_true", help="also time the core without gRPC")
    parser.add_argument("--skip-lexical", action="store_true")
    parser.add_argument("--skip-semantic", action="store_true")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    if not args.skip_lexical:
        lexical(args)
    if not args.skip_semantic:
        semantic(args)


if __name__ == "__main__":
    main()
