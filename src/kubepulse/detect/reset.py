"""connection_reset: established connections aborted by RST at an abnormal rate."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, EdgeDetector, dst_name, edge_finding
from .stats import BaselineConfig, judge, learn, ratio
from .window import FAST_SECONDS, EdgeTotals, EdgeWindow

RESETS = ("reset_sent", "reset_received", "aborted_other")


class ResetConfig(DetectorConfig):
    window_seconds: float = Field(default=3.0, gt=0.0)
    min_resets: int = Field(default=3, ge=1, description="aborted connections in the window, at least")
    min_ratio: float = Field(default=0.5, ge=0.0, le=1.0, description="resets / closes, at least")
    critical_ratio: float = Field(default=0.9, ge=0.0, le=1.0)
    baseline: BaselineConfig = BaselineConfig(margin=0.2)


class ResetDetector(EdgeDetector[ResetConfig]):
    name = "connection_reset"
    config_type = ResetConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        base = window.baseline(self.name)

        def score(t: EdgeTotals) -> tuple[int, int, float, bool]:
            resets = t.failed(*RESETS)
            closes = resets + t.outcomes.get("established_closed", 0)
            rate = ratio(resets, closes)
            bad = resets >= cfg.min_resets and judge(rate, cfg.min_ratio, base, cfg.baseline)
            return resets, closes, rate, bad

        t = window.totals(now, cfg.window_seconds)
        resets, closes, rate, bad = score(t)
        fast = window.latest(now)
        *_, last_rate, last_bad = score(fast)
        if closes >= cfg.min_resets:
            learn(rate, bad or last_bad or last_rate >= cfg.min_ratio, base, cfg.baseline)
        if not (bad or last_bad):
            return
        span = cfg.window_seconds
        if not bad:  # the newest second alone fired: report what it saw
            t, span = fast, FAST_SECONDS
            resets, closes, rate, _ = score(t)
        key = window.key
        target = dst_name(key)
        received = t.outcomes.get("reset_received", 0)
        sent = t.outcomes.get("reset_sent", 0)
        if received >= sent:
            cause = f"{target} aborted connections (crash, restart, proxy or idle timeout)"
        else:
            cause = f"{key.src.display} aborted its connections to {target} (RST sent)"
        yield edge_finding(
            self.name, key, now,
            critical=rate >= cfg.critical_ratio,
            summary=f"{key.src.display} -> {target}: {resets} of {closes} connections reset",
            cause=cause,
            evidence={"reset_received": received, "reset_sent": sent,
                      "aborted_other": t.outcomes.get("aborted_other", 0), "closes": closes,
                      "ratio": round(rate, 4), "baseline": base.as_evidence(),
                      "window_seconds": span},
        )
