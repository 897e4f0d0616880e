"""Which firing alert explains (and so suppresses) another.

A source explains a target when the source's identity is part of the target's (same edge, or
same destination for a server-side source such as listen_overflow), or, for network_partition,
when the target's edge runs between the partitioned node pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubepulse.detect.config import InhibitRule


@dataclass(frozen=True, slots=True)
class Subject:
    """What inhibition needs to know about an alert, open or about to open."""

    fingerprint: str
    type: str
    identity: dict[str, str]
    labels: dict[str, str]


def explains(source: Subject, target: Subject) -> bool:
    if source.type == "network_partition":
        pair = {source.labels.get("src_node"), source.labels.get("dst_node")}
        ends = {target.labels.get("src_node"), target.labels.get("dst_node")}
        return None not in ends and ends == pair
    return all(target.identity.get(k) == v for k, v in source.identity.items())


def inhibitor(
    target: Subject, sources: Iterable[Subject], rules: Iterable[InhibitRule]
) -> Subject | None:
    """The first firing source that inhibits ``target`` under ``rules``, if any."""
    kinds = {r.source for r in rules if target.type in r.targets}
    if not kinds:
        return None
    for src in sources:
        if src.type in kinds and src.fingerprint != target.fingerprint and explains(src, target):
            return src
    return None


def hold_for(alert_type: str, rules: Iterable[InhibitRule]) -> float:
    """How long a new alert of this type waits for a source that would explain it."""
    return max((r.hold_seconds for r in rules if alert_type in r.targets), default=0.0)
