"""Write-ahead log: length- and CRC-framed records, appended before a batch is acknowledged.

Frame: ``b"IFW1"``, payload length (u32), CRC-32 of the payload (u32), payload. A crash can leave the
last frame incomplete or with a bad CRC (a torn write); on open such a tail is detected, cut off and
logged, and everything before it replays. A bad frame *followed by more data* is not a torn write but
corruption, and opening fails with ``DataLoss`` rather than silently skipping acknowledged records.

Every append is written through to the OS before the caller acknowledges, so acknowledged records
survive the process being killed (kill -9) under every policy. ``fsync`` decides what survives the
machine losing power: ``always`` (fsync before each acknowledgement), ``interval`` (at most
``interval_s`` of acknowledged writes at risk), ``never`` (the OS decides).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from instructforge.dedup.collection import InsertRecord, Item
from instructforge.runtime.errors import DataLoss

log = logging.getLogger(__name__)

ALWAYS, INTERVAL, NEVER = "always", "interval", "never"
FSYNC_POLICIES = (ALWAYS, INTERVAL, NEVER)

_MAGIC = b"IFW1"
_FRAME = struct.Struct("<4sII")
_RECORD = struct.Struct("<QBII")  # seq, flags, json length, vector dimension
_REFERENCE = 1


def encode_record(record: InsertRecord) -> bytes:
    doc = {"items": [[i.text, i.id, i.partition] for i in record.items]}
    if record.request_id:
        doc["request_id"], doc["results"] = record.request_id, record.results
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    vectors = b"" if record.vectors is None else np.ascontiguousarray(record.vectors, np.float32).tobytes()
    dim = 0 if record.vectors is None else int(record.vectors.shape[1])
    head = _RECORD.pack(record.seq, _REFERENCE if record.reference else 0, len(body), dim)
    return head + body + vectors


def decode_record(payload: bytes) -> InsertRecord:
    seq, flags, body_len, dim = _RECORD.unpack_from(payload)
    start = _RECORD.size
    doc = json.loads(payload[start : start + body_len])
    items = [Item(text, id_, part) for text, id_, part in doc["items"]]
    vectors = None
    if dim:
        vectors = np.frombuffer(payload, np.float32, offset=start + body_len).reshape(len(items), dim).copy()
    return InsertRecord(
        items, reference=bool(flags & _REFERENCE), vectors=vectors, seq=seq,
        request_id=doc.get("request_id", ""), results=doc.get("results", []),
    )


def read_log(path: Path) -> tuple[list[bytes], int]:
    """All intact payloads and the byte offset where intact data ends."""
    data = path.read_bytes() if path.exists() else b""
    payloads: list[bytes] = []
    pos = 0
    while pos < len(data):
        reason = None
        if len(data) - pos < _FRAME.size:
            reason = "incomplete frame header"
        else:
            magic, length, crc = _FRAME.unpack_from(data, pos)
            end = pos + _FRAME.size + length
            if magic != _MAGIC:
                reason = "bad frame marker"
            elif end > len(data):
                reason = f"frame of {length} bytes runs past the end"
            elif zlib.crc32(data[pos + _FRAME.size : end]) != crc:
                reason = "CRC mismatch"
        if reason is not None:
            later = _next_valid_frame(data, pos + 1)
            if later is not None:
                raise DataLoss(
                    f"{path}: record at byte {pos} is corrupt ({reason}) but an intact record follows at byte "
                    f"{later}; refusing to skip acknowledged data",
                    reason="WAL_CORRUPT",
                )
            log.warning("%s: dropping a torn last record at byte %d (%s, %d bytes)", path, pos, reason, len(data) - pos)
            return payloads, pos
        payloads.append(data[pos + _FRAME.size : end])
        pos = end
    return payloads, pos


def _next_valid_frame(data: bytes, start: int) -> int | None:
    """Offset of the first intact frame at or after ``start`` (a torn tail has none)."""
    pos = data.find(_MAGIC, start)
    while pos >= 0:
        if len(data) - pos >= _FRAME.size:
            _, length, crc = _FRAME.unpack_from(data, pos)
            end = pos + _FRAME.size + length
            if end <= len(data) and zlib.crc32(data[pos + _FRAME.size : end]) == crc:
                return pos
        pos = data.find(_MAGIC, pos + 1)
    return None


class WriteAheadLog:
    """Appends framed payloads to one file; thread-safe (the collection lock already serialises)."""

    def __init__(self, path: Path, fsync: str = ALWAYS, interval_s: float = 1.0):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy must be one of {FSYNC_POLICIES}")
        self.path = path
        self.fsync = fsync
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the log
        self._dirty = False
        self._last_sync = time.monotonic()
        self.bytes = self._file.tell()

    def append(self, payload: bytes) -> None:
        frame = _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            view = memoryview(frame)
            while view:  # unbuffered: write() may be partial; loop until the OS has all of it
                written = self._file.write(view)
                view = view[written:]
            self.bytes += len(frame)
            self._dirty = True
            if self.fsync == ALWAYS or (
                self.fsync == INTERVAL and time.monotonic() - self._last_sync >= self.interval_s
            ):
                self._sync_locked()

    def sync(self) -> None:
        with self._lock:
            if self._dirty:
                self._sync_locked()

    def _sync_locked(self) -> None:
        os.fsync(self._file.fileno())
        self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                if self._dirty and self.fsync != NEVER:
                    self._sync_locked()
                self._file.close()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)
        os.fsync(f.fileno())
