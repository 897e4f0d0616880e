from __future__ import annotations

from kubepulse.detect import classify_reason
from kubepulse.model import EdgeKey, Finding

from .helpers import CART, EDGE, Run, drop, edge, healthy, of, pod

POLICY, OVERFLOW, OTHER = "policy_denied", "listen_overflow", "packet_drop"


def types(found: list[Finding]) -> list[str]:
    return sorted(f.type for f in found)


def test_classification_of_reason_names() -> None:
    assert classify_reason("NETFILTER_DROP") == "policy"
    assert classify_reason("SKB_DROP_REASON_TC_INGRESS") == "policy"
    assert classify_reason("TCP_LISTEN_OVERFLOW") == "listen_overflow"
    assert classify_reason("NO_SOCKET") == "other"


def test_policy_denied_fires_at_two_drops() -> None:
    assert types(Run().step(drops=[drop("NETFILTER_DROP", 1)])) == []
    found = Run().step(drops=[drop("NETFILTER_DROP", 2)])
    assert types(found) == [POLICY]
    assert found[0].cause == "dropped by a packet filter (NetworkPolicy?): 2 NETFILTER_DROP drops"


def test_policy_drops_a_second_apart_fire_within_two_seconds() -> None:
    run = Run()
    assert run.step(drops=[drop("NETFILTER_DROP", 1)]) == []
    assert types(run.step(drops=[drop("NETFILTER_DROP", 1)])) == [POLICY]


def test_policy_denial_right_after_healthy_traffic_fires_at_once() -> None:
    # Healthy connects a second earlier are still in the 5 s window; only the newest second
    # decides whether connects get through.
    run = Run()
    for _ in range(4):
        run.step([healthy(n=20)])
    found = run.step([edge(attempts=20, syn_retransmits=20)],
                     drops=[drop("NETFILTER_DROP", 20)])
    assert types(of(found, POLICY)) == [POLICY]


def test_filter_drops_on_an_edge_whose_connects_get_through_are_not_a_denial() -> None:
    # 30 % loss emulated by a filter: most connects of the newest second succeed.
    run = Run()
    for _ in range(6):
        found = run.step([healthy(n=14), edge(attempts=6, syn_retransmits=6)],
                         drops=[drop("NETFILTER_DROP", 6)])
        assert of(found, POLICY) == []


def test_packet_drop_floor_and_classes_do_not_mix() -> None:
    assert types(Run().step(drops=[drop("NO_SOCKET", 9)])) == []
    found = Run().step(drops=[drop("NO_SOCKET", 10), drop("NETFILTER_DROP", 1)])
    assert types(found) == [OTHER]
    assert found[0].evidence["by_reason"] == {"NO_SOCKET": 10}


def test_drop_baseline_adapts() -> None:
    run = Run()
    for i in range(20):  # ~7 per 5 s window: below the floor of 10, so it is learned
        assert run.step(drops=[drop("NO_SOCKET", 1 + i % 2)]) == []
    # 20 more would fire on a fresh edge, but this edge's threshold is 5x its mean
    assert types(Run().step(drops=[drop("NO_SOCKET", 20)])) == [OTHER]
    assert types(run.step(drops=[drop("NO_SOCKET", 20)])) == []
    assert types(run.step(drops=[drop("NO_SOCKET", 200)])) == [OTHER]


def test_listen_overflow_is_one_alert_per_server() -> None:
    other = EdgeKey(pod("checkout", "n3"), CART, 8080)
    found = Run().step(drops=[drop("TCP_LISTEN_OVERFLOW", 3),
                              drop("TCP_LISTEN_OVERFLOW", 3, key=other)])
    assert types(found) == [OVERFLOW, OVERFLOW]
    assert found[0].identity == found[1].identity
    assert "src_workload" not in found[0].labels
    assert found[0].cause.startswith("accept queue full on cart:8080")
    assert EDGE.dst == other.dst


def test_listen_overflow_below_floor() -> None:
    assert types(Run().step(drops=[drop("TCP_LISTEN_OVERFLOW", 2)])) == []
