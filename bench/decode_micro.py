#!/usr/bin/env python3
"""Micro-benchmark of the ring-buffer decode path: numpy bulk vs per-record consumers.

No kernel involved: a buffer laid out exactly like the BPF ring buffer's data area (8-byte
header + struct kp_conn_event, padded to 8) is filled with N synthetic records, then each
consumer decodes all of them and counts outcomes:

  numpy_bulk        what kubepulse does (kernel/ringbuf.py): one structured-array view over the
                    frames, a copy of the records, np.unique over the outcome column
  numpy_per_record  one np.frombuffer per record (RingReader's slow path)
  struct_per_record one struct.unpack_from per record into a tuple (cheapest pure Python)
  ctypes_callback   a C loop (bench/cb_loop.c, libbpf's ring_buffer_sample_fn signature)
                    calling a Python ctypes callback per record, which copies the record into
                    a ctypes.Structure: the "naive consumer" of the issue
  to_events         the display path (probes/tcp_conn.py:to_events), one ConnEvent per record

example:
  .venv/bin/python bench/decode_micro.py --records 200000
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
sys.path.insert(0, str(BENCH.parent / "src"))

from kubepulse.kernel.ringbuf import HDR_SIZE
from kubepulse.probes.tcp_conn import EVENT_DTYPE, Enums, to_events

REC = EVENT_DTYPE.itemsize
FRAME = HDR_SIZE + ((REC + 7) & ~7)
FRAME_DTYPE = np.dtype({"names": ["hdr_len", "hdr_pgoff", "rec"],
                        "formats": ["<u4", "<u4", EVENT_DTYPE],
                        "offsets": [0, 4, 8], "itemsize": FRAME})
OUTCOME_OFF = EVENT_DTYPE.fields["outcome"][1]  # type: ignore[index]
ENUMS = Enums(outcome={1: "established_closed", 2: "refused", 3: "timeout"},
              kind={1: "close", 2: "syn_retransmit", 3: "local_error"},
              direction={1: "outbound", 2: "inbound"}, counter={}, flag={"tracked": 1})


def make_buffer(n: int) -> bytearray:
    frames = np.zeros(n, dtype=FRAME_DTYPE)
    frames["hdr_len"] = REC
    r = frames["rec"]
    rng = np.random.default_rng(1)
    r["ts_ns"] = np.arange(n, dtype=np.uint64) * 1000
    r["kind"] = 1
    r["outcome"] = rng.choice([1, 1, 1, 2, 3], size=n)
    r["family"] = 4
    r["saddr"][:, :4] = (127, 0, 0, 1)
    r["daddr"][:, :4] = (127, 0, 0, 1)
    r["sport"] = rng.integers(32768, 61000, size=n)
    r["dport"] = 8080
    r["comm"] = b"churn"
    return bytearray(frames.tobytes())


def numpy_bulk(buf: bytearray, n: int) -> dict[int, int]:
    frames = np.frombuffer(buf, dtype=FRAME_DTYPE, count=n)
    recs = frames["rec"].copy()
    codes, counts = np.unique(recs["outcome"], return_counts=True)
    return {int(c): int(k) for c, k in zip(codes, counts)}


def numpy_per_record(buf: bytearray, n: int) -> dict[int, int]:
    c: Counter[int] = Counter()
    for i in range(n):
        rec = np.frombuffer(buf, dtype=EVENT_DTYPE, count=1, offset=i * FRAME + HDR_SIZE).copy()
        c[int(rec["outcome"][0])] += 1
    return dict(c)


def struct_per_record(buf: bytearray, n: int) -> dict[int, int]:
    c: Counter[int] = Counter()
    fmt = struct.Struct("<7Q7I4H8B16s16s16sI")
    assert fmt.size == REC
    outcome_idx = 7 + 7 + 4 + 2  # ts..bytes_received, tgid..segs_in, 4 u16s, family, kind
    for i in range(n):
        t = fmt.unpack_from(buf, i * FRAME + HDR_SIZE)
        c[t[outcome_idx]] += 1
    return dict(c)


class _Event(ctypes.Structure):
    _fields_ = [("raw", ctypes.c_uint8 * REC)]


def ctypes_callback(buf: bytearray, n: int) -> dict[int, int]:
    lib = _cb_lib()
    c: Counter[int] = Counter()
    proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

    def handle(ctx: int, data: int, size: int) -> int:
        ev = _Event.from_buffer_copy(ctypes.string_at(data, size))
        c[ev.raw[OUTCOME_OFF]] += 1
        return 0

    cb = proto(handle)
    arr = (ctypes.c_uint8 * len(buf)).from_buffer(buf)
    got = lib.cb_loop(arr, ctypes.c_size_t(n * FRAME), cb, None)
    assert got == n, got
    return dict(c)


def to_events_path(buf: bytearray, n: int) -> dict[int, int]:
    recs = np.frombuffer(buf, dtype=FRAME_DTYPE, count=n)["rec"].copy()
    c: Counter[int] = Counter()
    for e in to_events(recs, ENUMS, 0.0):
        c[{"established_closed": 1, "refused": 2, "timeout": 3}[e.outcome]] += 1
    return dict(c)


_LIB: ctypes.CDLL | None = None


def _cb_lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        OUT.mkdir(exist_ok=True)
        so = OUT / "cb_loop.so"
        src = BENCH / "cb_loop.c"
        if not so.exists() or so.stat().st_mtime < src.stat().st_mtime:
            subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o",
                            str(so), str(src)], check=True)
        _LIB = ctypes.CDLL(str(so))
        _LIB.cb_loop.restype = ctypes.c_long
    return _LIB


CONSUMERS: dict[str, Callable[[bytearray, int], dict[int, int]]] = {
    "numpy_bulk": numpy_bulk,
    "numpy_per_record": numpy_per_record,
    "struct_per_record": struct_per_record,
    "ctypes_callback": ctypes_callback,
    "to_events": to_events_path,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=0,
                   help="records per decode call (default: all at once)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    n = args.records
    buf = make_buffer(n)
    expected = numpy_bulk(buf, n)
    results: dict[str, Any] = {}
    for name, fn in CONSUMERS.items():
        reps = 1 if name in ("to_events", "numpy_per_record") else args.repeat
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            got = fn(buf, n)
            times.append(time.perf_counter() - t0)
            assert got == expected, (name, got, expected)
        ns = statistics.median(times) / n * 1e9
        results[name] = {"ns_per_record": round(ns, 1),
                         "records_per_s": round(n / statistics.median(times))}
    args.out.mkdir(exist_ok=True)
    (args.out / "decode_micro.json").write_text(json.dumps(
        {"records": n, "record_bytes": REC, "frame_bytes": FRAME, "results": results},
        indent=1) + "\n")
    base = results["numpy_bulk"]["ns_per_record"]
    lines = [(f"{n:,} records of {REC} bytes ({FRAME}-byte frames), median of "
              f"{args.repeat} (1 for the slowest two)"), "",
             "| consumer | ns per record | records/s | vs numpy_bulk |", "|---|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['ns_per_record']:,} | {r['records_per_s']:,} | "
                     f"{r['ns_per_record'] / base:,.0f}x |")
    md = "\n".join(lines) + "\n"
    (args.out / "decode_micro.md").write_text(md)
    print(md)
    from kubepulse.results import command_line, write_result

    data = {"records": n, "record_bytes": REC, "frame_bytes": FRAME, "repeat": args.repeat,
            "results": results}
    print(f"wrote {write_result('decode_micro', data, command_line([sys.executable, *sys.argv]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
