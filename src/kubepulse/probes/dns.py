"""The dns probe: one record per DNS query, answered or timed out (bpf/dns.bpf.c).

Hook: ``cgroup_skb`` egress and ingress on the cgroup v2 root (found in /proc/mounts), so
every socket in every network namespace is seen, including pods created after start. The
kernel matches an answer to its query by (client socket cookie, server address and port,
client port, transaction id) and emits one ``kp_dns_event`` (kind ``answer``) with the
latency and rcode.

Timeouts: an unanswered query stays in the kernel's ``kp_dns_pending`` LRU map. :meth:`read`
sweeps that map (at most every ``sweep_interval_s``); entries older than ``timeout_s`` are
deleted and returned as records of kind ``timeout`` (``latency_ns`` 0, ``ts_ns`` the sweep
time). Both the kernel (on an answer) and the sweep claim an entry by deleting it, and only
the one whose delete succeeds reports it, so each query yields exactly one record. A query
evicted from the LRU (more than ``max_pending`` in flight) yields none; its late answer is
counted as ``unmatched``.

Interface (what the agent loop calls)::

    probe = DnsProbe(DnsConfig(timeout_s=5.0))
    took_s = probe.start()          # load and attach; seconds
    probe.attach_status             # {"cgroup_skb/egress": True, "cgroup_skb/ingress": True}
    probe.wait(0.05); batch = probe.read()   # numpy array of EVENT_DTYPE (answers + timeouts)
    probe.counters()                # {"ringbuf_full": .., "queries": .., "malformed": .., ...}
    events = dns_decode(batch, probe.enums, probe.wall_offset)   # slow path: DnsEvent list
    probe.stop(); probe.close()

Record fields (``EVENT_DTYPE``, mirror of ``struct kp_dns_event``): ``ts_ns``,
``query_ts_ns``, ``latency_ns`` (u8), ``cgroup_id``, ``sock_cookie`` (u8), ``netns_ino``,
``tgid`` (u4), ``client_port``, ``server_port``, ``txid``, ``qtype``, ``qclass``,
``name_len`` (u2), ``family``, ``kind``, ``rcode``, ``flags`` (u1), ``answers`` (u2),
``client_addr``, ``server_addr`` (u1[16]), ``comm`` (S16), ``qname`` (u1[256], wire format).
"""

from __future__ import annotations

import functools
import logging
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kubepulse.errors import KernelError
from kubepulse.kernel.libbpf import BpfObject, Btf, Map, cgroup2_mount, possible_cpus
from kubepulse.kernel.objects import object_path
from kubepulse.kernel.ringbuf import RingReader
from kubepulse.probes.base import Probe
from kubepulse.probes.dnsname import qname_text
from kubepulse.probes.tcp_conn import addr_str

log = logging.getLogger("kubepulse.probes.dns")

NAME = "dns"

EVENT_DTYPE = np.dtype([
    ("ts_ns", "<u8"), ("query_ts_ns", "<u8"), ("latency_ns", "<u8"), ("cgroup_id", "<u8"),
    ("sock_cookie", "<u8"), ("netns_ino", "<u4"), ("tgid", "<u4"), ("client_port", "<u2"),
    ("server_port", "<u2"), ("txid", "<u2"), ("qtype", "<u2"), ("qclass", "<u2"),
    ("name_len", "<u2"), ("family", "u1"), ("kind", "u1"), ("rcode", "u1"), ("flags", "u1"),
    ("answers", "<u2"), ("pad", "<u2"), ("client_addr", "u1", (16,)),
    ("server_addr", "u1", (16,)), ("comm", "S16"), ("qname", "u1", (256,)),
    ("reserved", "<u4"),
])

KEY_DTYPE = np.dtype([
    ("sock_cookie", "<u8"), ("server_addr", "u1", (16,)), ("server_port", "<u2"),
    ("client_port", "<u2"), ("txid", "<u2"), ("pad", "<u2"),
])

