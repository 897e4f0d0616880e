from __future__ import annotations

from collections.abc import Callable

from kubepulse.alerts import AlertManager, fingerprint
from kubepulse.model import Alert, Finding

from .helpers import T0, alerts_config, finding


def run(mgr: AlertManager, ticks: range,
        make: Callable[[float], list[Finding]] | None = None) -> list[Alert]:
    out: list[Alert] = []
    for t in ticks:
        out += mgr.process(make(T0 + t) if make else [], T0 + t)
    return out


def test_dedupe_fires_once_and_keeps_starts_at() -> None:
    mgr = AlertManager(alerts_config())
    out = run(mgr, range(10), lambda now: [finding(at=now), finding(at=now, severity="warning")])
    assert [a.state for a in out] == ["firing"]
    assert out[0].starts_at == T0 and out[0].ends_at is None
    assert out[0].fingerprint == fingerprint("connection_refused", finding().identity)
    assert mgr.stats.deduped_total == 9


def test_fingerprint_ignores_evidence_and_labels_but_not_type_or_identity() -> None:
    a, b = finding(count=1), finding(count=99, severity="warning")
    assert fingerprint(a.type, a.identity) == fingerprint(b.type, b.identity)
    assert fingerprint("connection_reset", a.identity) != fingerprint(a.type, a.identity)
    c = finding(dst="shop/other")
    assert fingerprint(c.type, c.identity) != fingerprint(a.type, a.identity)


def test_resolves_after_quiet_period_exactly_once() -> None:
    mgr = AlertManager(alerts_config(resolve_after_seconds=10))
    run(mgr, range(3), lambda now: [finding(at=now)])  # last seen at T0+2
    assert run(mgr, range(3, 12)) == []  # 9 s quiet
    out = run(mgr, range(12, 30))
    assert [a.state for a in out] == ["resolved"]
    assert out[0].ends_at == T0 + 2 and out[0].emitted_at == T0 + 12
    assert out[0].starts_at == T0


def test_evidence_of_the_resolve_is_the_newest() -> None:
    mgr = AlertManager(alerts_config(resolve_after_seconds=5))
    run(mgr, range(3), lambda now: [finding(at=now, n=int(now - T0))])
    out = run(mgr, range(3, 10))
    assert out[0].evidence == {"n": 2}


def test_flapping_alert_is_marked_and_held_longer() -> None:
    mgr = AlertManager(alerts_config(resolve_after_seconds=2,
                                     flap={"max_transitions": 4, "resolve_multiplier": 5}))
    states: list[Alert] = []
    t = 0
    for _ in range(2):  # fire, resolve, fire, resolve: 4 transitions
        states += run(mgr, range(t, t + 1), lambda now: [finding(at=now)])
        states += run(mgr, range(t + 1, t + 4))
        t += 4
    assert [a.state for a in states] == ["firing", "resolved", "firing", "resolved"]
    assert states[-1].flapping
    refire = run(mgr, range(t, t + 1), lambda now: [finding(at=now)])
    assert refire[0].flapping
    assert run(mgr, range(t + 1, t + 10)) == []  # 2 s x 5 = 10 s quiet needed now
    assert [a.state for a in run(mgr, range(t + 10, t + 11))] == ["resolved"]


def test_new_episode_after_resolve_gets_new_starts_at_same_fingerprint() -> None:
    mgr = AlertManager(alerts_config(resolve_after_seconds=2))
    first = run(mgr, range(1), lambda now: [finding(at=now)])
    run(mgr, range(1, 5))
    second = run(mgr, range(100, 101), lambda now: [finding(at=now)])
    assert second[0].fingerprint == first[0].fingerprint
    assert second[0].starts_at == T0 + 100
