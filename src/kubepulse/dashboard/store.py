"""What the dashboard shows, kept in memory and bounded: fed once per agent tick.

``DashboardStore.observe(agent, changes)`` runs in the agent's ``on_tick`` (after the metrics)
and costs O(edges + DNS clients + drops of the tick + a few raw records). Per workload edge it
keeps a 15-minute series in ``bucket_seconds`` buckets and the ticks of the last
``rate_window_seconds`` (for rates and health); per pod pair only the recent ticks, for the
expanded view. Every table has a cap; what a cap pushes out is counted in ``evictions``.

HTTP threads read through the ``*_view`` methods, which copy under the lock and return plain
data; the pydantic payloads are built outside the lock (``kubepulse.dashboard.api``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kubepulse.model import (
    FAILED_OUTCOMES,
    Alert,
    ConnEvent,
    DnsSample,
    DropSample,
    EdgeSample,
    Identity,
)

Health = Literal["normal", "degraded", "failing"]
Proto = Literal["tcp", "dns"]
_RANK = {"normal": 0, "degraded": 1, "failing": 2}


@dataclass(frozen=True)
class StoreConfig:
    window_seconds: float = 900.0  # the drill-down's 15 minutes
    bucket_seconds: float = 5.0  # one series point per bucket: 180 points per edge
    rate_window_seconds: float = 10.0  # rates and health on the map
    max_edges: int = 1000  # workload edges (each with its series)
    max_pod_edges_per_edge: int = 64  # pod pairs behind one workload edge
    max_events: int = 1000  # raw connection records kept
    events_per_tick: int = 64  # raw records decoded per tick (the newest)
    max_resolved_alerts: int = 200
    resolved_keep_seconds: float = 3600.0


# -- what the store reads from the agent (kubepulse.agent.loop.Agent satisfies it) ------------


class _StatsLike(Protocol):
    started_at: float
    ticks: int
    records_received: int
    lost_kernel: int
    lost_user: int
    detection_lag_seconds: float
    attach_status: dict[str, bool]


class _AlertsLike(Protocol):
    def open_alerts(self) -> list[Alert]: ...


class AgentLike(Protocol):
    @property
    def stats(self) -> _StatsLike: ...
    @property
    def alerts(self) -> _AlertsLike: ...
    @property
    def last_samples(self) -> Sequence[EdgeSample]: ...
    @property
    def last_dns(self) -> Sequence[DnsSample]: ...
    @property
    def last_drops(self) -> Sequence[DropSample]: ...


# -- names --------------------------------------------------------------------------------------


def node_id(i: Identity) -> str:
    """The map node of one end: its workload (``ns/name``), else its pod, else its address."""
    return i.display or "unknown"


def pod_node_id(i: Identity) -> str:
    if i.kind == "pod" and i.pod:
        return f"{i.namespace}/{i.pod}" if i.namespace else i.pod
    return node_id(i)


def edge_id(src: str, dst: str, port: int, proto: str) -> str:
    """Stable and URL-safe: the first 12 hex digits of sha1 over the edge's names."""
    return hashlib.sha1(f"{src}|{dst}|{port}|{proto}".encode()).hexdigest()[:12]


def _label_side(labels: dict[str, str], side: str) -> str:
    ns, wl = labels.get(f"{side}_namespace", ""), labels.get(f"{side}_workload", "")
    pod = labels.get(f"{side}_pod", "")
    if wl:
        return f"{ns}/{wl}" if ns else wl
    if pod:
        return f"{ns}/{pod}" if ns else pod
    return labels.get(f"{side}_address", "")


def alert_ends(alert: Alert) -> tuple[str, str, int | None]:
    """(source node, destination node, port) an alert is about, from its labels."""
    lab = alert.labels
    port = lab.get("dst_port", "")
    return _label_side(lab, "src"), _label_side(lab, "dst"), int(port) if port.isdigit() else None


# -- one tick or one bucket of one edge -----------------------------------------------------------


