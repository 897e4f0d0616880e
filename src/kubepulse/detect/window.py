"""Sliding windows per edge, per source and per DNS client, in LRU tables with a hard cap.

Each window keeps the last ``horizon_seconds`` of per-interval samples. Detectors ask for totals
over their own (shorter) window; totals are cached per tick, so thirteen detectors cost one sum.
Baselines live in the window they describe, so evicting an edge frees its history too.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kubepulse.model import (
    OUTCOMES,
    DnsSample,
    DropSample,
    EdgeKey,
    EdgeSample,
    Identity,
    LatencyStat,
)

from .stats import Ewma

# The short window every ratio detector also judges, so a fault fires before it outweighs the
# healthy traffic still in the long window, and which gates learning (a ramp is not normal).
FAST_SECONDS = 1.0

K = TypeVar("K")
W = TypeVar("W")


@dataclass(slots=True)
class EdgeTotals:
    """An edge's sums over one window."""

    outcomes: dict[str, int]
    syn_retransmits: int
    attempts: int
    handshakes: int
    segs_sent: int
    segs_retrans: int
    bytes_sent: int
    connect_latency: LatencyStat
    srtt: LatencyStat
    open_now: int | None  # the latest gauge
    open_min: int | None  # the lowest gauge seen in the window
    drops: dict[tuple[str, str], int]  # (drop_class, reason) -> count
    intervals: int
    no_reply: int = 0  # outbound connections closed after sending, with nothing received

    def failed(self, *outcomes: str) -> int:
        return sum(self.outcomes.get(o, 0) for o in outcomes)

    def drops_of(self, drop_class: str) -> dict[str, int]:
        return {r: n for (c, r), n in self.drops.items() if c == drop_class}

    @property
    def closes(self) -> int:
        return sum(self.outcomes.values())

    @property
    def unanswered(self) -> int:
        """SYNs that got no answer: early warnings or final timeouts, never counted twice."""
        return max(self.syn_retransmits, self.outcomes.get("timeout", 0)) + self.outcomes.get(
            "unreachable", 0
        )


def _sum_edges(samples: list[EdgeSample], drops: list[DropSample]) -> EdgeTotals:
    outcomes = dict.fromkeys(OUTCOMES, 0)
    syn = att = hs = sent = retr = nbytes = silent = 0
    lat = srtt = LatencyStat()
    opens = [s.open_connections for s in samples if s.open_connections is not None]
    for s in samples:
        for name, n in s.outcomes.items():
            outcomes[name] = outcomes.get(name, 0) + n
        syn += s.syn_retransmits
        att += s.attempts
        hs += s.handshakes
        sent += s.segs_sent
        retr += s.segs_retrans
        nbytes += s.bytes_sent
        silent += s.no_reply
        lat = lat + s.connect_latency
        srtt = srtt + s.srtt
    by_reason: dict[tuple[str, str], int] = {}
    for d in drops:
        key = (d.drop_class, d.reason)
        by_reason[key] = by_reason.get(key, 0) + d.count
    return EdgeTotals(outcomes, syn, att, hs, sent, retr, nbytes, lat, srtt,
                      opens[-1] if opens else None, min(opens) if opens else None,
                      by_reason, len(samples), silent)


@dataclass(slots=True)
class EdgeWindow:
    key: EdgeKey
    samples: deque[tuple[float, EdgeSample]] = field(default_factory=deque)
    drops: deque[tuple[float, DropSample]] = field(default_factory=deque)
    baselines: dict[str, Ewma] = field(default_factory=dict)
    first_seen: float = -1.0
    last_seen: float = 0.0
    _cache: dict[float, EdgeTotals] = field(default_factory=dict)
    _cache_at: float = -1.0

    def totals(self, now: float, seconds: float) -> EdgeTotals:
        if self._cache_at != now:
            self._cache.clear()
            self._cache_at = now
        hit = self._cache.get(seconds)
        if hit is None:
            since = now - seconds
            hit = _sum_edges([s for t, s in self.samples if t > since],
                             [d for t, d in self.drops if t > since])
            self._cache[seconds] = hit
        return hit

    def latest(self, now: float) -> EdgeTotals:
        """The newest second alone: a fault shows here before it dominates the window."""
        return self.totals(now, FAST_SECONDS)

    def baseline(self, name: str) -> Ewma:
        return self.baselines.setdefault(name, Ewma())

    def full(self, now: float, seconds: float) -> bool:
        """True once the edge is older than ``seconds``: its window holds a whole span, so a
        count over it is comparable with the baseline (partial windows are not learned)."""
        return 0.0 <= self.first_seen <= now - seconds

    def prune(self, now: float, horizon: float) -> None:
        for q in (self.samples, self.drops):
            while q and q[0][0] <= now - horizon:
                q.popleft()


@dataclass(slots=True)
class SourceWindow:
    """New-connection attempts of one source across all its destinations."""

    src: Identity
    attempts: deque[tuple[float, int]] = field(default_factory=deque)
    peers: deque[tuple[float, EdgeKey]] = field(default_factory=deque)
    baselines: dict[str, Ewma] = field(default_factory=dict)
    first_seen: float = -1.0
    last_seen: float = 0.0

    def full(self, now: float, seconds: float) -> bool:
        """True once the source is older than ``seconds``: its window holds a whole span."""
        return 0.0 <= self.first_seen <= now - seconds

    def attempts_in(self, now: float, seconds: float) -> int:
        return sum(n for t, n in self.attempts if t > now - seconds)

    def peers_in(self, now: float, seconds: float) -> set[EdgeKey]:
        return {k for t, k in self.peers if t > now - seconds}

    def baseline(self, name: str) -> Ewma:
        return self.baselines.setdefault(name, Ewma())

    def prune(self, now: float, horizon: float) -> None:
        for q in (self.attempts, self.peers):
            while q and q[0][0] <= now - horizon:
                q.popleft()


