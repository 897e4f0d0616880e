"""A BPF ring-buffer reader that maps the buffer into Python and decodes batches with numpy.

Why not libbpf's ``ring_buffer__poll``: it calls back once per record, which through ctypes
costs ~2 µs per event. Mapping the buffer ourselves and viewing a run of fixed-size records as
one numpy structured array costs ~0.1 µs per event (docs/benchmarks.md).

Layout (kernel/bpf/ringbuf.c, stable since 5.8): page 0 is the consumer position (ours to
write); the next page holds the producer position; the data area follows and is mapped twice
back to back, so a record that wraps is still contiguous. Each record is an 8-byte header
(u32 length with BUSY and DISCARD bits, u32 page offset) and its payload, padded to 8 bytes.
"""

from __future__ import annotations

import mmap
import select
from collections.abc import Callable
from typing import Any

import numpy as np

from kubepulse.errors import KernelError

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8


def _align8(n: int) -> int:
    return (n + 7) & ~7


class RingReader:
    """Reads fixed-size records of ``dtype`` from one BPF ring-buffer map."""

    def __init__(self, map_fd: int, size: int, dtype: np.dtype) -> None:
        if size & (size - 1):
            raise KernelError(f"ring buffer size {size} is not a power of two")
        self.size = size
        self.mask = size - 1
        self.dtype = dtype
        self.rec_size = HDR_SIZE + _align8(dtype.itemsize)
        page = mmap.PAGESIZE
        self._page = page
        try:
            self._cons_map = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                       mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._data_map = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED,
                                       mmap.PROT_READ, offset=page)
        except OSError as exc:
            raise KernelError(f"cannot map the ring buffer into memory: {exc}. Fix: run as "
                              "root, on Linux 5.8 or newer.") from exc
        self._cons = np.frombuffer(self._cons_map, dtype=np.uint64, count=1)
        self._prod = np.frombuffer(self._data_map, dtype=np.uint64, count=1)
        padding = self.rec_size - HDR_SIZE - dtype.itemsize
        fields: list[tuple[Any, ...]] = [("hdr_len", np.uint32), ("hdr_pgoff", np.uint32),
                                             ("rec", dtype)]
        if padding:
            fields.append(("_pad", np.uint8, padding))
        self._frame = np.dtype(fields)
        assert self._frame.itemsize == self.rec_size
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)
        self.records = 0
        self.skipped_discarded = 0
        self.foreign = 0  # records of an unexpected size: counted and skipped

    def pending_bytes(self) -> int:
        return int(self._prod[0]) - int(self._cons[0])

    def wait(self, timeout_s: float) -> bool:
        """Block until the kernel wakes us or the timeout passes. True if data is queued."""
        if self.pending_bytes() > 0:
            return True
        self._epoll.poll(timeout_s)
        return self.pending_bytes() > 0

    def read(self, max_records: int = 1 << 20) -> np.ndarray:
        """Every committed record queued now (up to ``max_records``), as a copy."""
        cons = int(self._cons[0])
        prod = int(self._prod[0])
        if prod <= cons:
            return np.empty(0, dtype=self.dtype)
        n = min((prod - cons) // self.rec_size, max_records)
        off = self._page + (cons & self.mask)
        if n == 0 or (prod - cons) % self.rec_size:
            return self._read_slow(cons, prod, max_records)
        frames = np.frombuffer(self._data_map, dtype=self._frame, count=n, offset=off)
        lens = frames["hdr_len"]
        busy = np.flatnonzero(lens & BUSY_BIT)
        if busy.size:
            n = int(busy[0])
            frames = frames[:n]
            lens = lens[:n]
        if n == 0:
            return np.empty(0, dtype=self.dtype)
        sizes = lens & ~np.uint32(BUSY_BIT | DISCARD_BIT)
        if np.any(sizes != self.dtype.itemsize):
            return self._read_slow(cons, prod, max_records)
        keep = (lens & DISCARD_BIT) == 0
        out = frames["rec"][keep].copy() if not keep.all() else frames["rec"].copy()
        self.skipped_discarded += int(n - keep.sum())
        self._cons[0] = cons + n * self.rec_size
        self.records += len(out)
        return out

    def _read_slow(self, cons: int, prod: int, max_records: int) -> np.ndarray:
        """Record by record: handles discarded or foreign-sized records without losing sync."""
        out: list[np.ndarray] = []
        hdr = np.dtype([("len", np.uint32), ("pgoff", np.uint32)])
        while cons < prod and len(out) < max_records:
            off = self._page + (cons & self.mask)
            h = np.frombuffer(self._data_map, dtype=hdr, count=1, offset=off)[0]
            length = int(h["len"])
            if length & BUSY_BIT:
                break
            size = length & ~(BUSY_BIT | DISCARD_BIT)
            if length & DISCARD_BIT:
                self.skipped_discarded += 1
            elif size == self.dtype.itemsize:
                out.append(np.frombuffer(self._data_map, dtype=self.dtype, count=1,
                                         offset=off + HDR_SIZE).copy())
            else:
                self.foreign += 1
            cons += HDR_SIZE + _align8(size)
        self._cons[0] = cons
        arr = np.concatenate(out) if out else np.empty(0, dtype=self.dtype)
        self.records += len(arr)
        return arr

    def drain(self, handle: Callable[[np.ndarray], None]) -> int:
        n = 0
        while True:
            batch = self.read()
            if batch.size == 0:
                return n
            n += batch.size
            handle(batch)

    def close(self) -> None:
        try:
            self._epoll.close()
        finally:
            # numpy views keep the buffers exported; drop them before closing the maps.
            del self._cons, self._prod
            self._cons_map.close()
            self._data_map.close()
