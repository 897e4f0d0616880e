"""packet_drop: kernel drops on an edge that are neither policy nor accept-queue overflow."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from kubepulse.model import Finding

from .base import EdgeDetector, dst_name
from .drops import DropConfig, observe_drops
from .window import EdgeWindow


class PacketDropConfig(DropConfig):
    window_seconds: float = Field(default=5.0, gt=0.0)
    min_drops: int = Field(default=10, ge=1)


class PacketDropDetector(EdgeDetector[PacketDropConfig]):
    name = "packet_drop"
    config_type = PacketDropConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        k = window.key
        found = observe_drops(
            self.name, "other", self.config, window, now,
            summary=f"{k.src.display} -> {dst_name(k)}: {{total}} packets dropped by the kernel",
            cause="kernel dropped packets, mostly {top}",
        )
        if found:
            yield found
