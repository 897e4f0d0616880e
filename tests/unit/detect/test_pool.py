from __future__ import annotations

from kubepulse.model import Finding

from .helpers import Run, edge, healthy, of

T = "conn_pool_exhaustion"


def climb(run: Run, start: int, stop: int, step: int) -> list[Finding]:
    out: list[Finding] = []
    for n in range(start, stop, step):
        out += run.step([edge(attempts=step, handshakes=step, open_connections=n)])
    return out


def test_climb_then_failures_fires() -> None:
    run = Run()
    assert of(climb(run, 5, 50, 5), T) == []
    found = of(run.step([edge(attempts=5, refused=3, open_connections=50)]), T)
    assert len(found) == 1
    assert "connection pool or server connection limit" in found[0].cause
    assert found[0].evidence["open"] == 50


def test_high_gauge_without_failures_is_silent() -> None:
    run = Run()
    assert of(climb(run, 5, 100, 5), T) == []
    assert of(run.step([healthy(n=5, open_connections=100)]), T) == []


def test_failures_without_a_climb_is_silent() -> None:
    run = Run()
    for _ in range(10):
        run.step([healthy(open_connections=30)])
    assert of(run.step([edge(attempts=5, refused=5, open_connections=30)]), T) == []


def test_guards_below_min_open_and_min_failures() -> None:
    run = Run()
    climb(run, 1, 19, 2)
    assert of(run.step([edge(attempts=3, refused=3, open_connections=19)]), T) == []
    run2 = Run()
    climb(run2, 5, 50, 5)
    assert of(run2.step([edge(attempts=1, refused=1, open_connections=50)]), T) == []
    assert of(run2.step([edge(attempts=1, refused=1, open_connections=50)]), T) != []


def test_local_port_exhaustion_cause() -> None:
    run = Run()
    climb(run, 5, 50, 5)
    found = of(run.step([edge(attempts=5, local_error=5, open_connections=50)]), T)
    assert "ran out of local ports" in found[0].cause


def test_warm_baseline_ignores_a_normally_large_pool() -> None:
    run = Run()
    for _ in range(20):
        run.step([healthy(open_connections=200)])
    found = run.step([edge(attempts=3, refused=3, open_connections=210)])
    assert of(found, T) == []


def test_unserved_connections_after_a_climb_fire_with_a_server_limit_cause() -> None:
    # The lab's pool_exhaustion: the server at its limit queues new connections and never
    # answers; the client's connects succeed, it sends, hears nothing, closes with FIN.
    run = Run()
    climb(run, 5, 60, 5)
    found = of(run.step([edge(attempts=4, handshakes=4, established_closed=4, no_reply=4,
                              open_connections=64)]), T)
    assert len(found) == 1
    assert "never answered" in found[0].cause
    assert found[0].evidence["no_reply"] == 4


def test_unserved_connections_without_a_climb_are_silent() -> None:
    # A victim of someone else's leak: its own gauge is flat.
    run = Run()
    for _ in range(12):
        run.step([healthy(open_connections=2)])
    assert of(run.step([edge(attempts=4, established_closed=4, no_reply=4,
                             open_connections=2)]), T) == []
