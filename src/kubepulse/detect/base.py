"""What every detector is, and the labels and identity it puts on a finding.

Three scopes, one method each; all pure (no I/O, the clock passed in):
- :class:`EdgeDetector` looks at one edge's window;
- :class:`SourceDetector` at one source's attempts across its edges;
- :class:`DnsDetector` at one DNS client;
- :class:`TableDetector` at every active edge at once (correlation, e.g. partitions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kubepulse.model import EdgeKey, Finding, Identity

from .window import DnsWindow, EdgeTable, EdgeWindow, SourceWindow

C = TypeVar("C", bound="DetectorConfig")


class DetectorConfig(BaseModel):
    """Every detector's section has these two keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window_seconds: float = Field(default=5.0, gt=0.0, description="sliding window the rates cover")


class Detector(ABC, Generic[C]):
    name: ClassVar[str]  # config key, metric label and alert type
    config_type: ClassVar[type[DetectorConfig]]

    def __init__(self, config: C) -> None:
        self.config = config


class EdgeDetector(Detector[C]):
    @abstractmethod
    def observe(self, window: EdgeWindow, now: float) -> Iterable[Finding]: ...


class SourceDetector(Detector[C]):
    @abstractmethod
    def observe(self, window: SourceWindow, now: float) -> Iterable[Finding]: ...


class DnsDetector(Detector[C]):
    @abstractmethod
    def observe(self, window: DnsWindow, now: float) -> Iterable[Finding]: ...


class TableDetector(Detector[C]):
    @abstractmethod
    def observe(self, table: EdgeTable, now: float) -> Iterable[Finding]: ...


def stable_id(ident: Identity) -> str:
    """The part of an identity that survives pod churn: the workload, else pod, else address."""
    if ident.workload:
        return f"{ident.namespace}/{ident.workload}" if ident.namespace else ident.workload
    if ident.service:
        return f"{ident.namespace}/svc/{ident.service}"
    if ident.pod:
        return f"{ident.namespace}/{ident.pod}"
    return ident.address


def side_labels(prefix: str, ident: Identity) -> dict[str, str]:
    pairs = {
        "namespace": ident.namespace,
        "workload": ident.workload,
        "pod": ident.pod,
        "node": ident.node,
    }
    out = {f"{prefix}_{k}": v for k, v in pairs.items() if v}
    if prefix == "dst" and ident.service:
        out["dst_service"] = ident.service
    if not (ident.workload or ident.pod or ident.service) and ident.address:
        out[f"{prefix}_address"] = ident.address
    return out


def edge_labels(key: EdgeKey) -> dict[str, str]:
    labels = side_labels("src", key.src) | side_labels("dst", key.dst)
    if key.dst_port:
        labels["dst_port"] = str(key.dst_port)
    node = key.src.node or key.dst.node
    if node:
        labels["node"] = node
    return labels


def edge_identity(key: EdgeKey) -> dict[str, str]:
    ident = {"src": stable_id(key.src), "dst": stable_id(key.dst)}
    if key.dst.service:
        ident["dst_service"] = f"{key.dst.namespace}/{key.dst.service}"
    if key.dst_port:
        ident["dst_port"] = str(key.dst_port)
    return ident


def dst_name(key: EdgeKey) -> str:
    name = key.dst.service or key.dst.display
    return f"{name}:{key.dst_port}" if key.dst_port else name


def edge_finding(
    name: str,
    key: EdgeKey,
    now: float,
    *,
    critical: bool,
    summary: str,
    cause: str,
    evidence: dict[str, object],
) -> Finding:
    return Finding(
        type=name,
        severity="critical" if critical else "warning",
        at=now,
        identity=edge_identity(key),
        labels=edge_labels(key),
        summary=summary,
        cause=cause,
        evidence=dict(evidence),
    )


def policy_hint(drops: dict[str, int]) -> str:
    """The cause sentence when a packet filter drops traffic on the edge."""
    top = max(drops, key=lambda r: drops[r])
    return f"dropped by a packet filter (NetworkPolicy?): {sum(drops.values())} {top} drops"
