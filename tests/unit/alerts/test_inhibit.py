from __future__ import annotations

from kubepulse.alerts import AlertManager

from .helpers import T0, alerts_config, finding

TMO, PART = "connection_timeout", "network_partition"


def test_partition_in_the_same_tick_inhibits_its_timeouts() -> None:
    mgr = AlertManager(alerts_config())
    out = []
    for t in range(5):
        now = T0 + t
        out += mgr.process([finding(TMO, at=now), finding(TMO, src="shop/api", at=now),
                            finding(PART, at=now)], now)
    assert [(a.type, a.state) for a in out] == [(PART, "firing")]
    assert mgr.stats.inhibited_total == 10  # two suppressed findings per tick


def test_partition_within_the_hold_inhibits_a_timeout_seen_first() -> None:
    mgr = AlertManager(alerts_config())
    assert mgr.process([finding(TMO)], T0) == []  # held 1 s, waiting for a partition
    out = mgr.process([finding(TMO, at=T0 + 0.5), finding(PART, at=T0 + 0.5)], T0 + 0.5)
    out += mgr.process([finding(TMO, at=T0 + 1), finding(PART, at=T0 + 1)], T0 + 1)
    assert [a.type for a in out] == [PART]


def test_timeout_fires_after_the_hold_without_a_partition() -> None:
    mgr = AlertManager(alerts_config())
    assert mgr.process([finding(TMO)], T0) == []
    out = mgr.process([finding(TMO, at=T0 + 1)], T0 + 1)
    assert [a.type for a in out] == [TMO]
    assert out[0].starts_at == T0 and out[0].emitted_at == T0 + 1


def test_an_intermittent_held_finding_fires_when_its_hold_ends() -> None:
    # A signal near its threshold is found on some ticks, not all: once the hold is over it
    # fires (it started when first seen), with no need to be found again on that very tick.
    mgr = AlertManager(alerts_config())
    assert mgr.process([finding(TMO)], T0) == []
    out = mgr.process([], T0 + 1)
    assert [(a.type, a.starts_at, a.emitted_at) for a in out] == [(TMO, T0, T0 + 1)]


def test_loss_is_not_held_for_a_partition() -> None:
    mgr = AlertManager(alerts_config())
    assert [a.type for a in mgr.process([finding("packet_loss")], T0)] == ["packet_loss"]


def test_firing_timeout_is_closed_when_a_partition_explains_it() -> None:
    mgr = AlertManager(alerts_config())
    mgr.process([finding(TMO)], T0)
    fired = mgr.process([finding(TMO, at=T0 + 1)], T0 + 1)
    out = mgr.process([finding(TMO, at=T0 + 2), finding(PART, at=T0 + 2)], T0 + 2)
    out += mgr.process([finding(TMO, at=T0 + 3), finding(PART, at=T0 + 3)], T0 + 3)
    assert [(a.type, a.state) for a in out] == [(TMO, "resolved"), (PART, "firing")]
    assert out[0].inhibited_by == out[1].fingerprint
    assert out[0].fingerprint == fired[0].fingerprint


def test_timeouts_of_another_node_pair_still_fire() -> None:
    mgr = AlertManager(alerts_config())
    out = []
    for t in range(3):
        now = T0 + t
        out += mgr.process([finding(TMO, nodes=("n1", "n3"), at=now),
                            finding(PART, nodes=("n2", "n1"), at=now)], now)
    assert sorted(a.type for a in out) == [TMO, PART]


def test_pool_exhaustion_inhibits_refused_on_the_same_edge_only() -> None:
    mgr = AlertManager(alerts_config())
    out = mgr.process([finding("conn_pool_exhaustion"), finding("connection_refused"),
                       finding("connection_refused", dst="shop/other")], T0)
    assert sorted((a.type, a.labels["dst_workload"]) for a in out) == [
        ("conn_pool_exhaustion", "cart"), ("connection_refused", "other")]


def test_no_rules_no_inhibition() -> None:
    mgr = AlertManager(alerts_config(inhibit=[]))
    out = mgr.process([finding(TMO), finding(PART)], T0)
    assert sorted(a.type for a in out) == [TMO, PART]
