"""Findings and a manager on a fake clock for lifecycle tests."""

from __future__ import annotations

from typing import Any

from kubepulse.detect import parse_config
from kubepulse.detect.config import AlertsConfig
from kubepulse.model import Finding, Severity

T0 = 1_700_000_000.0


def finding(kind: str = "connection_refused", src: str = "shop/frontend",
            dst: str = "shop/cart", nodes: tuple[str, str] = ("n1", "n2"),
            severity: Severity = "critical", at: float = T0, **evidence: Any) -> Finding:
    if kind == "network_partition":
        return Finding(kind, "critical", at, {"nodes": "|".join(nodes)},
                       {"src_node": nodes[0], "dst_node": nodes[1]}, "partition", "cut",
                       dict(evidence))
    labels = {"src_namespace": src.split("/")[0], "src_workload": src.split("/")[1],
              "dst_namespace": dst.split("/")[0], "dst_workload": dst.split("/")[1],
              "dst_port": "8080", "src_node": nodes[0], "dst_node": nodes[1], "node": nodes[0]}
    return Finding(kind, severity, at, {"src": src, "dst": dst, "dst_port": "8080"}, labels,
                   f"{src} -> {dst}", "nothing listening", dict(evidence))


def alerts_config(**alerts: Any) -> AlertsConfig:
    return parse_config({"alerts": alerts}, "test").alerts
