"""connection_timeout: SYNs unanswered, seen early at their first retransmit."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, EdgeDetector, dst_name, edge_finding, policy_hint
from .stats import BaselineConfig, judge, learn, ratio
from .window import FAST_SECONDS, EdgeTotals, EdgeWindow


class TimeoutConfig(DetectorConfig):
    window_seconds: float = Field(default=5.0, gt=0.0)
    min_unanswered: int = Field(default=3, ge=1, description="unanswered SYNs in the window, at least")
    min_ratio: float = Field(default=0.5, ge=0.0, le=1.0, description="unanswered / attempts, at least")
    critical_ratio: float = Field(default=0.9, ge=0.0, le=1.0)
    baseline: BaselineConfig = BaselineConfig(margin=0.2)


def timeout_cause(t: EdgeTotals, target: str) -> str:
    policy = t.drops_of("policy")
    if policy:
        return policy_hint(policy)
    overflow = t.drops_of("listen_overflow")
    if overflow:
        return f"accept queue full on {target}: SYNs dropped ({sum(overflow.values())})"
    if t.outcomes.get("unreachable", 0):
        return f"{target} unreachable (ICMP host/net unreachable)"
    other = t.drops_of("other")
    if other:
        top = max(other, key=lambda r: other[r])
        return f"SYNs dropped in the kernel ({top})"
    return f"no answer from {target}: peer down, or packets dropped on the path"


class TimeoutDetector(EdgeDetector[TimeoutConfig]):
    name = "connection_timeout"
    config_type = TimeoutConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        base = window.baseline(self.name)

        def score(t: EdgeTotals) -> tuple[int, int, float, bool]:
            lost = t.unanswered
            attempts = max(t.attempts, lost + t.handshakes)
            rate = ratio(lost, attempts)
            bad = lost >= cfg.min_unanswered and judge(rate, cfg.min_ratio, base, cfg.baseline)
            return lost, attempts, rate, bad

        t = window.totals(now, cfg.window_seconds)
        lost, attempts, rate, bad = score(t)
        fast = window.latest(now)
        *_, last_rate, last_bad = score(fast)
        if attempts >= cfg.min_unanswered:
            learn(rate, bad or last_bad or last_rate >= cfg.min_ratio, base, cfg.baseline)
        if not (bad or last_bad):
            return
        span = cfg.window_seconds
        if not bad:  # the newest second alone fired: report what it saw
            t, span = fast, FAST_SECONDS
            lost, attempts, rate, _ = score(t)
        key = window.key
        target = dst_name(key)
        yield edge_finding(
            self.name, key, now,
            critical=rate >= cfg.critical_ratio,
            summary=f"{key.src.display} -> {target}: {lost} of {attempts} connects unanswered",
            cause=timeout_cause(t, target),
            evidence={"syn_retransmits": t.syn_retransmits,
                      "timeouts": t.outcomes.get("timeout", 0),
                      "unreachable": t.outcomes.get("unreachable", 0),
                      "attempts": attempts, "handshakes": t.handshakes,
                      "ratio": round(rate, 4), "drops": {r: n for (_, r), n in t.drops.items()},
                      "baseline": base.as_evidence(), "window_seconds": span},
        )
