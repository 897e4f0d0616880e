"""Every probe kubepulse can load, one line each. Adding a probe adds one entry here."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubepulse.probes import dns, drops, tcp_conn


@dataclass(frozen=True)
class ProbeSpec:
    name: str  # also the stem of bpf/<name>.bpf.c
    tracepoints: dict[str, str]  # program -> "group:event"
    required: frozenset[str] = field(default_factory=frozenset)


PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec(tcp_conn.NAME, tcp_conn.TRACEPOINTS, frozenset(tcp_conn.REQUIRED)),
    ProbeSpec(dns.NAME, dns.TRACEPOINTS),  # cgroup_skb hooks, no tracepoint (see dns.ATTACH)
    ProbeSpec(drops.NAME, drops.TRACEPOINTS),  # optional for the node: a warning, not a stop
)
