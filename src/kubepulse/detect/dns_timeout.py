"""dns_timeout: DNS queries left unanswered past the probe's deadline."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, DnsDetector
from .dns_common import dns_finding, server_text
from .stats import BaselineConfig, judge, learn, ratio
from .window import DnsWindow


class DnsTimeoutConfig(DetectorConfig):
    window_seconds: float = Field(default=5.0, gt=0.0)
    min_timeouts: int = Field(default=3, ge=1, description="unanswered queries in the window, at least")
    min_ratio: float = Field(default=0.3, ge=0.0, le=1.0, description="timeouts / queries, at least")
    critical_ratio: float = Field(default=0.9, ge=0.0, le=1.0)
    baseline: BaselineConfig = BaselineConfig(margin=0.1)


class DnsTimeoutDetector(DnsDetector[DnsTimeoutConfig]):
    name = "dns_timeout"
    config_type = DnsTimeoutConfig

    def observe(self, window: DnsWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        t = window.totals(now, cfg.window_seconds)
        # Timeouts are reported a deadline after their query: the window may hold the timeouts
        # but not the queries, so the denominator is never below the timeouts themselves.
        asked = max(t.queries, t.timeouts + t.answers)
        if asked < cfg.min_timeouts:
            return
        rate = ratio(t.timeouts, asked)
        base = window.baseline(self.name)
        bad = t.timeouts >= cfg.min_timeouts and judge(rate, cfg.min_ratio, base, cfg.baseline)
        learn(rate, bad, base, cfg.baseline)
        if not bad:
            return
        yield dns_finding(
            self.name, window, t, now,
            critical=rate >= cfg.critical_ratio,
            summary=f"{window.client.display}: {t.timeouts} of {asked} DNS queries unanswered",
            cause=f"{server_text(t)} not answering (resolver down, or answers dropped)",
            evidence={"timeouts": t.timeouts, "queries": asked, "answers": t.answers,
                      "ratio": round(rate, 4), "baseline": base.as_evidence(),
                      "window_seconds": cfg.window_seconds},
        )
