"""network_partition: all traffic between two nodes failing while other traffic is healthy.

A correlation across edges: each edge whose two ends have known, different nodes votes for its
(unordered) node pair. No baseline of its own; each edge's judgement is absolute (traffic that
got through vs traffic that did not), and the "other traffic is healthy" guard keeps a dead
agent node or a global outage from being called a partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from kubepulse.model import Finding

from .base import DetectorConfig, TableDetector
from .window import EdgeTable, EdgeTotals


class PartitionConfig(DetectorConfig):
    # Short: one successful connect before the cut marks an edge healthy for the whole
    # window, so the window length is the floor on time to detect.
    window_seconds: float = Field(default=2.5, gt=0.0)
    min_failing_edges: int = Field(default=2, ge=1, description="failing edges between the pair")
    min_unanswered: int = Field(default=4, ge=1, description="failed connects/segments across the pair")
    min_healthy_edges: int = Field(default=1, ge=0, description="healthy edges elsewhere, at least")
    lost_segment_ratio: float = Field(default=
        0.5, gt=0.0, le=1.0, description="retransmits/segments that count a live edge as failing"
    )


@dataclass(slots=True)
class _Pair:
    failing: int = 0
    healthy: int = 0
    lost: int = 0


def _verdict(t: EdgeTotals, lost_ratio: float) -> tuple[bool, bool, int]:
    """(failing, healthy, lost packets) for one edge's window."""
    through = t.handshakes + t.outcomes.get("established_closed", 0)
    stalled = t.segs_sent > 0 and t.segs_retrans >= t.segs_sent * lost_ratio
    lost = t.unanswered + (t.segs_retrans if stalled else 0)
    if through == 0 and lost > 0:
        return True, False, lost
    return False, through > 0 or (t.segs_sent > 0 and not stalled), lost


class PartitionDetector(TableDetector[PartitionConfig]):
    name = "network_partition"
    config_type = PartitionConfig

    def observe(self, table: EdgeTable, now: float) -> Iterator[Finding]:
        cfg = self.config
        pairs: dict[tuple[str, str], _Pair] = {}
        healthy_total = 0
        for w in table.active(now, cfg.window_seconds):
            t = w.totals(now, cfg.window_seconds)
            failing, healthy, lost = _verdict(t, cfg.lost_segment_ratio)
            healthy_total += healthy
            a, b = w.key.src.node, w.key.dst.node
            if not a or not b or a == b:
                continue
            pair = pairs.setdefault((min(a, b), max(a, b)), _Pair())
            pair.failing += failing
            pair.healthy += healthy
            pair.lost += lost
        for (a, b), p in sorted(pairs.items()):
            if p.healthy or p.failing < cfg.min_failing_edges or p.lost < cfg.min_unanswered:
                continue
            if healthy_total - p.healthy < cfg.min_healthy_edges:
                continue
            yield Finding(
                type=self.name, severity="critical", at=now,
                identity={"nodes": f"{a}|{b}"},
                labels={"src_node": a, "dst_node": b},
                summary=f"network partition between node {a} and node {b}",
                cause=f"all traffic between {a} and {b} fails ({p.failing} edges, {p.lost} "
                f"packets unanswered) while {healthy_total} other edges are healthy",
                evidence={"failing_edges": p.failing, "unanswered": p.lost,
                          "healthy_edges_elsewhere": healthy_total,
                          "window_seconds": cfg.window_seconds},
            )
