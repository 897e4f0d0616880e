"""The tcp_conn probe: one classified record per TCP connection (bpf/tcp_conn.bpf.c).

Hot path: :meth:`TcpConnProbe.read` returns a numpy structured array straight from the ring
buffer. Slow path: :func:`to_events` turns such an array into :class:`ConnEvent` objects for
display and tests. Enum names (outcomes, kinds, directions) come from the object's BTF.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kubepulse.errors import KernelError
from kubepulse.kernel.libbpf import BpfObject, Btf, possible_cpus
from kubepulse.kernel.objects import object_path
from kubepulse.kernel.ringbuf import RingReader
from kubepulse.model import ConnEvent
from kubepulse.probes.base import Probe

log = logging.getLogger("kubepulse.probes.tcp_conn")

NAME = "tcp_conn"

# Mirror of struct kp_conn_event (bpf/include/kubepulse/events.h), checked against the built
# object's BTF by tests/unit/probes/test_layout.py and again at every load.
EVENT_DTYPE = np.dtype([
    ("ts_ns", "<u8"), ("start_ns", "<u8"), ("connect_latency_ns", "<u8"),
    ("duration_ns", "<u8"), ("cgroup_id", "<u8"), ("bytes_sent", "<u8"),
    ("bytes_received", "<u8"), ("tgid", "<u4"), ("netns_ino", "<u4"),
    ("srtt_established_us", "<u4"), ("srtt_closed_us", "<u4"), ("retransmits", "<u4"),
    ("segs_out", "<u4"), ("segs_in", "<u4"), ("syn_retransmits", "<u2"), ("error", "<u2"),
    ("sport", "<u2"), ("dport", "<u2"), ("family", "u1"), ("kind", "u1"), ("outcome", "u1"),
    ("direction", "u1"), ("state_before", "u1"), ("flags", "u1"), ("pad", "u1", (2,)),
    ("saddr", "u1", (16,)), ("daddr", "u1", (16,)), ("comm", "S16"), ("reserved", "<u4"),
])

# Mirror of struct kp_sock: the live-socket map, read in batches for gauges.
SOCK_DTYPE = np.dtype([
    ("start_ns", "<u8"), ("established_ns", "<u8"), ("cgroup_id", "<u8"), ("tgid", "<u4"),
    ("netns_ino", "<u4"), ("srtt_established_us", "<u4"), ("retransmits", "<u4"),
    ("syn_retransmits", "<u2"), ("sport", "<u2"), ("dport", "<u2"), ("family", "u1"),
    ("direction", "u1"), ("state", "u1"), ("flags", "u1"), ("pad", "u1", (2,)),
    ("saddr", "u1", (16,)), ("daddr", "u1", (16,)), ("comm", "S16"), ("reserved", "<u4"),
])

CONFIG_FORMAT = "<II"  # struct kp_tcp_config: wakeup_bytes, pad

MIRRORS = {"kp_conn_event": EVENT_DTYPE, "kp_sock": SOCK_DTYPE}

# Attach points, for `kubepulse doctor` and the attach status metric.
TRACEPOINTS = {
    "kp_tcp_state": "sock:inet_sock_set_state",
    "kp_tcp_retrans": "tcp:tcp_retransmit_skb",
    "kp_tcp_rst_rx": "tcp:tcp_receive_reset",
    "kp_tcp_rst_tx": "tcp:tcp_send_reset",
    "kp_connect_in": "syscalls:sys_enter_connect",
    "kp_connect_out": "syscalls:sys_exit_connect",
}
# Without these there is no connection record at all; the others only sharpen it.
REQUIRED = {"kp_tcp_state"}

TCP_STATES = ("", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
              "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV")


def check_layout(btf: Btf) -> list[str]:
    """Differences between the numpy mirrors and the object's BTF; empty when they agree."""
    problems = []
    for struct_name, dtype in MIRRORS.items():
        size, fields = btf.struct_fields(struct_name)
        if size != dtype.itemsize:
            problems.append(f"struct {struct_name}: {size} bytes in BTF, "
                            f"{dtype.itemsize} in the Python mirror")
        names = [f.name for f in fields]
        if names != list(dtype.names or ()):
            problems.append(f"struct {struct_name}: fields {names} in BTF, "
                            f"{list(dtype.names or ())} in the Python mirror")
            continue
        for f in fields:
            sub, off = dtype.fields[f.name][:2]  # type: ignore[index]
            if off != f.offset or sub.itemsize != f.size:
                problems.append(f"struct {struct_name}.{f.name}: offset {f.offset} size "
                                f"{f.size} in BTF, offset {off} size {sub.itemsize} in Python")
    return problems


