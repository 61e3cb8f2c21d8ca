"""The collections of one node: create, open, judge, log, snapshot, delete.

Layout under ``data_dir``: ``collections/<name>/`` holds ``config.json``, ``wal.log`` and at most one
``snapshot-<seq>/``. A write (``CheckAndInsert``, ``Insert``) holds the collection's writer lock while
it judges the batch, appends the kept items to the log and applies them, so batches from many
clients interleave whole and in a single order; ``Check`` and ``Search`` take the reader side and run
concurrently. A collection whose files cannot be read is reported as ``DataLoss`` on use; the other
collections and the service stay up.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from instructforge.dedup import wal as wal_mod
from instructforge.dedup.collection import Collection, InsertRecord, Item, Verdict, content_id
from instructforge.dedup.config import CollectionConfig, Limits, validate_name
from instructforge.dedup.embedder import CLIENT, get_embedder
from instructforge.dedup.search import search_collection
from instructforge.dedup.snapshot import latest_snapshot, load_snapshot, snapshot_time, write_snapshot
from instructforge.dedup.supplied import ClientVectors, vectors_for
from instructforge.runtime.errors import (
    AlreadyExists,
    DataLoss,
    InstructForgeError,
    InvalidArgument,
    NotFound,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Durability:
    fsync: str = wal_mod.ALWAYS
    fsync_interval_s: float = 1.0
    snapshot_wal_bytes: int = 256 * 1024 * 1024
    snapshot_interval_s: float = 3600.0


@dataclass
class _Handle:
    coll: Collection
    root: Path | None
    wal: wal_mod.WriteAheadLog | None = None
    snapshot_at: float = field(default_factory=time.time)  # last snapshot, or when opened
    snapshot_path: Path | None = None
    created_at: float | None = None
    deleted: bool = False
    snapshot_lock: threading.Lock = field(default_factory=threading.Lock)
    verdicts: Counter = field(default_factory=Counter)


class CollectionManager:
    def __init__(
        self,
        data_dir: Path | None,
        limits: Limits | None = None,
        durability: Durability | None = None,
        workers: int = 2,
        device: str | None = None,
    ):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.limits = limits or Limits()
        self.durability = durability or Durability()
        self.workers = workers
        self.device = device
        self._handles: dict[str, _Handle] = {}
        self._broken: dict[str, InstructForgeError] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def _collections_dir(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / "collections"

    def open(self) -> None:
        """Load every collection on disk (snapshot, then log replay) and start the maintenance thread."""
        root = self._collections_dir
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                try:
                    self._handles[d.name] = self._load(d)
                except InstructForgeError as exc:
                    log.error("collection %s is unavailable: %s", d.name, exc.message)
                    self._broken[d.name] = exc
            for junk in root.glob(".*"):  # half-created or half-deleted collections
                shutil.rmtree(junk, ignore_errors=True)
        self._thread = threading.Thread(target=self._maintain, name="dedup-maintenance", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for h in self._handles.values():
                with h.coll.lock.write():
                    if h.wal is not None:
                        h.wal.close()

    def _new_collection(self, name: str, config: CollectionConfig) -> Collection:
        """The collection, with its embedder loaded and the vectors' dimension filled in from it."""
        sem = config.semantic
        embedder = None
        if sem is not None and sem.model == CLIENT:
            embedder = ClientVectors(sem.dimension)
        elif sem is not None:
            embedder = get_embedder(sem.model, self.device)
            if sem.dimension not in (0, embedder.dim):
                raise InvalidArgument(f"is {sem.dimension}, but model {sem.model!r} makes vectors of "
                                      f"{embedder.dim}; leave it 0", field="config.semantic.dimension")
            config = replace(config, semantic=replace(sem, dimension=embedder.dim))
        return Collection(name, config, self.limits, embedder, self.workers)

    def _load(self, d: Path) -> _Handle:
        try:
            meta = json.loads((d / "config.json").read_text())
            config = CollectionConfig.from_dict(meta["config"])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DataLoss(f"{d / 'config.json'}: unreadable ({exc})", reason="CONFIG_CORRUPT") from exc
        coll = self._new_collection(d.name, config)
        snap = latest_snapshot(d)
        if snap is not None:
            load_snapshot(snap, coll)
        wal_path = d / "wal.log"
        payloads, end = wal_mod.read_log(wal_path)
        if wal_path.exists() and end < wal_path.stat().st_size:
            wal_mod.truncate(wal_path, end)
        replayed = 0
        for payload in payloads:
            record = wal_mod.decode_record(payload)
            if record.seq <= coll.seq:
                continue  # already in the snapshot
            if record.seq != coll.seq + 1:
                raise DataLoss(f"{wal_path}: record {coll.seq + 1} is missing (found {record.seq})", reason="WAL_GAP")
            coll.apply(record)
            replayed += 1
        log.info("collection %s: %d entries (%d log records replayed)", d.name, len(coll), replayed)
        h = _Handle(coll, d, snapshot_path=snap, created_at=meta.get("created_unix"))
        h.snapshot_at = snapshot_time(snap) or h.snapshot_at
        h.wal = wal_mod.WriteAheadLog(wal_path, self.durability.fsync, self.durability.fsync_interval_s)
        return h

    # ------------------------------------------------------------------ collections
    def create(self, name: str, config: CollectionConfig) -> Collection:
        validate_name(name)
        config.validate(self.limits)
        with self._lock:
            if name in self._handles or name in self._broken:
                raise AlreadyExists(f"collection {name!r} already exists", reason="COLLECTION_EXISTS")
            coll = self._new_collection(name, config)
            config = coll.config  # with the embedding dimension filled in
            refs = [r if r.id else Item(r.text, content_id(r.text), r.partition) for r in config.references]
            record = InsertRecord(refs, reference=True, seq=1)
            if record.items and coll.semantic is not None:  # the references were validated with the config
                record.vectors = vectors_for([r.text for r in refs], [r.embedding for r in config.references],
                                             coll.embedder, lambda k: f"config.references[{k}].embedding")
            h = _Handle(coll, None, created_at=time.time())
            root = self._collections_dir
            if root is not None:
                tmp = root / f".creating-{name}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                meta = {"created_unix": h.created_at, "config": config.to_dict()}
                (tmp / "config.json").write_text(json.dumps(meta, indent=1))
                log_file = wal_mod.WriteAheadLog(tmp / "wal.log", wal_mod.ALWAYS)
                if record.items:
                    log_file.append(wal_mod.encode_record(record))
                log_file.close()
                os.replace(tmp, root / name)
                wal_mod.fsync_dir(root)
                h.root = root / name
                h.wal = wal_mod.WriteAheadLog(h.root / "wal.log", self.durability.fsync, self.durability.fsync_interval_s)
            if record.items:
                coll.apply(record)
            self._handles[name] = h
            return coll

    def handle(self, name: str) -> _Handle:
        return self._handle(name)

    def _handle(self, name: str) -> _Handle:
        with self._lock:
            h = self._handles.get(name)
            if h is None:
                broken = self._broken.get(name)
                if broken is not None:
                    raise broken
                raise NotFound(f"collection {name!r} does not exist", reason="COLLECTION_NOT_FOUND")
            return h

    def get(self, name: str) -> Collection:
        return self._handle(name).coll

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._handles)

    def delete(self, name: str) -> None:
        h = self._handle(name)
        with h.coll.lock.write():
            with self._lock:
                if self._handles.get(name) is not h:
                    raise NotFound(f"collection {name!r} does not exist", reason="COLLECTION_NOT_FOUND")
                del self._handles[name]
            h.deleted = True
            if h.wal is not None:
                h.wal.close()
            if h.root is not None:
                trash = h.root.parent / f".deleting-{name}-{time.time_ns()}"
                os.replace(h.root, trash)
                shutil.rmtree(trash, ignore_errors=True)

    def _alive(self, h: _Handle, name: str) -> None:
        if h.deleted:
            raise NotFound(f"collection {name!r} was deleted", reason="COLLECTION_NOT_FOUND")

    # ------------------------------------------------------------------ batches
    def check_and_insert(
        self, name: str, items: list[Item], scope: str | None = None, request_id: str = ""
    ) -> list[Verdict]:
        """Judge an ordered batch and insert what is kept; a repeated ``request_id`` gets the first answer."""
        h = self._handle(name)
        vectors = h.coll.embed_items(items)  # before taking the lock: it needs nothing stored
        with h.coll.lock.write():
            self._alive(h, name)
            if request_id and request_id in h.coll.requests:
                return h.coll.expand(h.coll.requests[request_id])
            verdicts, record = h.coll.judge(items, h.coll.scope_all(scope), writer=True, vectors=vectors)
            if request_id:
                record.request_id, record.results = request_id, h.coll.compact(verdicts)
            self._commit(h, record)
        self._count(h, verdicts)
        return verdicts

    def check(self, name: str, items: list[Item], scope: str | None = None) -> list[Verdict]:
        h = self._handle(name)
        vectors = h.coll.embed_items(items)
        with h.coll.lock.read():
            self._alive(h, name)
            verdicts, _ = h.coll.judge(items, h.coll.scope_all(scope), writer=False, vectors=vectors)
        self._count(h, verdicts, prefix="check_")
        return verdicts

    def insert(self, name: str, items: list[Item], request_id: str = "") -> int:
        """Insert without judging; returns how many were inserted (a repeated request inserts nothing)."""
        h = self._handle(name)
        record = h.coll.plan_insert(items)  # validated and embedded before taking the lock
        with h.coll.lock.write():
            self._alive(h, name)
            if request_id and request_id in h.coll.requests:
                return int(h.coll.requests[request_id][0])
            if request_id:
                record.request_id, record.results = request_id, [len(record.items)]
            self._commit(h, record)
        h.verdicts["inserted"] += len(record.items)
        return len(record.items)

    def search(self, name: str, queries: list[str], k: int, semantic: bool, partition: str | None = None,
               query_embeddings: list | None = None):
        h = self._handle(name)
        with h.coll.lock.read():
            self._alive(h, name)
            return search_collection(h.coll, queries, k, semantic, partition, query_embeddings)

    def _commit(self, h: _Handle, record: InsertRecord) -> None:
        if not record.items and not record.request_id:
            return
        h.coll.check_capacity(len(record.items))
        record.seq = h.coll.seq + 1
        if h.wal is not None:
            h.wal.append(wal_mod.encode_record(record))  # acknowledged only once this returns
        h.coll.apply(record)

    def _count(self, h: _Handle, verdicts: list[Verdict], prefix: str = "") -> None:
        c = h.verdicts
        c[prefix + "items"] += len(verdicts)
        for v in verdicts:
            c[prefix + ("kept" if v.kept else "dropped_" + v.reason)] += 1

    # ------------------------------------------------------------------ durability upkeep
    def snapshot(self, name: str) -> tuple[int, float]:
        """Write a snapshot now; returns (sequence covered, seconds taken)."""
        h = self._handle(name)
        return self._snapshot(h, name)

    def _snapshot(self, h: _Handle, name: str) -> tuple[int, float]:
        started = time.perf_counter()
        with h.snapshot_lock, h.coll.lock.read():  # readers go on; writers wait
            self._alive(h, name)
            if h.root is None:
                return h.coll.seq, 0.0
            h.snapshot_path = write_snapshot(h.root, h.coll)
            h.wal.close()
            wal_mod.truncate(h.root / "wal.log", 0)  # everything in it is now in the snapshot
            h.wal = wal_mod.WriteAheadLog(h.root / "wal.log", self.durability.fsync, self.durability.fsync_interval_s)
            h.snapshot_at = time.time()
            return h.coll.seq, time.perf_counter() - started

    def _maintain(self) -> None:
        d = self.durability
        period = min(1.0, d.fsync_interval_s / 2) if d.fsync == wal_mod.INTERVAL else 1.0
        while not self._stop.wait(period):
            with self._lock:
                handles = list(self._handles.items())
            for name, h in handles:
                try:
                    if h.wal is not None and d.fsync == wal_mod.INTERVAL:
                        h.wal.sync()
                    age = time.time() - h.snapshot_at
                    if h.wal is not None and h.wal.bytes > 0 and (
                        h.wal.bytes >= d.snapshot_wal_bytes or age >= d.snapshot_interval_s
                    ):
                        self._snapshot(h, name)
                except InstructForgeError:
                    pass  # deleted meanwhile
                except Exception:  # keep the upkeep thread alive; the next tick retries
                    log.exception("maintenance of collection %s failed", name)

    # ------------------------------------------------------------------ introspection
    def handles(self) -> list[tuple[str, _Handle]]:
        with self._lock:
            return list(self._handles.items())