CONFIG_FORMAT = "<II"  # struct kp_dns_config: wakeup_bytes, pad

MIRRORS = {"kp_dns_event": EVENT_DTYPE, "kp_dns_key": KEY_DTYPE}

# Program -> attach point (a cgroup v2 directory, the root by default).
ATTACH = {"kp_dns_egress": "cgroup_skb/egress", "kp_dns_ingress": "cgroup_skb/ingress"}
REQUIRED = {"kp_dns_egress", "kp_dns_ingress"}  # a query without its answer is no signal
TRACEPOINTS: dict[str, str] = {}  # none: this probe hooks cgroups (see ATTACH)

# RFC 1035 / IANA "DNS RCODEs": the wire protocol's own numbers, not a kernel enum.
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 35: "NAPTR", 64: "SVCB", 65: "HTTPS", 255: "ANY"}


def check_mirrors(btf: Btf, mirrors: dict[str, np.dtype]) -> list[str]:
    """Differences between numpy mirrors and the object's BTF (names, offsets, sizes);
    empty when they agree. Same rules as tcp_conn.check_layout, for any table of mirrors."""
    problems = []
    for struct_name, dtype in mirrors.items():
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


def check_layout(btf: Btf) -> list[str]:
    return check_mirrors(btf, MIRRORS)


def enum_names(btf: Btf, enum: str, prefix: str) -> dict[int, str]:
    """{value: lower-case name without prefix} of an enum in the object's BTF; *_MAX left out."""
    return {v: k.removeprefix(prefix).lower() for k, v in btf.enum(enum).items()
            if not k.endswith("_MAX")}


@dataclass(frozen=True)
class DnsEnums:
    """The probe's enums, read from BTF (value -> name)."""

    kind: dict[int, str]
    counter: dict[int, str]
    flag: dict[str, int]

    @classmethod
    def from_btf(cls, btf: Btf) -> DnsEnums:
        flags = {v: k for k, v in enum_names(btf, "kp_dns_flag", "KP_DNS_FLAG_").items()}
        return cls(enum_names(btf, "kp_dns_kind", "KP_DNS_KIND_"),
                   enum_names(btf, "kp_dns_counter", "KP_DNS_COUNTER_"), flags)

    def kind_code(self, name: str) -> int:
        return next(k for k, v in self.kind.items() if v == name)


def open_checked(path: Path, mirrors: dict[str, np.dtype]) -> tuple[BpfObject, Btf]:
    """Open an object and refuse it if its records drifted from our mirrors."""
    obj = BpfObject(path)
    try:
        btf = obj.btf()
        problems = check_mirrors(btf, mirrors)
        if problems:
            raise KernelError("the BPF object and this kubepulse disagree on the record "
                              "layout (" + "; ".join(problems) + "). Reinstall kubepulse so "
                              "both come from the same build.")
    except Exception:
        obj.close()
        raise
    return obj, btf


def read_percpu_counters(obj: BpfObject, map_name: str, names: dict[int, str],
                         ncpu: int) -> dict[str, int]:
    m = obj.map(map_name)
    vsize = ((m.value_size + 7) & ~7) * ncpu
    out = {}
    for idx, name in names.items():
        raw = m.lookup(struct.pack("<I", idx), vsize)
        out[name] = int(np.frombuffer(raw, dtype="<u8").sum()) if raw else 0
    return out


@dataclass
class DnsConfig:
    timeout_s: float = 5.0  # an unanswered query becomes a timeout record after this
    sweep_interval_s: float = 0.5  # read() sweeps the pending map at most this often
    ring_bytes: int = 4 * 1024 * 1024  # power of two; ~11k records
    max_pending: int = 16384  # queries in flight tracked in the kernel (LRU)
    wakeup_bytes: int = 64 * 1024  # wake the reader early once this much is queued
    poll_interval_s: float = 0.05
    cgroup: str | None = None  # cgroup v2 directory to attach to; default: the root


