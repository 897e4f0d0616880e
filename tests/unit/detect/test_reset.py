from __future__ import annotations

from .helpers import Run, edge, healthy, of

T = "connection_reset"


def test_guards_below_at() -> None:
    assert of(Run().step([edge(reset_received=2)]), T) == []
    assert of(Run().step([edge(reset_received=3, established_closed=4)]), T) == []  # 0.43
    found = of(Run().step([edge(reset_received=3, established_closed=3)]), T)
    assert len(found) == 1 and found[0].severity == "warning"
    assert "cart:8080 aborted connections" in found[0].cause


def test_reset_sent_names_the_source() -> None:
    found = of(Run().step([edge(reset_sent=5)]), T)
    assert found[0].cause.startswith("shop/frontend aborted")
    assert found[0].severity == "critical"


def test_fin_closes_are_not_resets() -> None:
    run = Run()
    for _ in range(30):
        assert of(run.step([healthy(n=100)]), T) == []


def test_baseline_adapts_to_an_edge_that_often_resets() -> None:
    run = Run()
    for _ in range(20):
        run.step([edge(reset_received=4, established_closed=6)])  # 40 %
    assert of(run.step([edge(reset_received=5, established_closed=5)]), T) == []  # 50 %
    assert len(of(run.step([edge(reset_received=20)]), T)) == 1
