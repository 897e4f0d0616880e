"""One object for the agent loop: feed a tick of samples, get that tick's findings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubepulse.model import DnsSample, DropSample, EdgeSample, Finding

from .base import (
    Detector,
    DetectorConfig,
    DnsDetector,
    EdgeDetector,
    SourceDetector,
    TableDetector,
)
from .config import KubepulseConfig
from .registry import DETECTORS
from .window import EdgeTable


def build_detectors(config: KubepulseConfig) -> list[Detector[Any]]:
    """One instance per enabled detector, each with its own config section."""
    out: list[Detector[Any]] = []
    for cls in DETECTORS:
        section: DetectorConfig = getattr(config.detectors, cls.name)
        if section.enabled:
            out.append(cls(section))
    return out


def _horizon(detectors: Sequence[Detector[Any]]) -> float:
    spans = [d.config.window_seconds for d in detectors]
    spans += [getattr(d.config, "climb_window_seconds", 0.0) for d in detectors]
    return max(spans, default=5.0) + 1.0


class DetectionEngine:
    """Holds the windows and the detectors. Pure: the clock is the ``now`` of each call."""

    def __init__(self, config: KubepulseConfig) -> None:
        self.detectors = build_detectors(config)
        self.table = EdgeTable(
            config.tracking.max_edges, config.tracking.max_dns_clients, _horizon(self.detectors)
        )
        self._edge = [d for d in self.detectors if isinstance(d, EdgeDetector)]
        self._source = [d for d in self.detectors if isinstance(d, SourceDetector)]
        self._dns = [d for d in self.detectors if isinstance(d, DnsDetector)]
        self._table = [d for d in self.detectors if isinstance(d, TableDetector)]

    def step(
        self,
        now: float,
        edges: Sequence[EdgeSample] = (),
        dns: Sequence[DnsSample] = (),
        drops: Sequence[DropSample] = (),
    ) -> list[Finding]:
        """Add one interval of samples (counts for that interval) and judge what it touched."""
        touched, sources, clients = self.table.ingest(now, list(edges), list(dns), list(drops))
        found: list[Finding] = []
        for key in touched:
            window = self.table.edges.get(key)
            if window is not None:
                for ed in self._edge:
                    found.extend(ed.observe(window, now))
        for src in sources:
            sw = self.table.sources.get(src)
            if sw is not None:
                for sd in self._source:
                    found.extend(sd.observe(sw, now))
        for client in clients:
            dw = self.table.dns.get(client)
            if dw is not None:
                for dd in self._dns:
                    found.extend(dd.observe(dw, now))
        for td in self._table:
            found.extend(td.observe(self.table, now))
        return found

    def stats(self) -> dict[str, int]:
        """Counters and gauges for export: tracked sizes and LRU evictions."""
        return {
            "edges_tracked": len(self.table.edges),
            "sources_tracked": len(self.table.sources),
            "dns_clients_tracked": len(self.table.dns),
            "evictions_total": self.table.evictions_total,
        }
