"""dns_timeout: DNS queries left unanswered past the probe's deadline."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, DnsDetector
from .dns_common import dns_finding, server_text
from .stats import BaselineConfig, judge, learn, ratio
from .window import DnsTotals, DnsWindow


class DnsTimeoutConfig(DetectorConfig):
    window_seconds: float = Field(default=5.0, gt=0.0)
    fast_window_seconds: float = Field(
        default=3.0, gt=0.0,
        description="also judged on its own: a little over the probe's deadline, so answers "
                    "from before an outage do not hold the ratio down")
    min_timeouts: int = Field(default=2, ge=1, description="unanswered queries in the window, at least")
    min_ratio: float = Field(default=0.3, ge=0.0, le=1.0, description="timeouts / queries, at least")
    critical_ratio: float = Field(default=0.9, ge=0.0, le=1.0)
    baseline: BaselineConfig = BaselineConfig(margin=0.1)


class DnsTimeoutDetector(DnsDetector[DnsTimeoutConfig]):
    name = "dns_timeout"
    config_type = DnsTimeoutConfig

    def observe(self, window: DnsWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        base = window.baseline(self.name)

        def score(t: DnsTotals) -> tuple[int, float, bool]:
            # Timeouts are reported a deadline after their query: the window may hold the
            # timeouts but not the queries, so the denominator is never below the timeouts.
            asked = max(t.queries, t.timeouts + t.answers)
            rate = ratio(t.timeouts, asked)
            return asked, rate, t.timeouts >= cfg.min_timeouts and judge(
                rate, cfg.min_ratio, base, cfg.baseline)

        t = window.totals(now, cfg.window_seconds)
        if max(t.queries, t.timeouts + t.answers) < cfg.min_timeouts:
            return
        asked, rate, bad = score(t)
        fast = window.totals(now, cfg.fast_window_seconds)
        f_asked, f_rate, f_bad = score(fast)
        learn(rate, bad or f_bad, base, cfg.baseline)
        if not bad and f_bad:
            t, asked, rate = fast, f_asked, f_rate
        elif not bad:
            return
        yield dns_finding(
            self.name, window, t, now,
            critical=rate >= cfg.critical_ratio,
            summary=f"{window.client.display}: {t.timeouts} of {asked} DNS queries unanswered",
            cause=f"{server_text(t)} not answering (resolver down, or answers dropped)",
            evidence={"timeouts": t.timeouts, "queries": asked, "answers": t.answers,
                      "ratio": round(rate, 4), "baseline": base.as_evidence(),
                      "window_seconds": cfg.window_seconds if t is not fast
                      else cfg.fast_window_seconds},
        )
