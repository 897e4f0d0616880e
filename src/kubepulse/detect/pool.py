"""conn_pool_exhaustion: a client's open connections to a destination climb to a limit, and
new connects then fail (refused, unanswered, reset, or no local port left) or go unserved (the
server, at its connection limit, leaves them in its accept queue: the client sends its request,
hears nothing, and gives up)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, EdgeDetector, dst_name, edge_finding
from .stats import BaselineConfig, learn
from .window import EdgeWindow

FAILED = ("refused", "reset_sent", "reset_received", "local_error")


class PoolConfig(DetectorConfig):
    window_seconds: float = Field(default=5.0, gt=0.0, description="window for the failing connects")
    climb_window_seconds: float = Field(default=30.0, gt=0.0, description="window the climb is seen in")
    min_open: int = Field(default=20, ge=1, description="established connections now, at least")
    min_climb: int = Field(default=10, ge=1, description="growth of the gauge over the climb window")
    min_failures: int = Field(default=2, ge=1, description="failed or unserved connects in the window, at least")
    baseline: BaselineConfig = BaselineConfig(factor=2.0, sigmas=4.0, warmup_windows=10)


class PoolDetector(EdgeDetector[PoolConfig]):
    name = "conn_pool_exhaustion"
    config_type = PoolConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        climb = window.totals(now, cfg.climb_window_seconds)
        if climb.open_now is None or climb.open_min is None:
            return
        t = window.totals(now, cfg.window_seconds)
        failures = t.failed(*FAILED) + t.unanswered + t.no_reply
        grown = climb.open_now - climb.open_min
        base = window.baseline(self.name)
        high = climb.open_now >= cfg.min_open and (
            climb.open_now > base.threshold(cfg.baseline)
            if base.warm(cfg.baseline) else grown >= cfg.min_climb
        )
        bad = high and failures >= cfg.min_failures
        learn(float(climb.open_now), high, base, cfg.baseline)
        if not bad:
            return
        key = window.key
        target = dst_name(key)
        local = t.outcomes.get("local_error", 0)
        if local * 2 >= failures:
            cause = f"{key.src.display} ran out of local ports/sockets for {target}"
        elif t.no_reply * 2 >= failures:
            cause = (f"{key.src.display} holds {climb.open_now} connections to {target}, and "
                     f"{t.no_reply} new ones were never answered: the server's connection "
                     "limit is reached (a client leaking connections?)")
        else:
            cause = (f"{key.src.display} holds {climb.open_now} connections to {target} and new "
                     "connects fail: connection pool or server connection limit reached")
        yield edge_finding(
            self.name, key, now,
            critical=True,
            summary=f"{key.src.display} -> {target}: {climb.open_now} open connections "
            f"(+{grown} in {cfg.climb_window_seconds:.0f}s), {failures} connects failed",
            cause=cause,
            evidence={"open": climb.open_now, "open_min": climb.open_min, "failures": failures,
                      "by_outcome": {o: t.outcomes.get(o, 0) for o in FAILED},
                      "unanswered": t.unanswered, "no_reply": t.no_reply,
                      "baseline": base.as_evidence(),
                      "window_seconds": cfg.window_seconds,
                      "climb_window_seconds": cfg.climb_window_seconds},
        )
