"""policy_denied: traffic between two workloads dropped by a packet filter or policy."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import EdgeDetector, dst_name
from .drops import DropConfig, observe_drops
from .window import EdgeWindow


class PolicyConfig(DropConfig):
    # A denied client retransmits its SYN after 1 s, 3 s, ...: two drops arrive within ~1 s.
    window_seconds: float = Field(default=5.0, gt=0.0)
    min_drops: int = Field(default=2, ge=1)
    max_success_ratio: float = Field(default=
        0.5, ge=0.0, le=1.0,
        description="a policy denies: above this share of connects getting through, the "
                    "filter drops look like loss, not a denial")


class PolicyDetector(EdgeDetector[PolicyConfig]):
    name = "policy_denied"
    config_type = PolicyConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        k = window.key
        # Judged on the newest second: a denial starts at once, and the healthy connects
        # from before it, still in the long window, must not hold the ratio up.
        t = window.latest(now)
        through = t.handshakes + t.outcomes.get("established_closed", 0)
        if through and through / (through + t.unanswered) > self.config.max_success_ratio:
            return
        found = observe_drops(
            self.name, "policy", self.config, window, now,
            summary=f"{k.src.display} -> {dst_name(k)}: {{total}} packets denied by policy",
            cause="dropped by a packet filter (NetworkPolicy?): {total} {top} drops",
        )
        if found:
            yield found