@dataclass(slots=True)
class Point:
    t: float  # start of the tick or bucket, unix seconds
    outcomes: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    syn_retransmits: int = 0
    segs_sent: int = 0
    segs_retrans: int = 0
    rtt_sum: float = 0.0
    rtt_count: int = 0
    rtt_max: float = 0.0
    open_connections: int | None = None
    drops: dict[str, int] = field(default_factory=dict)
    dns_queries: int = 0
    dns_lat_sum: float = 0.0
    dns_lat_count: int = 0
    dns_lat_max: float = 0.0
    dns_rcodes: dict[str, int] = field(default_factory=dict)
    dns_timeouts: int = 0

    def add_edge(self, s: EdgeSample) -> None:
        _add(self.outcomes, s.outcomes)
        self.attempts += s.attempts
        self.syn_retransmits += s.syn_retransmits
        self.segs_sent += s.segs_sent
        self.segs_retrans += s.segs_retrans
        self.rtt_sum += s.srtt.sum_s
        self.rtt_count += s.srtt.count
        self.rtt_max = max(self.rtt_max, s.srtt.max_s)
        if s.open_connections is not None:
            self.open_connections = (self.open_connections or 0) + s.open_connections

    def add_dns(self, s: DnsSample) -> None:
        self.dns_queries += s.queries
        self.dns_lat_sum += s.latency.sum_s
        self.dns_lat_count += s.latency.count
        self.dns_lat_max = max(self.dns_lat_max, s.latency.max_s)
        _add(self.dns_rcodes, s.rcodes)
        self.dns_timeouts += s.timeouts

    def add_drop(self, s: DropSample) -> None:
        self.drops[s.reason] = self.drops.get(s.reason, 0) + s.count

    def merge(self, p: Point) -> None:
        """Fold a later tick into this bucket (gauges: the later value)."""
        _add(self.outcomes, p.outcomes)
        self.attempts += p.attempts
        self.syn_retransmits += p.syn_retransmits
        self.segs_sent += p.segs_sent
        self.segs_retrans += p.segs_retrans
        self.rtt_sum += p.rtt_sum
        self.rtt_count += p.rtt_count
        self.rtt_max = max(self.rtt_max, p.rtt_max)
        if p.open_connections is not None:
            self.open_connections = p.open_connections
        _add(self.drops, p.drops)
        self.dns_queries += p.dns_queries
        self.dns_lat_sum += p.dns_lat_sum
        self.dns_lat_count += p.dns_lat_count
        self.dns_lat_max = max(self.dns_lat_max, p.dns_lat_max)
        _add(self.dns_rcodes, p.dns_rcodes)
        self.dns_timeouts += p.dns_timeouts


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def rates(points: Iterable[Point], seconds: float) -> dict[str, Any]:
    """Rates over a window of tick points (the map's edge label and the health verdict)."""
    total = Point(0.0)
    for p in points:
        total.merge(p)
    secs = max(seconds, 1e-9)
    closes = sum(total.outcomes.values())
    failed = sum(n for o, n in total.outcomes.items() if o in FAILED_OUTCOMES)
    dns_answers = sum(total.dns_rcodes.values())
    dns_errors = sum(n for rc, n in total.dns_rcodes.items() if rc != "NOERROR")
    return {
        "window_seconds": seconds,
        "connections_per_second": closes / secs,
        "attempts_per_second": total.attempts / secs,
        "failed_per_second": failed / secs,
        "failure_ratio": failed / closes if closes else 0.0,
        "outcomes": dict(total.outcomes),
        "syn_retransmits": total.syn_retransmits,
        "retransmits_per_second": total.segs_retrans / secs,
        "retransmit_ratio": total.segs_retrans / total.segs_sent if total.segs_sent else 0.0,
        "rtt_ms": total.rtt_sum / total.rtt_count * 1e3 if total.rtt_count else None,
        "open_connections": total.open_connections,
        "drops": dict(total.drops),
        "dns_queries_per_second": total.dns_queries / secs,
        "dns_latency_ms": (total.dns_lat_sum / total.dns_lat_count * 1e3
                           if total.dns_lat_count else None),
        "dns_error_ratio": (dns_errors + total.dns_timeouts) / max(1, dns_answers
                                                                    + total.dns_timeouts),
        "dns_rcodes": dict(total.dns_rcodes),
        "dns_timeouts": total.dns_timeouts,
    }


