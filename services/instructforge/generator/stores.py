"""Where cached samples and idempotent responses live: memory, SQLite (embedded) or Redis (a cluster).

One small interface: `get_many(keys)` and `put_many(items)`, both batched, because a request with
n samples reads n keys (and maybe an idempotency record) at once.

SQLite: one connection, used on the event loop thread. A primary-key lookup costs a few
microseconds; a second thread would cost more in GIL hand-offs than the work itself. Writes queued
during one loop turn are committed in one transaction (group commit, WAL, synchronous=NORMAL: an
append to the log, no fsync), and a write is acknowledged only once committed, so an answer the
caller has seen survives a crash of the gateway. Checkpoints (the fsyncs) run in a thread of their
own, so the loop never waits on the disk. A caller cancelled while its write is queued does not
cancel the write.

Redis: MGET and a pipelined SET (with EX when a TTL is set), under a key prefix, so any number of
gateway replicas share one cache and one idempotency table.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from instructforge.runtime.errors import FailedPrecondition, Unavailable


class CacheStore(Protocol):
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None: ...

    async def close(self) -> None: ...


class NullStore:
    """Caching off: nothing is found, nothing is kept."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [None] * len(keys)

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryStore:
    """A dict, for tests and throwaway gateways."""

    def __init__(self, ttl_s: float | None = None):
        self.ttl_s = ttl_s
        self.data: dict[str, tuple[bytes, float]] = {}

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = time.time()
        out: list[bytes | None] = []
        for key in keys:
            hit = self.data.get(key)
            out.append(hit[0] if hit is not None and (self.ttl_s is None or now - hit[1] < self.ttl_s) else None)
        return out

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        for key, value in items:
            self.data[key] = (value, now)

    async def close(self) -> None:
        return None


class SQLiteStore:
    def __init__(self, path: Path | str, ttl_s: float | None = None, checkpoint_every_s: float = 1.0):
        self.path = Path(path)
        self.ttl_s = ttl_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in a thread of their own, below
            conn.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
                         "created REAL NOT NULL) WITHOUT ROWID")
        except (OSError, sqlite3.Error) as exc:
            raise FailedPrecondition(f"cannot open the cache database {self.path}: {exc}",
                                     reason="CACHE_UNAVAILABLE") from None
        self._conn = conn
        self._pending: list[tuple[Sequence[tuple[str, bytes]], asyncio.Future]] = []
        self._flush_scheduled = False
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, args=(checkpoint_every_s,),
                                              name="cache-checkpoint", daemon=True)
        self._checkpointer.start()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if len(keys) == 1:
            row = self._conn.execute("SELECT value, created FROM entries WHERE key = ?", (keys[0],)).fetchone()
            rows = {keys[0]: row} if row is not None else {}
        else:
            marks = ",".join("?" * len(keys))
            rows = {k: (v, c) for k, v, c in self._conn.execute(
                f"SELECT key, value, created FROM entries WHERE key IN ({marks})", list(keys))}
        oldest = time.time() - self.ttl_s if self.ttl_s is not None else None
        out: list[bytes | None] = []
        for key in keys:
            row = rows.get(key)
            out.append(row[0] if row is not None and (oldest is None or row[1] >= oldest) else None)
        return out

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Queue the items for this loop turn's transaction and wait for its commit."""
        if not items:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._pending.append((items, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        await done

    def _flush(self) -> None:
        """Commit every write queued during this loop turn in one transaction (group commit)."""
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        now = time.time()
        error: Exception | None = None
        try:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO entries (key, value, created) VALUES (?, ?, ?)",
                                   [(k, v, now) for items, _ in batch for k, v in items])
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            error = exc
        for _, done in batch:
            _settle(done, error)

    def _checkpoints(self, every_s: float) -> None:
        """Copy the WAL into the database now and then, off the event loop (PASSIVE: blocks nobody)."""
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            while not self._stop.wait(every_s):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    async def close(self) -> None:
        self._flush()
        self._stop.set()
        await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()


def _settle(done: asyncio.Future, error: Exception | None) -> None:
    if done.done():  # its caller went away; the write happened all the same
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(Unavailable(f"the cache database refused a write: {error}", reason="CACHE_WRITE_FAILED"))


class RedisStore:
    def __init__(self, url: str, ttl_s: float | None = None, prefix: str = "iforge:gen:"):
        import redis.asyncio as redis

        self._redis_errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        self.ttl_ms = int(ttl_s * 1000) if ttl_s is not None else None
        self.prefix = prefix
        self._writes: set[asyncio.Task] = set()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            if len(keys) == 1:
                return [await self.client.get(self.prefix + keys[0])]
            return list(await self.client.mget([self.prefix + k for k in keys]))
        except self._redis_errors as exc:
            raise Unavailable(f"the Redis cache is unreachable: {exc}", reason="CACHE_UNAVAILABLE") from None

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write in a task of its own: a caller cancelled meanwhile does not cut the write short."""
        task = asyncio.ensure_future(self._put(items))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        await asyncio.shield(task)

    async def _put(self, items: Sequence[tuple[str, bytes]]) -> None:
        try:
            if len(items) == 1:
                await self.client.set(self.prefix + items[0][0], items[0][1], px=self.ttl_ms)
                return
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(self.prefix + key, value, px=self.ttl_ms)
                await pipe.execute()
        except self._redis_errors as exc:
            raise Unavailable(f"the Redis cache is unreachable: {exc}", reason="CACHE_UNAVAILABLE") from None

    async def close(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        await self.client.aclose()
