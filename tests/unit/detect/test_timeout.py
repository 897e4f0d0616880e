from __future__ import annotations

from .helpers import Run, drop, edge, healthy, of

T = "connection_timeout"


def test_early_syn_retransmits_fire_before_the_final_timeout() -> None:
    run = Run()
    assert of(run.step([edge(attempts=2, syn_retransmits=2)]), T) == []
    found = of(run.step([edge(attempts=1, syn_retransmits=1)]), T)
    assert len(found) == 1
    assert found[0].cause.startswith("no answer from cart:8080")


def test_timeout_after_syn_retransmit_is_not_counted_twice() -> None:
    run = Run()
    run.step([edge(attempts=2, syn_retransmits=2)])
    # The same two connections now end as timeouts: still 2 unanswered, below min 3.
    assert of(run.step([edge(timeout=2)]), T) == []


def test_ratio_guard_and_healthy_retransmits() -> None:
    # 3 SYN retransmits among 7 connects (0.43) is loss, not an unreachable peer.
    assert of(Run().step([edge(attempts=7, handshakes=7, syn_retransmits=3)]), T) == []
    assert len(of(Run().step([edge(attempts=6, handshakes=3, syn_retransmits=3)]), T)) == 1


def test_policy_drops_on_the_edge_name_the_packet_filter() -> None:
    found = of(Run().step([edge(attempts=3, syn_retransmits=3)],
                          drops=[drop("NETFILTER_DROP", 3)]), T)
    assert found[0].cause.startswith("dropped by a packet filter (NetworkPolicy?)")
    assert found[0].evidence["drops"] == {"NETFILTER_DROP": 3}


def test_unreachable_cause() -> None:
    found = of(Run().step([edge(attempts=3, unreachable=3)]), T)
    assert "unreachable" in found[0].cause


def test_listen_overflow_cause() -> None:
    found = of(Run().step([edge(attempts=4, syn_retransmits=4)],
                          drops=[drop("TCP_LISTEN_OVERFLOW", 4)]), T)
    assert found[0].cause.startswith("accept queue full on cart:8080")


def test_keepalive_only_traffic_is_silent() -> None:
    run = Run()
    for _ in range(30):
        assert run.step([healthy(n=0, segs_sent=20, open_connections=3)]) == []
