"""Synthetic identities, samples and a fake clock for detector tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kubepulse.detect import DetectionEngine, parse_config
from kubepulse.model import (
    DnsSample,
    DropSample,
    EdgeKey,
    EdgeSample,
    Finding,
    Identity,
    LatencyStat,
)


def pod(workload: str, node: str = "n1", ns: str = "shop", n: int = 1) -> Identity:
    return Identity(address=f"10.{len(node)}.{n}.{len(workload)}", namespace=ns,
                    workload=workload, pod=f"{workload}-{n}", node=node, kind="pod")


FRONT = pod("frontend", "n1")
CART = Identity(address="10.96.0.10", namespace="shop", workload="cart", pod="cart-1",
                node="n2", service="cart", kind="pod")
EDGE = EdgeKey(FRONT, CART, 8080)


def edge(key: EdgeKey = EDGE, **kw: Any) -> EdgeSample:
    outcomes = {k: kw.pop(k) for k in list(kw) if k in OUTCOME_ARGS}
    return EdgeSample(edge=key, outcomes=outcomes, **kw)


OUTCOME_ARGS = {"established_closed", "refused", "timeout", "unreachable", "reset_sent",
                "reset_received", "local_error", "aborted_other"}


def healthy(key: EdgeKey = EDGE, n: int = 10, **kw: Any) -> EdgeSample:
    """n connects that succeed and close with FIN, plus keep-alive segments."""
    base: dict[str, Any] = {
        "attempts": n, "handshakes": n, "established_closed": n, "segs_sent": 50 * n,
        "segs_retrans": 0, "bytes_sent": 5000 * n,
        "connect_latency": LatencyStat(0.001 * n, n, 0.002), "open_connections": 5,
    }
    base.update(kw)
    return edge(key, **base)


def drop(reason: str, count: int, key: EdgeKey = EDGE, cls: str | None = None) -> DropSample:
    from kubepulse.detect import classify_reason

    return DropSample(edge=key, reason=reason, drop_class=cls or classify_reason(reason),  # type: ignore[arg-type]
                      count=count)


def dns(client: Identity = FRONT, **kw: Any) -> DnsSample:
    return DnsSample(client=client, server=kw.pop("server", "10.96.0.53"), **kw)


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def tick(self, dt: float = 1.0) -> float:
        self.now += dt
        return self.now


def engine(**detectors: dict[str, Any]) -> DetectionEngine:
    return DetectionEngine(parse_config({"detectors": detectors}, "test"))


class Run:
    """An engine on a fake clock; each ``step`` is one 1 s interval."""

    def __init__(self, **detectors: dict[str, Any]) -> None:
        self.engine = engine(**detectors)
        self.clock = Clock()

    def step(self, edges: Iterable[EdgeSample] = (), dns: Iterable[DnsSample] = (),
             drops: Iterable[DropSample] = (), dt: float = 1.0) -> list[Finding]:
        return self.engine.step(self.clock.tick(dt), list(edges), list(dns), list(drops))

    def steps(self, n: int, make: Callable[[], dict[str, Any]]) -> list[Finding]:
        out: list[Finding] = []
        for _ in range(n):
            out += self.step(**make())
        return out


def of(findings: Iterable[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.type == kind]
