"""Kill -9 at random moments while a client streams inserts: every acknowledged item survives,
nothing unacknowledged is half-present, and retrying the lost call (same request id) completes it."""

from __future__ import annotations

import random
import threading
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iforge_process import IforgeProcess
from instructforge.dedup.v1 import dedup_pb2 as pb
from instructforge.dedup.v1 import dedup_pb2_grpc as pb_grpc

BATCH = 25


def start(state_dir, port: int, fsync: str) -> IforgeProcess:
    proc = IforgeProcess("serve", "dedup", "--port", str(port), "--state-dir", str(state_dir),
                         "--no-metrics-enabled", "--fsync", fsync, "--snapshot-wal-mb", "1")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 90
    while True:
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                break
        except grpc.RpcError:
            pass
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("dedup did not start:\n" + "\n".join(proc.stderr[-30:]))
        time.sleep(0.1)
    channel.close()
    return proc


def novel(rng: random.Random) -> str:
    """Eight random words: ROUGE-L ~0 against anything else."""
    hexed = uuid.UUID(int=rng.getrandbits(128)).hex
    return "Explain " + " ".join(hexed[k : k + 4] for k in range(0, 32, 4))


def novel_batch(rng: random.Random, acked: list[str]) -> list[str]:
    """Novel instructions plus two repeats of acknowledged ones (which must be dropped)."""
    return [novel(rng) for _ in range(BATCH)] + [rng.choice(acked) for _ in range(2) if acked]


DIM = 32  # random directions in 32-d: cosine far below 0.9 between any two of a few thousand
VECTORS = pb.CollectionConfig(semantic=pb.SemanticConfig(threshold=0.9, embedding_model="client", dimension=DIM))


@pytest.mark.slow
@pytest.mark.parametrize("fsync,vectors", [("always", False), ("never", False), ("always", True)],
                         ids=["fsync-always", "fsync-never", "callers-vectors"])
def test_sigkill_at_random_moments(tmp_path, fsync, vectors):
    """With ``vectors`` the collection is a "client" one: each item carries its own embedding, and
    after every restart each acknowledged vector must still be there (found by a stranger's text)."""
    from conftest import free_port

    rng = random.Random(fsync + str(vectors))
    vector_of: dict[str, list[float]] = {}

    def item(text: str, vector: list[float] | None = None) -> pb.Item:
        out = pb.Item(text=text)
        if vectors:
            out.embedding.values.extend(vector or vector_of.setdefault(text, [rng.gauss(0, 1) for _ in range(DIM)]))
        return out

    port = free_port()
    proc = start(tmp_path, port, fsync)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.DedupServiceStub(channel)
    stub.CreateCollection(pb.CreateCollectionRequest(name="stream", config=VECTORS if vectors else None))
    acked: list[str] = []  # texts the service acknowledged as kept
    kills = 0
    while kills < 4:
        killer = threading.Timer(rng.uniform(0.3, 1.5), proc.proc.kill)  # SIGKILL, mid-stream
        killer.start()
        lost = None
        while lost is None:
            items = [item(t) for t in novel_batch(rng, acked)]
            request = pb.CheckAndInsertRequest(collection="stream", items=items, request_id=uuid.uuid4().hex)
            try:
                reply = stub.CheckAndInsert(request, timeout=30)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                lost = request
                break
            assert [r.verdict for r in reply.results] == [pb.VERDICT_KEPT] * BATCH + [pb.VERDICT_DROPPED] * (
                len(items) - BATCH)
            acked += [i.text for i in items[:BATCH]]
        killer.join()
        proc.proc.wait(30)
        kills += 1
        proc = start(tmp_path, port, fsync)
        # every acknowledged item is present
        present = stub.Check(pb.CheckRequest(collection="stream", items=[item(t) for t in acked]))
        assert all(r.drop_reason == pb.DROP_REASON_EXACT_DUPLICATE for r in present.results)
        if vectors:  # and so is its vector: new texts carrying the acknowledged vectors are near-duplicates
            strangers = [item(novel(rng), vector_of[t]) for t in acked]
            found = stub.Check(pb.CheckRequest(collection="stream", items=strangers))
            assert all(r.drop_reason == pb.DROP_REASON_SEMANTIC for r in found.results)
            assert [r.best_match.text for r in found.results] == acked
        # the lost call is all there or not there at all
        probe = stub.Check(pb.CheckRequest(collection="stream", items=lost.items[:BATCH]))
        applied = {r.verdict for r in probe.results}
        assert len(applied) == 1, "a batch was half applied"
        count = stub.GetCollection(pb.GetCollectionRequest(name="stream")).collection.entry_count
        assert count == len(acked) + (BATCH if applied == {pb.VERDICT_DROPPED} else 0)
        # retrying with the same request id completes it exactly once
        retry = stub.CheckAndInsert(lost, timeout=30)
        assert [r.verdict for r in retry.results[:BATCH]] == [pb.VERDICT_KEPT] * BATCH
        acked += [i.text for i in lost.items[:BATCH]]
        assert stub.GetCollection(pb.GetCollectionRequest(name="stream")).collection.entry_count == len(acked)
    channel.close()
    assert proc.terminate() == 0
