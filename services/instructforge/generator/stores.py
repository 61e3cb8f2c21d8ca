"""Where cached samples and idempotent responses live: memory, SQLite (embedded) or Redis (a cluster).

One small interface: `get_many(keys)` and `put_many(items)`, both batched, because a request with
n samples reads n keys (and maybe an idempotency record) at once.

SQLite: reads run on the event loop thread (a primary-key lookup in a WAL database costs
microseconds, less than a hop to a thread); writes go to one writer thread that commits whatever
has queued up in one transaction (group commit), and a write is acknowledged only once committed,
so an answer the caller has seen survives a crash of the gateway.

Redis: MGET and a pipelined SET (with EX when a TTL is set), under a key prefix, so any number of
gateway replicas share one cache and one idempotency table.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
    def __init__(self, path: Path | str, ttl_s: float | None = None):
        self.path = Path(path)
        self.ttl_s = ttl_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute("PRAGMA synchronous=NORMAL")
            writer.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
                           "created REAL NOT NULL) WITHOUT ROWID")
            self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise FailedPrecondition(f"cannot open the cache database {self.path}: {exc}",
                                     reason="CACHE_UNAVAILABLE") from None
        self._writer = writer
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cache-writer")
        self._lock = threading.Lock()
        self._queue: list[tuple[Sequence[tuple[str, bytes]], asyncio.Future]] = []
        self._flushing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if len(keys) == 1:
            row = self._reader.execute("SELECT value, created FROM entries WHERE key = ?", (keys[0],)).fetchone()
            rows = {keys[0]: row} if row is not None else {}
        else:
            marks = ",".join("?" * len(keys))
            rows = {k: (v, c) for k, v, c in self._reader.execute(
                f"SELECT key, value, created FROM entries WHERE key IN ({marks})", list(keys))}
        oldest = time.time() - self.ttl_s if self.ttl_s is not None else None
        out: list[bytes | None] = []
        for key in keys:
            row = rows.get(key)
            out.append(row[0] if row is not None and (oldest is None or row[1] >= oldest) else None)
        return out

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        done = loop.create_future()
        with self._lock:
            self._queue.append((items, done))
            start = not self._flushing
            self._flushing = True
        if start:
            self._executor.submit(self._flush)
        await done

    def _flush(self) -> None:
        """Writer thread: commit everything queued, in one transaction per round, until the queue is empty."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._flushing = False
                    return
            now = time.time()
            error: Exception | None = None
            try:
                self._writer.execute("BEGIN")
                self._writer.executemany("INSERT OR REPLACE INTO entries (key, value, created) VALUES (?, ?, ?)",
                                         [(k, v, now) for items, _ in batch for k, v in items])
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._writer.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                error = exc
            for _, done in batch:
                self._loop.call_soon_threadsafe(_settle, done, error)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)
        self._executor.shutdown(wait=True)
        self._writer.close()
        self._reader.close()


def _settle(done: asyncio.Future, error: Exception | None) -> None:
    if done.done():
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

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            if len(keys) == 1:
                return [await self.client.get(self.prefix + keys[0])]
            return list(await self.client.mget([self.prefix + k for k in keys]))
        except self._redis_errors as exc:
            raise Unavailable(f"the Redis cache is unreachable: {exc}", reason="CACHE_UNAVAILABLE") from None

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
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
        await self.client.aclose()
