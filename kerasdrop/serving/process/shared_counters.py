"""Counters keyed by name that every worker process of one server shares: a small hash table in a
memory-mapped file, one count per worker process in each entry, updated under a lock that holds
across processes (flock) and threads.

`kerasdrop serve --workers N` uses one for admission control, so that `--max-inflight` bounds the
requests of all workers together, not of each; a worker that dies leaves its counts in its own
column, which the parent zeroes (`reclaim`) before a replacement takes the column over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import threading

MAX_WORKERS = 64  # columns: worker processes one table serves (`--workers` is checked against it)
_KEY = struct.Struct("<16s")  # a key digest, then the entry's counts
_COUNTS = struct.Struct(f"<{MAX_WORKERS}q")  # a name's count in each worker process, by worker index
_ENTRY_SIZE = _KEY.size + _COUNTS.size
SLOTS = 4096  # distinct keys (models); beyond it `add` returns None and the caller counts alone


class SharedCounters:
    def __init__(self, path: str, *, create: bool = False, worker: int = 0):
        """Opens the table at `path`; the parent process (worker 0) creates it (zeroed) before
        starting workers. `worker`: this process's column, 0 to MAX_WORKERS - 1."""
        if not 0 <= worker < MAX_WORKERS:
            raise ValueError(
                f"Invalid value received for worker. Expected an index from 0 to {MAX_WORKERS - 1}. "
                f"Received: worker={worker}"
            )
        self.worker = worker
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self._fd = os.open(path, flags, 0o600)
        if create:
            os.ftruncate(self._fd, SLOTS * _ENTRY_SIZE)
        self._map = mmap.mmap(self._fd, SLOTS * _ENTRY_SIZE)
        self._threads = threading.Lock()  # flock excludes other processes, not this one's threads
        self._keys: dict[
            str, bytes
        ] = {}  # name -> its digest (slots are never freed, so a digest finds one slot)

    @contextlib.contextmanager
    def _locked(self):
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, key: bytes) -> int | None:
        """The slot holding `key`, claiming an empty one if needed (open addressing, linear probing)."""
        start = int.from_bytes(key[:8], "little") % SLOTS
        for step in range(SLOTS):
            slot = (start + step) % SLOTS
            (stored,) = _KEY.unpack_from(self._map, slot * _ENTRY_SIZE)
            if stored == key:
                return slot
            if stored == bytes(16):
                _KEY.pack_into(self._map, slot * _ENTRY_SIZE, key)
                return slot
        return None

    def _digest(self, name: str) -> bytes:
        key = self._keys.get(name)
        if key is None:
            key = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            if key == bytes(16):
                key = b"\x01" + key[1:]  # the all-zero digest marks an empty slot
            if len(self._keys) < SLOTS:
                self._keys[name] = key
        return key

    def add(self, name: str, delta: int, limit: int | None = None) -> int | None:
        """Adds `delta` to this worker's count of `name` unless that would take the sum over all
        workers past `limit`; returns the sum before. None when the table is full (the caller
        then counts for its process alone)."""
        counts = self._add(name, delta, limit)
        return None if counts is None else sum(counts)

    def columns(self, name: str) -> list[int] | None:
        """`name`'s count in each worker's column, by worker index; None when the table is full."""
        return self._add(name, 0, None)

    def _add(self, name: str, delta: int, limit: int | None) -> list[int] | None:
        """The counts of `name` before adding `delta` to this worker's (if the sum stays within `limit`)."""
        key = self._digest(name)
        with self._locked():
            slot = self._slot(key)
            if slot is None:
                return None
            offset = slot * _ENTRY_SIZE + _KEY.size
            counts = list(_COUNTS.unpack_from(self._map, offset))
            if delta and (limit is None or sum(counts) + delta <= limit):
                struct.pack_into("<q", self._map, offset + 8 * self.worker, counts[self.worker] + delta)
            return counts

    def get(self, name: str) -> int:
        """`name`'s count summed over all workers."""
        return sum(self.columns(name) or [0])

    def reclaim(self, worker: int) -> int:
        """Zeroes `worker`'s column (a worker process that died, before its replacement takes the
        column); returns how many counts it held."""
        freed = 0
        with self._locked():
            for slot in range(SLOTS):
                offset = slot * _ENTRY_SIZE
                if self._map[offset : offset + 16] == bytes(16):
                    continue
                offset += _KEY.size + 8 * worker
                (count,) = struct.unpack_from("<q", self._map, offset)
                if count:
                    freed += count
                    struct.pack_into("<q", self._map, offset, 0)
        return freed

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
