"""connection_flood: the new-connection rate of a source far above its own baseline."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, SourceDetector, edge_labels, side_labels, stable_id
from .stats import BaselineConfig, learn
from .window import SourceWindow


class FloodConfig(DetectorConfig):
    window_seconds: float = Field(default=2.0, gt=0.0)
    min_per_second: float = Field(default=50.0, ge=0.0, description="attempts/s floor, warm baseline")
    cold_min_per_second: float = Field(default=
        500.0, ge=0.0, description="attempts/s floor before the source's baseline is warm"
    )
    critical_factor: float = Field(default=20.0, ge=1.0, description="critical at this x baseline")
    baseline: BaselineConfig = BaselineConfig(factor=5.0, sigmas=6.0, warmup_windows=20)


class FloodDetector(SourceDetector[FloodConfig]):
    name = "connection_flood"
    config_type = FloodConfig

    def observe(self, window: SourceWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        rate = window.attempts_in(now, cfg.window_seconds) / cfg.window_seconds
        base = window.baseline(self.name)
        warm = base.warm(cfg.baseline)
        floor = cfg.min_per_second if warm else cfg.cold_min_per_second
        bad = rate >= floor and rate > base.threshold(cfg.baseline)
        # A burst ramps up over the sliding window: its first ticks are below the bar but
        # must not be learned either, or the baseline chases the flood (mean and variance
        # both jump) and never fires. Only values near the usual rate teach the baseline.
        suspicious = warm and rate > max(2.0 * base.mean, base.mean + 3.0 * base.std)
        if window.full(now, cfg.window_seconds):
            learn(rate, bad or suspicious, base, cfg.baseline)
        if not bad:
            return
        peers = window.peers_in(now, cfg.window_seconds)
        src = window.src
        labels = side_labels("src", src)
        if src.node:
            labels["node"] = src.node
        if len(peers) == 1:
            labels = edge_labels(next(iter(peers)))
        usual = f"usual {base.mean:.0f}/s" if warm else "no baseline yet"
        yield Finding(
            type=self.name,
            severity="critical" if warm and rate >= base.mean * cfg.critical_factor else "warning",
            at=now,
            identity={"src": stable_id(src)},
            labels=labels,
            summary=f"{src.display} opens {rate:.0f} connections/s ({usual})",
            cause=f"{src.display} floods {len(peers)} destination(s) with new connections "
            "(retry storm, no connection reuse, or a scan)",
            evidence={"attempts_per_second": round(rate, 2), "destinations": len(peers),
                      "baseline": base.as_evidence(), "window_seconds": cfg.window_seconds},
        )
