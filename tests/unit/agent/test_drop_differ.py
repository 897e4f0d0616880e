"""DropDiffer: cumulative in-kernel drop counters -> per-tick samples, looking only at keys
that changed since the previous snapshot."""

from __future__ import annotations

import numpy as np

from kubepulse.agent.aggregate import DropDiffer
from kubepulse.enrich.resolver import Resolver, Scope
from kubepulse.probes.drops import SNAPSHOT_DTYPE, classify

S = 1_000_000_000


def _snap(rows: list[tuple[int, int, int]]) -> np.ndarray:
    """(client port, packets, last_ns) rows of NETFILTER drops 10.0.0.1:port -> 10.0.0.2:80."""
    out = np.zeros(len(rows), dtype=SNAPSHOT_DTYPE)
    for i, (sport, packets, last_ns) in enumerate(rows):
        out[i]["reason"] = 12
        out[i]["family"] = 4
        out[i]["protocol"] = 6
        out[i]["saddr"][:4] = (10, 0, 0, 1)
        out[i]["daddr"][:4] = (10, 0, 0, 2)
        out[i]["sport"], out[i]["dport"] = sport, 80
        out[i]["packets"], out[i]["last_ns"] = packets, last_ns
    return out


class Clock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def _differ(clock: Clock | None = None) -> DropDiffer:
    return DropDiffer(Resolver(), Scope(None), lambda code: "NETFILTER_DROP", classify,
                      clock or Clock())


def _total(d: DropDiffer, snap: np.ndarray, at: int | None = None) -> int:
    if at is not None:
        d.clock_ns.ns = at  # type: ignore[attr-defined]
    return sum(s.count for s in d.samples(snap))


def test_deltas_between_snapshots_and_unchanged_keys() -> None:
    d = _differ()
    assert _total(d, _snap([(40000, 5, 10 * S), (40001, 3, 10 * S)]), at=10 * S) == 8
    assert _total(d, _snap([(40000, 9, 11 * S), (40001, 3, 10 * S)]), at=11 * S) == 4


def test_a_quiet_node_looks_at_no_key() -> None:
    d = _differ()
    assert _total(d, _snap([(40000, 5, 10 * S)]), at=10 * S) == 5
    assert _total(d, _snap([(40000, 5, 10 * S)]), at=20 * S) == 0
    # Long after the storm the key is older than the margin and is not even looked at: a
    # count that (impossibly) moved without its last_ns would not be seen.
    assert _total(d, _snap([(40000, 9, 10 * S)]), at=21 * S) == 0


def test_a_key_read_late_on_another_cpu_is_still_counted() -> None:
    d = _differ()
    _total(d, _snap([(40000, 5, 10 * S), (40001, 3, 10 * S)]), at=10 * S)
    # 40001 changed just before the previous snapshot was taken, but was read without it.
    assert _total(d, _snap([(40000, 5, 10 * S), (40001, 7, 10 * S - 1000)]),
                  at=11 * S) == 4


def test_an_evicted_key_that_comes_back_counts_from_zero() -> None:
    d = _differ()
    _total(d, _snap([(40000, 50, 10 * S)]), at=10 * S)
    assert _total(d, _snap([(40000, 2, 11 * S)]), at=11 * S) == 2


def test_remembered_keys_stay_bounded() -> None:
    d = _differ()
    d.MAX_KEYS = 3
    _total(d, _snap([(40000 + i, 1, 10 * S) for i in range(5)]), at=10 * S)
    _total(d, _snap([(50000, 1, 11 * S)]), at=11 * S)  # the map evicted the five; one new key
    assert len(d._prev) <= 2
    assert _total(d, _snap([(50000, 4, 12 * S)]), at=12 * S) == 3
