"""Labels and identity of a DNS finding: the client, and the resolver it asked."""

from __future__ import annotations

from kubepulse.model import Finding, Severity

from .base import side_labels, stable_id
from .window import DnsTotals, DnsWindow


def dns_finding(
    name: str, window: DnsWindow, t: DnsTotals, now: float, *, critical: bool,
    summary: str, cause: str, evidence: dict[str, object],
) -> Finding:
    client = window.client
    labels = side_labels("src", client)
    if client.node:
        labels["node"] = client.node
    if t.servers:
        labels["dns_server"] = ",".join(sorted(t.servers))
    severity: Severity = "critical" if critical else "warning"
    return Finding(
        type=name, severity=severity, at=now, identity={"src": stable_id(client)},
        labels=labels, summary=summary, cause=cause, evidence=dict(evidence),
    )


def server_text(t: DnsTotals) -> str:
    return ", ".join(sorted(t.servers)) if t.servers else "the resolver"
