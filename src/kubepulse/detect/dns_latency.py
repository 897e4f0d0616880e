"""dns_latency: DNS answers slow for a client, against an absolute floor and its baseline."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, DnsDetector
from .dns_common import dns_finding, server_text
from .stats import BaselineConfig, judge, learn
from .window import DnsWindow


class DnsLatencyConfig(DetectorConfig):
    window_seconds: float = Field(default=5.0, gt=0.0)
    min_answers: int = Field(default=5, ge=1, description="answers in the window, at least")
    min_mean_seconds: float = Field(default=0.1, ge=0.0, description="mean latency, at least")
    critical_mean_seconds: float = Field(default=1.0, ge=0.0)
    baseline: BaselineConfig = BaselineConfig(factor=4.0, margin=0.05)


class DnsLatencyDetector(DnsDetector[DnsLatencyConfig]):
    name = "dns_latency"
    config_type = DnsLatencyConfig

    def observe(self, window: DnsWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        t = window.totals(now, cfg.window_seconds)
        if t.latency.count < cfg.min_answers:
            return
        mean = t.latency.mean_s
        base = window.baseline(self.name)
        bad = judge(mean, cfg.min_mean_seconds, base, cfg.baseline)
        learn(mean, bad, base, cfg.baseline)
        if not bad:
            return
        yield dns_finding(
            self.name, window, t, now,
            critical=mean >= cfg.critical_mean_seconds,
            summary=f"{window.client.display}: DNS answers take {mean * 1000:.0f} ms on average",
            cause=f"{server_text(t)} answering slowly (overloaded resolver or slow upstream)",
            evidence={"answers": t.latency.count, "mean_seconds": round(mean, 6),
                      "max_seconds": round(t.latency.max_s, 6), "baseline": base.as_evidence(),
                      "window_seconds": cfg.window_seconds},
        )