@dataclass(frozen=True)
class DnsEvent:
    """One DNS query as the client saw it (slow path: display, JSON, tests)."""

    ts: float  # wall clock of the answer, or of the timeout
    kind: str  # answer | timeout
    netns: int
    pid: int
    comm: str
    cgroup_id: int
    family: int
    client: str
    client_port: int
    server: str
    server_port: int
    txid: int
    qname: str
    qtype: str
    rcode: str  # "" for timeouts
    latency_s: float | None  # None for timeouts
    answers: int
    tcp: bool
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DnsProbe(Probe):
    """Open, configure, load and attach dns; then read records (answers and timeouts)."""

    name = NAME
    hooks = ATTACH

    def __init__(self, config: DnsConfig | None = None, path: Path | None = None) -> None:
        self.config = config or DnsConfig()
        c = self.config
        self.poll_interval_s = c.poll_interval_s
        self.obj, btf = open_checked(path or object_path(NAME), MIRRORS)
        self.reader: RingReader | None = None
        self._ncpu = possible_cpus()
        try:
            self.enums = DnsEnums.from_btf(btf)
            if c.ring_bytes & (c.ring_bytes - 1) or c.ring_bytes < 4096:
                raise KernelError(f"dns ring_bytes={c.ring_bytes} must be a power of two "
                                  ">= 4096")
            if c.timeout_s <= 0:
                raise KernelError(f"dns timeout_s={c.timeout_s} must be positive")
            self.obj.map("kp_dns_rb").set_max_entries(c.ring_bytes)
            self.obj.map("kp_dns_pending").set_max_entries(c.max_pending)
            self.obj.set_rodata("kp_cfg", struct.pack(CONFIG_FORMAT, c.wakeup_bytes, 0))
            self.cgroup = Path(c.cgroup) if c.cgroup else cgroup2_mount()
        except Exception:
            self.obj.close()
            raise
        self.timeout_kind = self.enums.kind_code("timeout")  # the `kind` of a timeout record
        self._last_sweep = 0.0
        self.timeouts = 0  # records made by the sweep
        self.pending_evicted = 0  # queries the full pending LRU pushed out (see sweep())
        self.wall_offset = time.time() - time.monotonic()

    def start(self) -> float:
        """Load and attach to the cgroup v2 root; returns the seconds it took."""
        t0 = time.monotonic()
        try:
            self.obj.load()
            for p in self.obj.programs():
                self.obj.attach_cgroup(p, self.cgroup)
            rb = self.obj.map("kp_dns_rb")
            self.reader = RingReader(rb.fd, rb.max_entries, EVENT_DTYPE)
        except Exception:
            self.close()
            raise
        return time.monotonic() - t0

    def read(self) -> np.ndarray:
        """Answers queued by the kernel, then any timeouts the sweep declares now."""
        assert self.reader is not None, "start() first"
        batch = self.reader.read()
        now = time.monotonic()
        if now - self._last_sweep < self.config.sweep_interval_s:
            return batch
        self._last_sweep = now
        expired = self.sweep()
        if not expired.size:
            return batch
        return np.concatenate([batch, expired]) if batch.size else expired

    def sweep(self, now_ns: int | None = None) -> np.ndarray:
        """Claim every pending query older than the deadline; return them as timeouts.

        Also counts the queries the full pending map evicted (an LRU says nothing when it
        does): every query inserted was answered, lost at the ring, swept as a timeout, is
        still pending, or was evicted. Queries are read before the map and answers after it,
        so a race can only make the estimate low, never high; the count keeps its maximum."""
        before = self.counters()
        m = self.obj.map("kp_dns_pending")
        keys, vals, n = m.lookup_batch()
        after = self.counters()
        out = self._claim(m, keys, vals, n, now_ns)
        evicted = (before.get("queries", 0) - after.get("answers", 0)
                   - after.get("ringbuf_full", 0) - self.timeouts - (n - len(out)))
        self.pending_evicted = max(self.pending_evicted, evicted)
        return out

    def _claim(self, m: Map, keys: bytes, vals: bytes, n: int, now_ns: int | None
               ) -> np.ndarray:
        """Delete (claim) the expired entries among the n read; they become timeouts."""
        if not n:
            return np.empty(0, dtype=EVENT_DTYPE)
        pending = np.frombuffer(vals, dtype=EVENT_DTYPE, count=n)
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        deadline = now_ns - int(self.config.timeout_s * 1e9)
        old = np.flatnonzero(pending["query_ts_ns"] < deadline)
        if not old.size:
            return np.empty(0, dtype=EVENT_DTYPE)
        ks = KEY_DTYPE.itemsize
        claimed = [int(i) for i in old if m.delete(keys[int(i) * ks:(int(i) + 1) * ks])]
        out = pending[claimed].copy()
        out["ts_ns"] = now_ns
        out["latency_ns"] = 0
        out["rcode"] = 0
        out["kind"] = self.timeout_kind
        self.timeouts += len(out)
        return out

    def pending(self) -> int:
        """Queries in flight right now (a gauge)."""
        return int(self.obj.map("kp_dns_pending").lookup_batch()[2])

    def counters(self) -> dict[str, int]:
        """Kernel counters summed over CPUs (ringbuf_full = records lost in the kernel,
        malformed = port-53 packets skipped), plus the sweep's ``timeouts`` and
        ``pending_evicted`` (queries lost to a full pending map: no record, but counted)."""
        out = read_percpu_counters(self.obj, "kp_dns_counters", self.enums.counter, self._ncpu)
        out["timeouts"] = self.timeouts
        out["pending_evicted"] = self.pending_evicted
        if self.reader is not None:
            out["foreign"] = self.reader.foreign
        return out

