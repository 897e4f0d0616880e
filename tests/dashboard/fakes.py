"""A fake agent for the dashboard: what ``on_tick`` sees, raw records included, no kernel.

Its raw records are real ``kp_conn_event`` rows (the probe's numpy dtype) decoded by the real
``to_events``, so the events table is fed the way the agent feeds it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubepulse.model import (
    Alert,
    DnsSample,
    EdgeKey,
    EdgeSample,
    Identity,
    LatencyStat,
)
from kubepulse.probes.tcp_conn import EVENT_DTYPE, Enums
from tests.export.fakes import FakeAgent, FakeStats

ENUMS = Enums(
    outcome={0: "", 1: "established_closed", 2: "refused", 3: "timeout", 4: "unreachable",
             5: "reset_sent", 6: "reset_received", 7: "local_error", 8: "aborted_other"},
    kind={0: "close", 1: "syn_retransmit", 2: "local_error"},
    direction={0: "unknown", 1: "outbound", 2: "inbound"},
    counter={}, flag={"tracked": 1})
OUTCOME_CODE = {v: k for k, v in ENUMS.outcome.items()}


class FakeProbe:
    enums = ENUMS

    def wall_time(self, ts_ns: Any) -> Any:
        return np.asarray(ts_ns) / 1e9


class FakeResolver:
    """Names addresses from a fixed table of identities (else: external)."""

    def __init__(self, idents: list[Identity]) -> None:
        self.by_ip = {i.address: i for i in idents}

    def local(self, netns: int, addr: str, comm: str) -> Identity:
        return self.by_ip.get(addr, Identity(address=addr, workload=comm, kind="host"))

    def remote(self, addr: str, port: int = 0) -> Identity:
        return self.by_ip.get(addr, Identity(address=addr, kind="external"))


@dataclass
class DashStats(FakeStats):
    started_at: float = 0.0


@dataclass
class DashAgent(FakeAgent):
    stats: DashStats = field(default_factory=DashStats)
    resolver: Any = None
    probe: FakeProbe = field(default_factory=FakeProbe)
    last_records: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=EVENT_DTYPE))


def pod(ns: str, workload: str, n: int, addr: str, service: str = "",
        name: str = "") -> Identity:
    return Identity(address=addr, namespace=ns, workload=workload,
                    pod=name or f"{workload}-{n}", node="node1", service=service, kind="pod")


def sample(src: Identity, dst: Identity, port: int, *, ok: int = 0, refused: int = 0,
           retrans: int = 0, rtt_s: float = 0.0) -> EdgeSample:
    outcomes = {k: v for k, v in (("established_closed", ok), ("refused", refused)) if v}
    lat = LatencyStat(rtt_s * (ok or 1), ok or 1, rtt_s * 1.5) if rtt_s else LatencyStat()
    return EdgeSample(EdgeKey(src, dst, port), outcomes=outcomes, attempts=ok + refused,
                      handshakes=ok, segs_sent=20 * ok, segs_retrans=retrans, srtt=lat,
                      connect_latency=lat, open_connections=ok)


def dns(client: Identity, server: str, queries: int, latency_s: float,
        nxdomain: int = 0) -> DnsSample:
    rcodes = {"NOERROR": queries - nxdomain, **({"NXDOMAIN": nxdomain} if nxdomain else {})}
    return DnsSample(client, queries=queries, rcodes=rcodes,
                     latency=LatencyStat(latency_s * queries, queries, latency_s * 2),
                     server=server)


def records(rows: list[dict[str, Any]]) -> np.ndarray:
    """kp_conn_event rows: ts (s), pid, comm, src, sport, dst, dport, outcome, direction."""
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, r in enumerate(rows):
        out[i]["ts_ns"] = int(r["ts"] * 1e9)
        out[i]["start_ns"] = int((r["ts"] - 0.004) * 1e9)
        out[i]["duration_ns"] = 4_000_000
        out[i]["tgid"] = r["pid"]
        out[i]["comm"] = r["comm"].encode()[:15]
        out[i]["family"] = 4
        out[i]["saddr"][:4] = list(ipaddress.IPv4Address(r["src"]).packed)
        out[i]["daddr"][:4] = list(ipaddress.IPv4Address(r["dst"]).packed)
        out[i]["sport"], out[i]["dport"] = r["sport"], r["dport"]
        out[i]["outcome"] = OUTCOME_CODE[r.get("outcome", "established_closed")]
        out[i]["direction"] = 2 if r.get("direction") == "inbound" else 1
        out[i]["flags"] = 1
        out[i]["error"] = 111 if r.get("outcome") == "refused" else 0
    return out


def alert(fp: str, type_: str, severity: str, state: str, starts_at: float,
          ends_at: float | None, labels: dict[str, str], summary: str, cause: str,
          evidence: dict[str, Any], identity: dict[str, str]) -> Alert:
    return Alert(fingerprint=fp, type=type_, severity=severity,  # type: ignore[arg-type]
                 state=state, starts_at=starts_at,  # type: ignore[arg-type]
                 ends_at=ends_at, emitted_at=ends_at or starts_at, labels=labels,
                 summary=summary, cause=cause, evidence=evidence, identity=identity)
