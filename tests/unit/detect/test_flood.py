from __future__ import annotations

from kubepulse.model import EdgeKey

from .helpers import CART, FRONT, Run, edge, healthy, of, pod

T = "connection_flood"


def test_cold_source_judged_by_the_high_floor() -> None:
    assert of(Run().step([edge(attempts=999)]), T) == []  # 499.5/s over the 2 s window
    found = of(Run().step([edge(attempts=1000)]), T)
    assert len(found) == 1 and found[0].identity == {"src": "shop/frontend"}
    assert found[0].labels["dst_service"] == "cart"  # one destination: the edge's labels


def test_warm_baseline_lowers_the_floor_but_needs_a_multiple() -> None:
    run = Run()
    for _ in range(30):
        assert of(run.step([healthy(n=20)]), T) == []
    assert of(run.step([healthy(n=60)]), T) == []  # 40/s over 2 s: under 5x baseline (100)
    found = of(run.step([healthy(n=400)]), T)
    assert len(found) == 1


def test_high_steady_churn_is_not_a_flood() -> None:
    run = Run()
    for _ in range(60):
        assert of(run.step([healthy(n=400)]), T) == []  # 400/s < cold floor, then learned


def test_flood_across_many_destinations_counts_per_source() -> None:
    edges = [edge(EdgeKey(FRONT, pod(f"svc{i}", "n2"), 80), attempts=100) for i in range(10)]
    found = of(Run().step(edges), T)
    assert len(found) == 1 and found[0].evidence["destinations"] == 10
    assert "dst_service" not in found[0].labels and CART.service == "cart"


def test_a_flood_that_ramps_up_over_half_second_ticks_still_fires() -> None:
    # Found on the lab: a 300/s burst over a 40/s baseline, seen through a 2 s sliding window
    # on 0.5 s ticks, ramps 40 -> 105 -> 170 -> 235 -> 300/s. The ramp's first ticks are
    # below the bar; if they were learned, mean and variance would chase the burst.
    run = Run()
    for _ in range(60):
        assert of(run.step([healthy(n=20)], dt=0.5), T) == []  # 40/s
    fired = []
    for _ in range(8):
        fired += of(run.step([healthy(n=150)], dt=0.5), T)  # 300/s
    assert fired, "the ramp taught the baseline the flood"
