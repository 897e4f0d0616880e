"""listen_overflow: a server's accept queue overflowing (SYNs or ACKs dropped at listen)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from pydantic import Field

from kubepulse.model import Finding

from .base import EdgeDetector, dst_name
from .drops import DropConfig, observe_drops
from .window import EdgeWindow


class ListenOverflowConfig(DropConfig):
    window_seconds: float = Field(default=5.0, gt=0.0)
    min_drops: int = Field(default=3, ge=1)


class ListenOverflowDetector(EdgeDetector[ListenOverflowConfig]):
    name = "listen_overflow"
    config_type = ListenOverflowConfig

    def observe(self, window: EdgeWindow, now: float) -> Iterator[Finding]:
        k = window.key
        target = dst_name(k)
        found = observe_drops(
            self.name, "listen_overflow", self.config, window, now,
            summary=f"{target}: {{total}} connections dropped at a full accept queue",
            cause=f"accept queue full on {target}: the server is not calling accept() fast "
            "enough, or its backlog is too small ({top})",
        )
        if found:
            # One alert per server, however many clients it turns away.
            ident = {n: v for n, v in found.identity.items() if n.startswith("dst")}
            labels = {n: v for n, v in found.labels.items() if not n.startswith("src")}
            yield replace(found, identity=ident, labels=labels)