def health_of(r: dict[str, Any], alert_severities: Iterable[str]) -> tuple[Health, str]:
    """normal, degraded or failing, and why: the rates, raised by any alert firing on it."""
    sev = set(alert_severities)
    failed = r["failure_ratio"] * sum(r["outcomes"].values())
    if "critical" in sev:
        return "failing", "a critical alert is firing"
    if r["failure_ratio"] >= 0.5 and failed >= 3:
        return "failing", f"{r['failure_ratio']:.0%} of connections failed"
    if not r["outcomes"] and r["syn_retransmits"] >= 3:
        return "failing", "handshakes unanswered (SYN retransmits)"
    if r["dns_error_ratio"] >= 0.5 and r["dns_queries_per_second"] > 0:
        return "failing", f"{r['dns_error_ratio']:.0%} of DNS queries failed"
    if sev:
        return "degraded", "an alert is firing"
    if r["failure_ratio"] >= 0.05 and failed >= 1:
        return "degraded", f"{r['failure_ratio']:.0%} of connections failed"
    if r["retransmit_ratio"] >= 0.05 and r["retransmits_per_second"] > 0:
        return "degraded", f"{r['retransmit_ratio']:.0%} of segments retransmitted"
    if sum(r["drops"].values()):
        return "degraded", "packets dropped"
    if r["dns_error_ratio"] >= 0.05:
        return "degraded", f"{r['dns_error_ratio']:.0%} of DNS queries failed"
    return "normal", ""


# -- the tables ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _PodEdge:
    src: Identity
    dst: Identity
    recent: deque[Point]
    last_seen: float


@dataclass(slots=True)
class _Edge:
    id: str
    src: Identity
    dst: Identity
    port: int
    proto: Proto
    series: deque[Point]
    recent: deque[Point]
    first_seen: float
    last_seen: float
    pods: OrderedDict[tuple[str, str], _PodEdge] = field(default_factory=OrderedDict)


@dataclass(slots=True)
class Evictions:
    edges: int = 0  # pushed out by max_edges (least recently active first)
    edges_expired: int = 0  # idle for the whole window
    pod_edges: int = 0
    events: int = 0  # raw records not kept: over events_per_tick, or pushed out of max_events
    resolved_alerts: int = 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event: ConnEvent
    src_name: str
    dst_name: str
    edge_id: str


