"""packet_loss: the retransmission rate on an edge far above its own baseline."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, EdgeDetector, dst_name, edge_finding, policy_hint
from .stats import BaselineConfig, judge, learn, ratio
from .window import EdgeWindow


class LossConfig(DetectorConfig):
    window_seconds: float = Field(default=5.0, gt=0.0)
    min_segments: int = Field(default=50, ge=1, description="segments sent in the window, at least")
    min_retransmits: int = Field(default=6, ge=1, description="retransmitted segments, at least")
    min_ratio: float = Field(default=0.02, ge=0.0, le=1.0, description="retransmits / segments")
    critical_ratio: float = Field(default=0.2, ge=0.0, le=1.0)
    baseline: BaselineConfig = BaselineConfig(factor=3.0, margin=0.01)


class LossDetector(EdgeDetector[LossConfig]):
    name = "packet_loss"
    config_type = LossConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        cfg = self.config
        t = window.totals(now, cfg.window_seconds)
        if t.segs_sent < cfg.min_segments:
            return
        rate = ratio(t.segs_retrans, t.segs_sent)
        base = window.baseline(self.name)
        bad = t.segs_retrans >= cfg.min_retransmits and judge(
            rate, cfg.min_ratio, base, cfg.baseline
        )
        learn(rate, bad, base, cfg.baseline)
        if not bad:
            return
        key = window.key
        target = dst_name(key)
        policy, other = t.drops_of("policy"), t.drops_of("other")
        if policy:
            cause = policy_hint(policy)
        elif other:
            top = max(other, key=lambda r: other[r])
            cause = f"packets dropped in the kernel on this edge ({top})"
        else:
            cause = f"packets lost on the path to {target} (congestion or a faulty link)"
        yield edge_finding(
            self.name, key, now,
            critical=rate >= cfg.critical_ratio,
            summary=f"{key.src.display} -> {target}: {rate:.1%} of segments retransmitted",
            cause=cause,
            evidence={"segs_sent": t.segs_sent, "segs_retrans": t.segs_retrans,
                      "ratio": round(rate, 5), "srtt_mean_s": round(t.srtt.mean_s, 6),
                      "srtt_max_s": round(t.srtt.max_s, 6), "baseline": base.as_evidence(),
                      "window_seconds": cfg.window_seconds},
        )
