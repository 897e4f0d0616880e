"""Engine -> manager -> JSONL, the way the agent loop will wire them, on a fake clock."""

from __future__ import annotations

import json
from pathlib import Path

from kubepulse.alerts import AlertManager, JsonlSink, Sinks
from kubepulse.detect import DetectionEngine, KubepulseConfig
from kubepulse.model import Alert, EdgeKey, EdgeSample, Identity

from .helpers import T0

SRC = Identity("10.1.0.5", "shop", "frontend", "frontend-1", "n1", kind="pod")
DST = Identity("10.1.1.9", "shop", "cart", "cart-1", "n2", service="cart", kind="pod")
KEY = EdgeKey(SRC, DST, 8080)


def ok() -> EdgeSample:
    return EdgeSample(KEY, {"established_closed": 5}, attempts=5, handshakes=5, segs_sent=100)


def down() -> EdgeSample:
    return EdgeSample(KEY, {"refused": 5}, attempts=5)


def unanswered() -> EdgeSample:
    return EdgeSample(KEY, attempts=2, syn_retransmits=2)


def drive(ticks: list[EdgeSample], path: Path) -> list[Alert]:
    cfg = KubepulseConfig()
    engine, mgr = DetectionEngine(cfg), AlertManager(cfg.alerts)
    sinks = Sinks([JsonlSink(path)])
    out: list[Alert] = []
    for i, sample in enumerate(ticks):
        now = T0 + i * 0.5
        changes = mgr.process(engine.step(now, [sample]), now)
        sinks.emit(changes)
        out += changes
    sinks.close()
    return out


def test_refused_fault_fires_on_the_first_tick_and_resolves(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    out = drive([ok()] * 40 + [down()] * 10 + [ok()] * 60, path)
    assert [(a.type, a.state) for a in out] == [("connection_refused", "firing"),
                                                  ("connection_refused", "resolved")]
    assert out[0].emitted_at == T0 + 40 * 0.5  # detected on the fault's first tick
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["cause"] == "nothing listening on cart:8080"


def test_timeout_fault_fires_within_target_despite_the_partition_hold(tmp_path: Path) -> None:
    out = drive([ok()] * 40 + [unanswered()] * 10, tmp_path / "a.jsonl")
    assert [a.type for a in out] == ["connection_timeout"]
    assert out[0].emitted_at - (T0 + 40 * 0.5) <= 2.0
