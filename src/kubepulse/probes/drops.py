"""The drops probe: every packet the kernel drops, counted in the kernel (bpf/drops.bpf.c).

Hooks: the ``skb:kfree_skb`` tracepoint, with the kernel's drop ``reason``; and
``cgroup_skb/ingress`` on the cgroup v2 root, which counts the SYNs that reach a listener with
a full accept queue: the kernel turns those away without a kfree_skb, so they are recorded
under the reason ``TCP_LISTEN_OVERFLOW`` by the probe itself.
The kernel keeps one counter per (netns, reason, ethertype, IP protocol, addresses, ports) in
the ``kp_drops`` LRU hash: one map update per dropped packet, no ring record, so a drop storm
costs user space nothing more than a larger snapshot.

Interface (what the agent loop calls)::

    probe = DropProbe()
    took_s = probe.start()
    probe.attach_status              # {"skb:kfree_skb": True, "cgroup_skb/ingress:listen": True}
    snap = probe.snapshot()          # numpy array of SNAPSHOT_DTYPE, cumulative counts
    probe.reason_names()             # {2: "NOT_SPECIFIED", 12: "NETFILTER_DROP", ...}
    classify("NETFILTER_DROP")       # "policy" | "listen_overflow" | "other"
    probe.counters()                 # {"drops": .., "new_keys": .., "no_header": ..,
                                     #  "listen_full": ..}
    probe.stop(); probe.close()

``snapshot()`` fields (``SNAPSHOT_DTYPE``): the key (``netns_ino`` u4, ``reason`` u4,
``saddr``/``daddr`` u1[16], ``sport``/``dport`` u2, ``ethertype`` u2, ``family`` u1,
``protocol`` u1) then the value (``packets``, ``bytes``, ``first_ns``, ``last_ns``, u8).
Counts are cumulative since the key entered the map; the caller diffs successive snapshots
by key. A key evicted by the LRU (more than ``max_keys`` distinct keys) comes back from
zero: a negative difference means "evicted", not "fewer drops".

Reason names come from the running kernel's ``enum skb_drop_reason`` in
/sys/kernel/btf/vmlinux, never from a copied list. ``wait(timeout)`` only sleeps: this probe
has no stream to wait on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from kubepulse.errors import KernelError
from kubepulse.kernel.libbpf import Btf, cgroup2_mount, possible_cpus
from kubepulse.kernel.objects import object_path
from kubepulse.probes.base import Probe
from kubepulse.probes.dns import enum_names, open_checked, read_percpu_counters

NAME = "drops"
log = logging.getLogger(__name__)

KEY_DTYPE = np.dtype([
    ("netns_ino", "<u4"), ("reason", "<u4"), ("saddr", "u1", (16,)), ("daddr", "u1", (16,)),
    ("sport", "<u2"), ("dport", "<u2"), ("ethertype", "<u2"), ("family", "u1"),
    ("protocol", "u1"),
])
VALUE_DTYPE = np.dtype([
    ("packets", "<u8"), ("bytes", "<u8"), ("first_ns", "<u8"), ("last_ns", "<u8"),
])
MIRRORS = {"kp_drop_key": KEY_DTYPE, "kp_drop_value": VALUE_DTYPE}
SNAPSHOT_DTYPE = np.dtype([(n, KEY_DTYPE.fields[n][0]) for n in KEY_DTYPE.names or ()]  # type: ignore[index]
                          + [(n, VALUE_DTYPE.fields[n][0]) for n in VALUE_DTYPE.names or ()])  # type: ignore[index]

TRACEPOINTS = {"kp_drop": "skb:kfree_skb"}
CGROUP_PROGRAMS = {"kp_listen_full": "cgroup_skb/ingress:listen"}  # on the cgroup v2 root
REQUIRED = {"kp_drop"}

DropClass = Literal["policy", "listen_overflow", "other"]

# Classes of the kernel's reason names (without SKB_DROP_REASON_). Names, not numbers: the
# numbers move between kernels, the names are what the kernel's BTF gives us.
POLICY_REASONS = frozenset({
    "NETFILTER_DROP",     # nftables/iptables verdict: kube-proxy, NetworkPolicy (Calico, ...)
    "TC_INGRESS",         # a tc/BPF classifier returned TC_ACT_SHOT (Cilium policy, ...)
    "TC_EGRESS",
    "BPF_CGROUP_EGRESS",  # a cgroup_skb program said no
    "BPF_CGROUP_INGRESS",
    "SOCKET_FILTER",      # a socket filter (SO_ATTACH_FILTER/BPF) dropped it
    "XFRM_POLICY",        # IPsec policy
    "SECURITY_HOOK",      # an LSM refused it
})
# The accept queue was full: a SYN (counted by kp_listen_full, since the kernel consumes it
# without a kfree_skb) or the handshake's last ACK (kfree_skb). SOCKET_BACKLOG is not included:
# it is the per-socket backlog while the owner holds the socket lock, on any socket, not a
# listen queue.
LISTEN_OVERFLOW_REASONS = frozenset({"TCP_LISTEN_OVERFLOW", "TCP_REQQFULLDROP"})


def classify(reason_name: str) -> DropClass:
    """policy (a filter's verdict), listen_overflow (accept queue full) or other."""
    name = reason_name.removeprefix("SKB_DROP_REASON_")
    if name in POLICY_REASONS:
        return "policy"
    if name in LISTEN_OVERFLOW_REASONS:
        return "listen_overflow"
    return "other"


def kernel_reason_names(btf: Btf | None = None) -> dict[int, str]:
    """{value: name} of the running kernel's enum skb_drop_reason, prefix removed."""
    own = btf is None
    btf = btf or Btf.from_vmlinux()
    try:
        return {v: k.removeprefix("SKB_DROP_REASON_")
                for k, v in btf.enum("skb_drop_reason").items()}
    finally:
        if own:
            btf.close()


@dataclass
class DropConfig:
    max_keys: int = 16384  # distinct (netns, reason, tuple) keys kept in the kernel (LRU)
    cgroup: str | None = None  # cgroup v2 directory for kp_listen_full; default: the root


class DropProbe(Probe):
    """Open, load and attach drops; then take snapshots of the in-kernel counters."""

    name = NAME
    hooks = TRACEPOINTS | CGROUP_PROGRAMS

    def __init__(self, config: DropConfig | None = None, path: Path | None = None) -> None:
        self.config = config or DropConfig()
        self.obj, btf = open_checked(path or object_path(NAME), MIRRORS)
        self._ncpu = possible_cpus()
        try:
            self.counter_names = enum_names(btf, "kp_drop_counter", "KP_DROP_COUNTER_")
            self.obj.map("kp_drops").set_max_entries(self.config.max_keys)
        except Exception:
            self.obj.close()
            raise
        self._reasons: dict[int, str] | None = None

    def start(self) -> float:
        t0 = time.monotonic()
        try:
            self.obj.load()
            for p in self.obj.programs():
                if p.name not in CGROUP_PROGRAMS:
                    self.obj.attach(p)
        except Exception:
            self.close()
            raise
        # Optional: without it, listen overflows show only through the handshake ACKs that
        # kfree_skb sees. A failure is recorded in attach_status, never fatal.
        for p in self.obj.programs():
            if p.name in CGROUP_PROGRAMS:
                try:
                    self.obj.attach_cgroup(p, self.config.cgroup or cgroup2_mount())
                except KernelError as exc:
                    self.obj.attach_errors[p.name] = str(exc)
                    log.warning("%s", exc)
        return time.monotonic() - t0

    def wait(self, timeout_s: float | None = None) -> bool:
        """Nothing streams from this probe: sleep, so the agent loop can treat it alike."""
        time.sleep(timeout_s or 0.0)
        return False

    def snapshot(self) -> np.ndarray:
        """Every key in the kernel map with its cumulative counts (SNAPSHOT_DTYPE)."""
        keys, vals, n = self.obj.map("kp_drops").lookup_batch()
        out = np.empty(n, dtype=SNAPSHOT_DTYPE)
        if not n:
            return out
        k = np.frombuffer(keys, dtype=KEY_DTYPE, count=n)
        v = np.frombuffer(vals, dtype=VALUE_DTYPE, count=n)
        for name in KEY_DTYPE.names or ():
            out[name] = k[name]
        for name in VALUE_DTYPE.names or ():
            out[name] = v[name]
        return out

    def reason_names(self) -> dict[int, str]:
        """The running kernel's enum skb_drop_reason (from its BTF), read once."""
        if self._reasons is None:
            self._reasons = kernel_reason_names()
        return self._reasons

    def reason_name(self, code: int) -> str:
        names = self.reason_names()
        if code in names:
            return names[code]
        # Since 6.4 the high 16 bits name a subsystem with its own enum (mac80211, ovs, ...).
        return f"SUBSYS{code >> 16}_{code & 0xFFFF}" if code >> 16 else f"REASON{code}"

    def counters(self) -> dict[str, int]:
        """drops: every kfree_skb hit; new_keys: map inserts; no_header: no IP header;
        listen_full: SYNs that reached a listener whose accept queue was full."""
        return read_percpu_counters(self.obj, "kp_drop_counters", self.counter_names,
                                    self._ncpu)
