"""Agent-like objects fed with synthetic samples: what ``on_tick`` sees, without a kernel."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubepulse.model import (
    Alert,
    DnsSample,
    DropSample,
    EdgeKey,
    EdgeSample,
    Identity,
    LatencyStat,
)


@dataclass
class FakeStats:
    ticks: int = 0
    records_received: int = 0
    dns_records: int = 0
    lost_kernel: int = 0
    lost_user: int = 0
    detection_lag_seconds: float = 0.0
    alerts_emitted: int = 0
    attach_status: dict[str, bool] = field(default_factory=lambda: {
        "sock:inet_sock_set_state": True, "tcp:tcp_retransmit_skb": True,
        "cgroup_skb/egress": True, "skb:kfree_skb": True})
    kernel_counters: dict[str, int] = field(default_factory=dict)
    engine: dict[str, int] = field(default_factory=dict)


class FakeAlerts:
    def __init__(self) -> None:
        self.open: dict[str, Alert] = {}

    def open_alerts(self) -> list[Alert]:
        return list(self.open.values())


@dataclass
class FakeAgent:
    stats: FakeStats = field(default_factory=FakeStats)
    alerts: FakeAlerts = field(default_factory=FakeAlerts)
    last_samples: list[EdgeSample] = field(default_factory=list)
    last_dns: list[DnsSample] = field(default_factory=list)
    last_drops: list[DropSample] = field(default_factory=list)


def pod(ns: str, workload: str, n: int = 0, addr: str = "10.0.0.1", service: str = "") -> Identity:
    return Identity(address=addr, namespace=ns, workload=workload, pod=f"{workload}-{n}",
                    node="node1", service=service, kind="pod")


NO_LATENCY = LatencyStat()
WEB = pod("shop", "web", addr="10.1.0.5")
API = pod("shop", "api", addr="10.1.0.9", service="api")


def edge_sample(src: Identity = WEB, dst: Identity = API, port: int = 8080, *,
                ok: int = 0, refused: int = 0, reset_received: int = 0, attempts: int = 0,
                segs_sent: int = 0, segs_retrans: int = 0, syn_retransmits: int = 0,
                latency: LatencyStat = NO_LATENCY, open_connections: int | None = None
                ) -> EdgeSample:
    outcomes = {k: v for k, v in (("established_closed", ok), ("refused", refused),
                                  ("reset_received", reset_received)) if v}
    return EdgeSample(EdgeKey(src, dst, port), outcomes=outcomes, attempts=attempts,
                      segs_sent=segs_sent, segs_retrans=segs_retrans,
                      syn_retransmits=syn_retransmits, connect_latency=latency,
                      srtt=latency, open_connections=open_connections)


def alert(fp: str = "fp0001", state: str = "firing", *, starts_at: float,
          ends_at: float | None = None, type_: str = "connection_refused") -> Alert:
    return Alert(
        fingerprint=fp, type=type_, severity="critical", state=state,  # type: ignore[arg-type]
        starts_at=starts_at, ends_at=ends_at, emitted_at=ends_at or starts_at,
        labels={"src_namespace": "shop", "src_workload": "web", "src_pod": "web-0",
                "dst_namespace": "shop", "dst_workload": "api", "dst_service": "api",
                "dst_port": "8080", "node": "node1", "dst_address": "10.1.0.9"},
        summary="shop/web -> api:8080 refused", cause="nothing listens on api:8080",
        evidence={"refused": 12, "attempts": 12},
        identity={"src": "shop/web", "dst": "shop/api", "dst_service": "shop/api",
                  "dst_port": "8080"})
