from __future__ import annotations

from kubepulse.model import EdgeKey, EdgeSample, Identity

from .helpers import Run, edge, healthy, of, pod

T = "network_partition"
A1, A2 = pod("web", "n1"), pod("api", "n1", n=2)
B1, B2 = pod("db", "n2"), pod("cache", "n2")
C1 = pod("queue", "n3")


def failing(src: Identity, dst: Identity) -> EdgeSample:
    return edge(EdgeKey(src, dst, 5432), attempts=2, syn_retransmits=2)


def test_pair_failing_while_others_healthy() -> None:
    run = Run()
    edges = [failing(A1, B1), failing(A2, B2), healthy(EdgeKey(A1, C1, 80))]
    found = of(run.step(edges), T)
    assert len(found) == 1
    assert found[0].labels == {"src_node": "n1", "dst_node": "n2"}
    assert "between n1 and n2" in found[0].cause


def test_direction_does_not_matter() -> None:
    edges = [failing(B1, A1), failing(A2, B2), healthy(EdgeKey(A1, C1, 80))]
    assert of(Run().step(edges), T)[0].identity == {"nodes": "n1|n2"}


def test_everything_failing_is_not_a_partition() -> None:
    assert of(Run().step([failing(A1, B1), failing(A2, B2), failing(A1, C1)]), T) == []


def test_one_healthy_edge_in_the_pair_means_no_partition() -> None:
    edges = [failing(A1, B1), failing(A2, B2), healthy(EdgeKey(A1, B2, 80)),
             healthy(EdgeKey(A1, C1, 80))]
    assert of(Run().step(edges), T) == []


def test_min_failing_edges_guard() -> None:
    assert of(Run().step([failing(A1, B1), healthy(EdgeKey(A1, C1, 80))]), T) == []


def test_stalled_live_connections_count_as_failing() -> None:
    stalled = edge(EdgeKey(A2, B2, 6379), segs_sent=100, segs_retrans=100, open_connections=3)
    found = of(Run().step([failing(A1, B1), stalled, healthy(EdgeKey(A1, C1, 80))]), T)
    assert len(found) == 1