@dataclass(frozen=True)
class Enums:
    """The probe's enums, read from BTF: value -> lower-case name without the prefix."""

    outcome: dict[int, str]
    kind: dict[int, str]
    direction: dict[int, str]
    counter: dict[int, str]
    flag: dict[str, int]

    @classmethod
    def from_btf(cls, btf: Btf) -> Enums:
        def names(enum: str, prefix: str) -> dict[int, str]:
            return {v: k.removeprefix(prefix).lower() for k, v in btf.enum(enum).items()}

        flags = {k.removeprefix("KP_FLAG_").lower(): v for k, v in btf.enum("kp_flag").items()}
        counters = {v: k.removeprefix("KP_COUNTER_").lower()
                    for k, v in btf.enum("kp_counter").items() if k != "KP_COUNTER_MAX"}
        return cls(names("kp_outcome", "KP_OUTCOME_"), names("kp_kind", "KP_KIND_"),
                   names("kp_direction", "KP_DIRECTION_"), counters, flags)

    def outcome_code(self, name: str) -> int:
        for k, v in self.outcome.items():
            if v == name:
                return k
        raise KeyError(name)

    def kind_code(self, name: str) -> int:
        for k, v in self.kind.items():
            if v == name:
                return k
        raise KeyError(name)


@dataclass
class TcpConnConfig:
    ring_bytes: int = 8 * 1024 * 1024  # power of two; ~70k records
    max_sockets: int = 131072  # live sockets tracked in the kernel (LRU)
    wakeup_bytes: int = 256 * 1024  # wake the reader early once this much is queued
    poll_interval_s: float = 0.05  # otherwise the reader looks this often


class TcpConnProbe(Probe):
    """Open, configure, load and attach tcp_conn; then read records, counters and sockets."""

    name = NAME
    hooks = TRACEPOINTS

    def __init__(self, config: TcpConnConfig | None = None, path: Path | None = None) -> None:
        self.config = config or TcpConnConfig()
        self.poll_interval_s = self.config.poll_interval_s
        self.obj = BpfObject(path or object_path(NAME))
        self.reader: RingReader | None = None
        self._ncpu = possible_cpus()
        try:
            btf = self.obj.btf()
            problems = check_layout(btf)
            if problems:
                raise KernelError("the BPF object and this kubepulse disagree on the record "
                                  "layout (" + "; ".join(problems) + "). Reinstall kubepulse "
                                  "so both come from the same build.")
            self.enums = Enums.from_btf(btf)
            c = self.config
            if c.ring_bytes & (c.ring_bytes - 1) or c.ring_bytes < 4096:
                raise KernelError(f"ring_bytes={c.ring_bytes} must be a power of two >= 4096")
            self.obj.map("kp_conn_rb").set_max_entries(c.ring_bytes)
            self.obj.map("kp_socks").set_max_entries(c.max_sockets)
            self.obj.set_rodata("kp_cfg", struct.pack(CONFIG_FORMAT, c.wakeup_bytes, 0))
        except Exception:
            self.obj.close()
            raise
        # Monotonic (kernel) to wall clock, fixed at start.
        self._wall_offset = time.time() - time.monotonic()

    def start(self) -> float:
        """Load and attach; returns the seconds it took."""
        t0 = time.monotonic()
        try:
            self.obj.load()
            self.obj.attach_all(required=REQUIRED)
            rb = self.obj.map("kp_conn_rb")
            self.reader = RingReader(rb.fd, rb.max_entries, EVENT_DTYPE)
        except Exception:
            self.close()
            raise
        return time.monotonic() - t0

    def read(self) -> np.ndarray:
        assert self.reader is not None, "start() first"
        return self.reader.read()

    def counters(self) -> dict[str, int]:
        """Kernel-side counters summed over CPUs (ringbuf_full = records lost in the kernel)."""
        m = self.obj.map("kp_counters")
        vsize = ((m.value_size + 7) & ~7) * self._ncpu
        out = {}
        for idx, name in self.enums.counter.items():
            raw = m.lookup(struct.pack("<I", idx), vsize)
            out[name] = int(np.frombuffer(raw, dtype="<u8").sum()) if raw else 0
        return out

    def live_sockets(self) -> np.ndarray:
        """Every socket the kernel tracks right now (SOCK_DTYPE), via batch lookup."""
        return self.socket_snapshot()[1]

    def socket_snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, sockets): the kernel's socket ids (u64) and their SOCK_DTYPE entries."""
        keys, vals, n = self.obj.map("kp_socks").lookup_batch()
        return (np.frombuffer(keys, dtype="<u8", count=n).copy(),
                np.frombuffer(vals, dtype=SOCK_DTYPE, count=n).copy())

    def wall_time(self, ts_ns: np.ndarray | int) -> Any:
        return np.asarray(ts_ns) / 1e9 + self._wall_offset