class DashboardStore:
    def __init__(self, config: StoreConfig | None = None, node: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or StoreConfig()
        self.node = node
        self._clock = clock
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self.version = 0  # bumped every tick; streams wait on ``changed``
        self._edges: OrderedDict[str, _Edge] = OrderedDict()  # least recently active first
        self._events: deque[StoredEvent] = deque(maxlen=self.config.max_events)
        self._firing: list[Alert] = []
        self._resolved: deque[Alert] = deque(maxlen=self.config.max_resolved_alerts)
        self.evictions = Evictions()
        self._agent: AgentLike | None = None
        self.last_tick: float | None = None

    # -- the tick (agent thread) ---------------------------------------------------------------
    def observe(self, agent: AgentLike, changes: Sequence[Alert]) -> None:
        now = self._clock()
        resolver = getattr(agent, "resolver", None)
        ticks: dict[str, tuple[_EdgeRef, Point, dict[tuple[str, str], tuple[_PodRef, Point]]]] = {}

        def point(src: Identity, dst: Identity, port: int, proto: Proto) -> Point:
            s, d = node_id(src), node_id(dst)
            eid = edge_id(s, d, port, proto)
            if eid not in ticks:
                ticks[eid] = (_EdgeRef(src, dst, port, proto), Point(now), {})
            pods = ticks[eid][2]
            pk = (pod_node_id(src), pod_node_id(dst))
            if pk not in pods:
                pods[pk] = (_PodRef(src, dst), Point(now))
            return pods[pk][1]

        for s in agent.last_samples:
            point(s.edge.src, s.edge.dst, s.edge.dst_port, "tcp").add_edge(s)
        for d in agent.last_dns:
            server = d.server.split(",")[0] if d.server else ""
            dst = (resolver.remote(server, 53) if resolver is not None and server
                   else Identity(address=server or "dns", kind="external"))
            point(d.client, dst, 53, "dns").add_dns(d)
        for dr in agent.last_drops:
            point(dr.edge.src, dr.edge.dst, dr.edge.dst_port, "tcp").add_drop(dr)
        events = self._decode_events(agent, resolver)
        firing = agent.alerts.open_alerts()
        with self.changed:
            for eid, (ref, _, pods) in ticks.items():
                e = self._edge(eid, ref, now)
                tick_total = Point(now)
                for pk, (pref, pp) in pods.items():
                    tick_total.merge(pp)
                    pe = e.pods.get(pk)
                    if pe is None:
                        pe = e.pods[pk] = _PodEdge(pref.src, pref.dst, deque(maxlen=64), now)
                        while len(e.pods) > self.config.max_pod_edges_per_edge:
                            e.pods.popitem(last=False)
                            self.evictions.pod_edges += 1
                    else:
                        e.pods.move_to_end(pk)
                    pe.recent.append(pp)
                    pe.last_seen = now
                self._append(e, tick_total, now)
            self._expire(now)
            for ev in events:
                if len(self._events) == self._events.maxlen:
                    self.evictions.events += 1
                self._events.append(ev)
            self._firing = list(firing)
            for a in changes:
                if a.state == "resolved":
                    if len(self._resolved) == self._resolved.maxlen:
                        self.evictions.resolved_alerts += 1
                    self._resolved.append(a)
            while self._resolved and (
                    now - (self._resolved[0].ends_at or now) > self.config.resolved_keep_seconds):
                self._resolved.popleft()
                self.evictions.resolved_alerts += 1
            self._agent = agent
            self.last_tick = now
            self.version += 1
            self.changed.notify_all()

    def _edge(self, eid: str, ref: _EdgeRef, now: float) -> _Edge:
        e = self._edges.get(eid)
        if e is not None:
            self._edges.move_to_end(eid)
            e.last_seen = now
            return e
        c = self.config
        points = max(1, int(c.window_seconds / c.bucket_seconds))
        e = self._edges[eid] = _Edge(eid, ref.src, ref.dst, ref.port, ref.proto,
                                     deque(maxlen=points), deque(maxlen=256), now, now)
        while len(self._edges) > c.max_edges:
            self._edges.popitem(last=False)
            self.evictions.edges += 1
        return e

    def _append(self, e: _Edge, p: Point, now: float) -> None:
        e.recent.append(p)
        while e.recent and e.recent[0].t <= now - self.config.rate_window_seconds:
            e.recent.popleft()
        b = self.config.bucket_seconds
        start = now - now % b
        if e.series and e.series[-1].t == start:
            e.series[-1].merge(p)
        else:
            bucket = Point(start)
            bucket.merge(p)
            e.series.append(bucket)

    def _expire(self, now: float) -> None:
        horizon = now - self.config.window_seconds
        while self._edges:
            eid, e = next(iter(self._edges.items()))
            if e.last_seen > horizon:
                break
            del self._edges[eid]
            self.evictions.edges_expired += 1

    def _decode_events(self, agent: AgentLike, resolver: Any) -> list[StoredEvent]:
        """The newest raw records of the tick, decoded and named (needs a real probe)."""
        records = getattr(agent, "last_records", None)
        probe = getattr(agent, "probe", None)
        if records is None or probe is None or not len(records):
            return []
        from kubepulse.probes.tcp_conn import to_events

        keep = self.config.events_per_tick
        if len(records) > keep:
            self.evictions.events += len(records) - keep
        out = []
        for ev in to_events(records[-keep:], probe.enums, float(probe.wall_time(0))):
            if resolver is not None:
                local = resolver.local(ev.netns, ev.saddr, ev.comm)
                remote = resolver.remote(ev.daddr, ev.dport)
            else:
                local, remote = Identity(address=ev.saddr), Identity(address=ev.daddr)
            if ev.direction == "inbound":
                eid = edge_id(node_id(remote), node_id(local), ev.sport, "tcp")
            else:
                eid = edge_id(node_id(local), node_id(remote), ev.dport, "tcp")
            out.append(StoredEvent(ev, pod_node_id(local), pod_node_id(remote), eid))
        return out

    # -- views (HTTP threads) ------------------------------------------------------------------
    def edges_view(self) -> dict[str, Any]:
        # Copy under the lock (tick points are never changed once appended), compute outside:
        # the agent's tick never waits for the rates of a thousand edges.
        with self._lock:
            now = self.last_tick or self._clock()
            win = self.config.rate_window_seconds
            by_edge = self._alerts_by_edge_locked()
            copied = [(e, list(e.recent), [(pe.src, pe.dst, list(pe.recent))
                                           for pe in reversed(e.pods.values())
                                           if pe.last_seen > now - win],
                       by_edge.get(e.id, []), e.last_seen)
                      for e in reversed(self._edges.values())]  # most recently active first
        edges = []
        for e, recent, pod_rows, fired, last_seen in copied:
            r = rates([p for p in recent if p.t > now - win], win)
            health, why = health_of(r, (a.severity for a in fired))
            pods = []
            for src, dst, precent in pod_rows:
                pr = rates([p for p in precent if p.t > now - win], win)
                ph, pwhy = health_of(pr, ())
                pods.append({"src": src, "dst": dst, "health": ph, "health_reason": pwhy,
                             "rates": pr})
            edges.append({"id": e.id, "src": e.src, "dst": e.dst, "port": e.port,
                          "protocol": e.proto, "health": health, "health_reason": why,
                          "rates": r, "first_seen": e.first_seen, "last_seen": last_seen,
                          "active": last_seen > now - win,
                          "alerts": [a.fingerprint for a in fired], "pods": pods})
        return {"now": now, "edges": edges}

    def series_view(self, eid: str) -> dict[str, Any] | None:
        with self._lock:
            e = self._edges.get(eid)
            if e is None:
                return None
            return {"id": e.id, "src": e.src, "dst": e.dst, "port": e.port,
                    "protocol": e.proto, "bucket_seconds": self.config.bucket_seconds,
                    "window_seconds": self.config.window_seconds,
                    "points": [_copy(p) for p in e.series]}

    def events_view(self, limit: int, eid: str = "") -> list[StoredEvent]:
        with self._lock:
            out: list[StoredEvent] = []
            for ev in reversed(self._events):
                if len(out) >= limit:
                    break
                if not eid or ev.edge_id == eid:
                    out.append(ev)
            return out

    def alerts_view(self) -> tuple[list[Alert], list[Alert], dict[str, list[str]], float]:
        """(firing, recently resolved, fingerprint -> edge ids, now)."""
        with self._lock:
            firing, resolved = list(self._firing), list(self._resolved)
            edges = {a.fingerprint: self._edges_of_locked(a) for a in firing + resolved}
            return firing, resolved, edges, self.last_tick or self._clock()

    def health_view(self) -> dict[str, Any]:
        with self._lock:
            agent = self._agent
            out: dict[str, Any] = {
                "node": self.node, "last_tick": self.last_tick, "now": self._clock(),
                "edges": len(self._edges),
                "pod_edges": sum(len(e.pods) for e in self._edges.values()),
                "events": len(self._events),
                "evictions": {k: getattr(self.evictions, k) for k in Evictions.__slots__},
                "limits": {"max_edges": self.config.max_edges,
                           "max_pod_edges_per_edge": self.config.max_pod_edges_per_edge,
                           "max_events": self.config.max_events,
                           "series_points": int(self.config.window_seconds
                                                / self.config.bucket_seconds)},
            }
        if agent is not None:
            st = agent.stats
            out.update(started_at=st.started_at, ticks=st.ticks,
                       records_received=st.records_received,
                       probes=dict(st.attach_status),
                       detection_lag_seconds=st.detection_lag_seconds,
                       lost={"kernel": st.lost_kernel, "queue": st.lost_user,
                             "sink": _sink_lost(agent)})
        return out

    # -- helpers (lock held) -------------------------------------------------------------------
    def _edges_of_locked(self, a: Alert) -> list[str]:
        src, dst, port = alert_ends(a)
        dns = a.type.startswith("dns_")
        out = []
        for e in self._edges.values():
            if dns != (e.proto == "dns"):
                continue
            if src and node_id(e.src) != src:
                continue
            if not dns and dst and node_id(e.dst) != dst:
                continue
            if not dns and port is not None and e.port != port:
                continue
            if src or dst:
                out.append(e.id)
        return out

    def _alerts_by_edge_locked(self) -> dict[str, list[Alert]]:
        out: dict[str, list[Alert]] = {}
        for a in self._firing:
            for eid in self._edges_of_locked(a):
                out.setdefault(eid, []).append(a)
        return out


@dataclass(frozen=True, slots=True)
class _EdgeRef:
    src: Identity
    dst: Identity
    port: int
    proto: Proto


@dataclass(frozen=True, slots=True)
class _PodRef:
    src: Identity
    dst: Identity


def _copy(p: Point) -> Point:
    return Point(p.t, dict(p.outcomes), p.attempts, p.syn_retransmits, p.segs_sent,
                 p.segs_retrans, p.rtt_sum, p.rtt_count, p.rtt_max, p.open_connections,
                 dict(p.drops), p.dns_queries, p.dns_lat_sum, p.dns_lat_count, p.dns_lat_max,
                 dict(p.dns_rcodes), p.dns_timeouts)


def _sink_lost(agent: object) -> int:
    sinks = getattr(agent, "sinks", None)
    if sinks is None:
        return 0
    total = sum(int(v) for v in dict(getattr(sinks, "errors_total", {})).values())
    for s in getattr(sinks, "sinks", ()):
        total += sum(int(v) for v in dict(getattr(s, "dropped_total", {}) or {}).values())
    return total
