"""Counters keyed by name that every worker process of one server shares: a small hash table in a
memory-mapped file, updated under a lock that holds across processes (flock) and threads.

`kerasdrop serve --workers N` uses one for admission control, so that `--max-inflight` bounds the
requests of all workers together, not of each.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import threading

_ENTRY = struct.Struct("<16sq")  # a key digest and its count
SLOTS = 4096  # distinct keys (models); beyond it `add` returns None and the caller counts alone


class SharedCounters:
    def __init__(self, path: str, *, create: bool = False):
        """Opens the table at `path`; the parent process creates it (zeroed) before starting workers."""
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self._fd = os.open(path, flags, 0o600)
        if create:
            os.ftruncate(self._fd, SLOTS * _ENTRY.size)
        self._map = mmap.mmap(self._fd, SLOTS * _ENTRY.size)
        self._threads = threading.Lock()  # flock excludes other processes, not this one's threads
        self._keys: dict[str, bytes] = {}  # name -> its digest (slots are never freed, so a digest finds one slot)

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
            stored, _ = _ENTRY.unpack_from(self._map, slot * _ENTRY.size)
            if stored == key:
                return slot
            if stored == bytes(16):
                _ENTRY.pack_into(self._map, slot * _ENTRY.size, key, 0)
                return slot
        return None

    def add(self, name: str, delta: int, limit: int | None = None) -> int | None:
        """Adds `delta` to `name`'s count unless that would pass `limit`; returns the count before.
        None when the table is full (the caller then counts for its process alone)."""
        key = self._keys.get(name)
        if key is None:
            key = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            if key == bytes(16):
                key = b"\x01" + key[1:]  # the all-zero digest marks an empty slot
            if len(self._keys) < SLOTS:
                self._keys[name] = key
        with self._locked():
            slot = self._slot(key)
            if slot is None:
                return None
            offset = slot * _ENTRY.size + 16
            (count,) = struct.unpack_from("<q", self._map, offset)
            if limit is None or count + delta <= limit:
                struct.pack_into("<q", self._map, offset, count + delta)
            return count

    def get(self, name: str) -> int:
        return self.add(name, 0) or 0

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