def addr_str(raw: np.ndarray | bytes, family: int) -> str:
    b = bytes(raw)
    if family == 4:
        return str(ipaddress.IPv4Address(b[:4]))
    return str(ipaddress.IPv6Address(b[:16]))


def _errname(code: int) -> str:
    return errno_mod.errorcode.get(code, str(code)) if code else ""


def to_events(batch: np.ndarray, enums: Enums, wall_offset: float) -> list[ConnEvent]:
    """Decode records one by one (slow path: display, JSON, tests)."""
    out = []
    tracked_bit = enums.flag.get("tracked", 1)
    for r in batch:
        family = int(r["family"])
        tracked = bool(int(r["flags"]) & tracked_bit)
        start = int(r["start_ns"])
        lat = int(r["connect_latency_ns"])
        state = int(r["state_before"])
        out.append(ConnEvent(
            ts=int(r["ts_ns"]) / 1e9 + wall_offset,
            kind=enums.kind.get(int(r["kind"]), str(int(r["kind"]))),
            outcome=(enums.outcome.get(int(r["outcome"]), "") if int(r["outcome"]) else ""),
            pid=int(r["tgid"]),
            comm=bytes(r["comm"]).split(b"\0", 1)[0].decode("utf-8", "replace"),
            cgroup_id=int(r["cgroup_id"]),
            netns=int(r["netns_ino"]),
            family=family,
            saddr=addr_str(r["saddr"], family),
            sport=int(r["sport"]),
            daddr=addr_str(r["daddr"], family),
            dport=int(r["dport"]),
            direction=enums.direction.get(int(r["direction"]), "unknown"),  # type: ignore[arg-type]
            connect_latency_s=lat / 1e9 if lat else None,
            duration_s=int(r["duration_ns"]) / 1e9 if start else None,
            bytes_sent=int(r["bytes_sent"]),
            bytes_received=int(r["bytes_received"]),
            retransmits=int(r["retransmits"]),
            syn_retransmits=int(r["syn_retransmits"]),
            srtt_established_us=int(r["srtt_established_us"]),
            srtt_closed_us=int(r["srtt_closed_us"]),
            error=_errname(int(r["error"])),
            state_before=TCP_STATES[state] if state < len(TCP_STATES) else str(state),
            tracked=tracked,
        ))
    return out


def outcome_counts(batch: np.ndarray, enums: Enums) -> dict[str, int]:
    """Close records per outcome, vectorised (the agent's hot-path summary)."""
    closes = batch[batch["kind"] != enums.kind_code("syn_retransmit")]
    codes, counts = np.unique(closes["outcome"], return_counts=True)
    return {enums.outcome.get(int(c), str(int(c))): int(n) for c, n in zip(codes, counts)}
