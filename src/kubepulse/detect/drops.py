"""Shared logic of the three drop detectors: a count of one drop class on one edge."""

from __future__ import annotations

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, edge_finding
from .stats import BaselineConfig, judge, learn
from .window import EdgeWindow

# The kernel's reason names (enum skb_drop_reason) that mean "a filter said no" or "the accept
# queue was full". The drop probe classifies; this is the fallback for samples it left "other".
POLICY_PREFIXES = ("NETFILTER_", "TC_", "BPF_", "XDP", "IPTABLES", "NFT")
LISTEN_OVERFLOW_REASONS = frozenset({"TCP_LISTEN_OVERFLOW", "TCP_REQQFULLDROP", "SYN_BACKLOG"})


def classify_reason(reason: str) -> str:
    name = reason.upper().removeprefix("SKB_DROP_REASON_")
    if name in LISTEN_OVERFLOW_REASONS or "LISTEN_OVERFLOW" in name:
        return "listen_overflow"
    if name.startswith(POLICY_PREFIXES):
        return "policy"
    return "other"


class DropConfig(DetectorConfig):
    min_drops: int = Field(default=5, ge=1, description="drops of this class in the window, at least")
    critical_drops: int = Field(default=100, ge=1)
    baseline: BaselineConfig = BaselineConfig(factor=5.0)


def observe_drops(
    name: str, drop_class: str, cfg: DropConfig, window: EdgeWindow, now: float,
    summary: str, cause: str,
) -> Finding | None:
    """One finding when this class's drops pass the floor and the edge's baseline."""
    t = window.totals(now, cfg.window_seconds)
    by_reason = t.drops_of(drop_class)
    total = sum(by_reason.values())
    base = window.baseline(name)
    bad = judge(total, cfg.min_drops, base, cfg.baseline)
    if window.full(now, cfg.window_seconds):
        learn(total, bad, base, cfg.baseline)
    if not bad:
        return None
    top = max(by_reason, key=lambda r: by_reason[r])
    return edge_finding(
        name, window.key, now,
        critical=total >= cfg.critical_drops,
        summary=summary.format(total=total, top=top),
        cause=cause.format(total=total, top=top),
        evidence={"drops": total, "by_reason": by_reason,
                  "attempts": t.attempts, "unanswered": t.unanswered,
                  "baseline": base.as_evidence(), "window_seconds": cfg.window_seconds},
    )