@dataclass(slots=True)
class DnsTotals:
    queries: int
    rcodes: dict[str, int]
    latency: LatencyStat
    timeouts: int
    servers: set[str]
    error_names: dict[tuple[str, str], int]
    intervals: int

    @property
    def answers(self) -> int:
        return sum(self.rcodes.values())


@dataclass(slots=True)
class DnsWindow:
    client: Identity
    samples: deque[tuple[float, DnsSample]] = field(default_factory=deque)
    baselines: dict[str, Ewma] = field(default_factory=dict)
    last_seen: float = 0.0

    def totals(self, now: float, seconds: float) -> DnsTotals:
        queries = timeouts = n = 0
        rcodes: dict[str, int] = {}
        lat = LatencyStat()
        servers: set[str] = set()
        names: dict[tuple[str, str], int] = {}
        for t, s in self.samples:
            if t <= now - seconds:
                continue
            n += 1
            queries += s.queries
            timeouts += s.timeouts
            lat = lat + s.latency
            for rc, c in s.rcodes.items():
                rcodes[rc] = rcodes.get(rc, 0) + c
            if s.server:
                servers.add(s.server)
            for qname, rc, c in s.error_names:
                names[(qname, rc)] = names.get((qname, rc), 0) + c
        return DnsTotals(queries, rcodes, lat, timeouts, servers, names, n)

    def baseline(self, name: str) -> Ewma:
        return self.baselines.setdefault(name, Ewma())

    def prune(self, now: float, horizon: float) -> None:
        while self.samples and self.samples[0][0] <= now - horizon:
            self.samples.popleft()


class LruTable(Generic[K, W]):
    """A dict with a hard cap: touching an entry makes it newest, the oldest goes first."""

    def __init__(self, cap: int, make: Callable[[K], W]) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        self.cap = cap
        self._make = make
        self._items: OrderedDict[K, W] = OrderedDict()
        self.evictions_total = 0

    def touch(self, key: K) -> W:
        item = self._items.get(key)
        if item is None:
            item = self._make(key)
            self._items[key] = item
            while len(self._items) > self.cap:
                self._items.popitem(last=False)
                self.evictions_total += 1
        else:
            self._items.move_to_end(key)
        return item

    def get(self, key: K) -> W | None:
        return self._items.get(key)

    def values(self) -> Iterator[W]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


class EdgeTable:
    """Every tracked edge, source and DNS client, bounded; fed once per tick."""

    def __init__(self, max_edges: int, max_dns_clients: int, horizon_seconds: float) -> None:
        self.horizon_seconds = horizon_seconds
        self.edges: LruTable[EdgeKey, EdgeWindow] = LruTable(max_edges, EdgeWindow)
        self.sources: LruTable[Identity, SourceWindow] = LruTable(max_edges, SourceWindow)
        self.dns: LruTable[Identity, DnsWindow] = LruTable(max_dns_clients, DnsWindow)

    def ingest(
        self,
        now: float,
        edges: list[EdgeSample],
        dns: list[DnsSample],
        drops: list[DropSample],
    ) -> tuple[set[EdgeKey], set[Identity], set[Identity]]:
        """Add one tick of samples. Returns what was touched: edges, sources, DNS clients."""
        touched_edges: set[EdgeKey] = set()
        touched_sources: set[Identity] = set()
        for s in edges:
            w = self.edges.touch(s.edge)
            if w.first_seen < 0:
                w.first_seen = now
            w.samples.append((now, s))
            w.last_seen = now
            touched_edges.add(s.edge)
            if s.attempts:
                src = self.sources.touch(s.edge.src)
                if src.first_seen < 0:
                    src.first_seen = now
                src.attempts.append((now, s.attempts))
                src.peers.append((now, s.edge))
                src.last_seen = now
                touched_sources.add(s.edge.src)
        for d in drops:
            w = self.edges.touch(d.edge)
            if w.first_seen < 0:
                w.first_seen = now
            w.drops.append((now, d))
            w.last_seen = now
            touched_edges.add(d.edge)
        touched_dns: set[Identity] = set()
        for q in dns:
            c = self.dns.touch(q.client)
            c.samples.append((now, q))
            c.last_seen = now
            touched_dns.add(q.client)
        # A tick larger than the cap evicts some of its own entries: report only the survivors.
        touched_edges = {k for k in touched_edges if k in self.edges}
        touched_sources = {k for k in touched_sources if k in self.sources}
        touched_dns = {k for k in touched_dns if k in self.dns}
        for key in touched_edges:
            self.edges.touch(key).prune(now, self.horizon_seconds)
        for src_id in touched_sources:
            self.sources.touch(src_id).prune(now, self.horizon_seconds)
        for client in touched_dns:
            self.dns.touch(client).prune(now, self.horizon_seconds)
        return touched_edges, touched_sources, touched_dns

    def active(self, now: float, seconds: float) -> list[EdgeWindow]:
        """Edges with any sample inside the last ``seconds``."""
        return [w for w in self.edges.values() if w.last_seen > now - seconds]

    @property
    def evictions_total(self) -> int:
        return self.edges.evictions_total + self.sources.evictions_total + self.dns.evictions_total
