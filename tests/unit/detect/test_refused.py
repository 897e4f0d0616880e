from __future__ import annotations

from .helpers import EDGE, Run, edge, healthy, of

T = "connection_refused"


def test_healthy_fin_closes_and_churn_raise_nothing() -> None:
    run = Run()
    found = run.steps(60, lambda: {"edges": [healthy(n=50)]})
    assert found == []


def test_one_failure_out_of_two_is_not_an_incident() -> None:
    run = Run()
    assert of(run.step([edge(attempts=2, handshakes=1, refused=1)]), T) == []


def test_min_refused_guard_just_below_and_at() -> None:
    below = Run()
    assert of(below.step([edge(attempts=2, refused=2)]), T) == []
    at = Run()
    found = of(at.step([edge(attempts=3, refused=3)]), T)
    assert len(found) == 1
    assert found[0].cause == "nothing listening on cart:8080"
    assert found[0].severity == "critical"


def test_ratio_guard_just_below_at_and_above() -> None:
    assert of(Run().step([edge(attempts=11, handshakes=6, refused=5)]), T) == []  # 0.45
    at = of(Run().step([edge(attempts=10, handshakes=5, refused=5)]), T)  # 0.5
    assert len(at) == 1 and at[0].severity == "warning"
    assert "some backends" in at[0].cause


def test_fires_on_the_first_interval_that_passes_the_guards() -> None:
    run = Run()
    assert of(run.step([edge(attempts=2, refused=2)]), T) == []
    assert len(of(run.step([edge(attempts=2, refused=2)]), T)) == 1  # 4 in the 3 s window


def test_window_forgets_old_failures() -> None:
    run = Run()
    run.step([edge(attempts=2, refused=2)])
    for _ in range(3):
        run.step([healthy()])
    assert of(run.step([edge(attempts=2, refused=2)]), T) == []


def test_baseline_raises_the_bar_for_a_normally_failing_edge() -> None:
    run = Run()
    for _ in range(20):  # 40 % refused: below the floor, so it teaches the baseline
        assert of(run.step([edge(attempts=10, handshakes=6, refused=4)]), T) == []
    # 55 % would fire on a fresh edge, but is within this edge's mean + margin (0.6)
    assert len(of(Run().step([edge(attempts=20, handshakes=9, refused=11)]), T)) == 1
    assert of(run.step([edge(attempts=20, handshakes=9, refused=11)]), T) == []
    found = of(run.step([edge(attempts=10, refused=10)]), T)
    assert len(found) == 1
    assert found[0].evidence["baseline"]["windows"] >= 10


def test_labels_and_identity_are_stable_names() -> None:
    f = of(Run().step([edge(attempts=5, refused=5)]), T)[0]
    assert f.identity == {"src": "shop/frontend", "dst": "shop/cart", "dst_service": "shop/cart",
                          "dst_port": "8080"}
    assert f.labels["src_pod"] == "frontend-1" and f.labels["dst_service"] == "cart"
    assert f.labels["node"] == "n1" and "10." not in "".join(f.identity.values())
    assert EDGE.dst_port == 8080


def test_disabled_detector_is_not_built() -> None:
    run = Run(connection_refused={"enabled": False})
    assert of(run.step([edge(attempts=5, refused=5)]), T) == []
