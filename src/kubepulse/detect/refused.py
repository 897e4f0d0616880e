"""connection_refused: connects answered by RST (outcome ``refused``)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, EdgeDetector, dst_name, edge_finding
from .stats import BaselineConfig, judge, learn, ratio
from .window import FAST_SECONDS, EdgeTotals, EdgeWindow


class RefusedConfig(DetectorConfig):
    window_seconds: float = Field(default=3.0, gt=0.0)
    min_refused: int = Field(default=3, ge=1, description="refused connects in the window, at least")
    min_ratio: float = Field(default=0.5, ge=0.0, le=1.0, description="refused / attempts, at least")
    critical_ratio: float = Field(default=0.9, ge=0.0, le=1.0)
    baseline: BaselineConfig = BaselineConfig(margin=0.2)


class RefusedDetector(EdgeDetector[RefusedConfig]):
    name = "connection_refused"
    config_type = RefusedConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        base = window.baseline(self.name)

        def score(t: EdgeTotals) -> tuple[int, int, float, bool]:
            refused = t.outcomes.get("refused", 0)
            attempts = max(t.attempts, refused + t.handshakes)
            rate = ratio(refused, attempts)
            bad = refused >= cfg.min_refused and judge(rate, cfg.min_ratio, base, cfg.baseline)
            return refused, attempts, rate, bad

        t = window.totals(now, cfg.window_seconds)
        refused, attempts, rate, bad = score(t)
        fast = window.latest(now)
        *_, last_rate, last_bad = score(fast)
        if attempts >= cfg.min_refused:
            learn(rate, bad or last_bad or last_rate >= cfg.min_ratio, base, cfg.baseline)
        if not (bad or last_bad):
            return
        span = cfg.window_seconds
        if not bad:  # the newest second alone fired: report what it saw
            t, span = fast, FAST_SECONDS
            refused, attempts, rate, _ = score(t)
        key = window.key
        target = dst_name(key)
        cause = f"nothing listening on {target}"
        if window.totals(now, 1e-6).handshakes:  # connects still succeed right now
            cause = f"some backends of {target} are not listening ({t.handshakes} connects succeeded)"
        yield edge_finding(
            self.name, key, now,
            critical=rate >= cfg.critical_ratio,
            summary=f"{key.src.display} -> {target}: {refused} of {attempts} connects refused",
            cause=cause,
            evidence={"refused": refused, "attempts": attempts, "handshakes": t.handshakes,
                      "ratio": round(rate, 4), "baseline": base.as_evidence(),
                      "window_seconds": span},
        )