@functools.lru_cache(maxsize=1)
def _installed_enums() -> DnsEnums:
    with Btf.from_elf(object_path(NAME)) as btf:
        return DnsEnums.from_btf(btf)


def dns_decode(batch: np.ndarray, enums: DnsEnums | None = None,
               wall_offset: float | None = None) -> list[DnsEvent]:
    """Decode records one by one (slow path). Names go through the bounded decoder.

    ``enums`` default to those of the installed object; ``wall_offset`` (wall clock minus
    CLOCK_MONOTONIC) to now's. A running probe passes its own (``probe.enums``,
    ``probe.wall_offset``)."""
    enums = enums or _installed_enums()
    if wall_offset is None:
        wall_offset = time.time() - time.monotonic()
    tcp_bit = enums.flag.get("tcp", 1)
    tc_bit = enums.flag.get("truncated", 2)
    out = []
    for r in batch:
        fam = int(r["family"])
        kind = enums.kind.get(int(r["kind"]), str(int(r["kind"])))
        answered = kind == "answer"
        qtype = int(r["qtype"])
        rcode = int(r["rcode"])
        flags = int(r["flags"])
        out.append(DnsEvent(
            ts=int(r["ts_ns"]) / 1e9 + wall_offset,
            kind=kind,
            netns=int(r["netns_ino"]),
            pid=int(r["tgid"]),
            comm=bytes(r["comm"]).split(b"\0", 1)[0].decode("utf-8", "replace"),
            cgroup_id=int(r["cgroup_id"]),
            family=fam,
            client=addr_str(r["client_addr"], fam),
            client_port=int(r["client_port"]),
            server=addr_str(r["server_addr"], fam),
            server_port=int(r["server_port"]),
            txid=int(r["txid"]),
            qname=qname_text(bytes(r["qname"]), int(r["name_len"])),
            qtype=QTYPES.get(qtype, f"TYPE{qtype}"),
            rcode=RCODES.get(rcode, f"RCODE{rcode}") if answered else "",
            latency_s=int(r["latency_ns"]) / 1e9 if answered else None,
            answers=int(r["answers"]),
            tcp=bool(flags & tcp_bit),
            truncated=bool(flags & tc_bit),
        ))
    return out
