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


def _differ() -> DropDiffer:
    return DropDiffer(Resolver(), Scope(None), lambda code: "NETFILTER_DROP", classify)


def _total(d: DropDiffer, snap: np.ndarray) -> int:
    return sum(s.count for s in d.samples(snap))


def test_deltas_between_snapshots_and_unchanged_keys() -> None:
    d = _differ()
    assert _total(d, _snap([(40000, 5, 10 * S), (40001, 3, 10 * S)])) == 8
    # Unchanged for a long while: nothing new, and the rows are not even looked at.
    assert _total(d, _snap([(40000, 5, 10 * S), (40001, 3, 10 * S)])) == 0
    assert _total(d, _snap([(40000, 9, 20 * S), (40001, 3, 10 * S)])) == 4


def test_a_key_read_late_on_another_cpu_is_still_counted() -> None:
    d = _differ()
    d.samples(_snap([(40000, 5, 10 * S), (40001, 3, 10 * S)]))
    # 40001 changed, but its last_ns is a little older than the newest seen before.
    assert _total(d, _snap([(40000, 5, 10 * S), (40001, 7, 10 * S - 1000)])) == 4


def test_an_evicted_key_that_comes_back_counts_from_zero() -> None:
    d = _differ()
    d.samples(_snap([(40000, 50, 10 * S)]))
    assert _total(d, _snap([(40000, 2, 30 * S)])) == 2


def test_remembered_keys_stay_bounded() -> None:
    d = _differ()
    d.MAX_KEYS = 3
    d.samples(_snap([(40000 + i, 1, 10 * S) for i in range(5)]))
    d.samples(_snap([(50000, 1, 20 * S)]))  # the map evicted the five, one new key
    assert len(d._prev) <= 2
    assert _total(d, _snap([(50000, 4, 30 * S)])) == 3
