from __future__ import annotations

from .helpers import Run, drop, edge, of

T = "packet_loss"


def test_min_segments_guard() -> None:
    assert of(Run().step([edge(segs_sent=49, segs_retrans=20)]), T) == []
    assert len(of(Run().step([edge(segs_sent=50, segs_retrans=20)]), T)) == 1


def test_min_retransmits_and_ratio_guards() -> None:
    assert of(Run().step([edge(segs_sent=10_000, segs_retrans=9)]), T) == []
    assert of(Run().step([edge(segs_sent=1000, segs_retrans=19)]), T) == []  # 1.9 %
    assert len(of(Run().step([edge(segs_sent=1000, segs_retrans=20)]), T)) == 1  # 2 %


def test_baseline_keeps_a_lossy_edge_quiet_until_it_gets_much_worse() -> None:
    run = Run()
    for _ in range(20):
        run.step([edge(segs_sent=1000, segs_retrans=15)])  # 1.5 %: below the floor, learned
    assert of(run.step([edge(segs_sent=1000, segs_retrans=40)]), T) == []  # 4 % < 3x1.5 %
    found = of(run.step([edge(segs_sent=1000, segs_retrans=300)]), T)
    assert len(found) == 1 and "packets lost on the path" in found[0].cause


def test_drops_on_the_edge_explain_the_loss() -> None:
    found = of(Run().step([edge(segs_sent=1000, segs_retrans=100)],
                          drops=[drop("QDISC_DROP", 50)]), T)
    assert "QDISC_DROP" in found[0].cause
