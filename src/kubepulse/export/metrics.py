"""Prometheus exposition for the node agent: low-cardinality series, capped, with self-metrics.

Two tiers. Prometheus gets per-*workload* series (namespace/workload pairs, the peer service,
the port, an outcome or reason); pods and addresses stay in alerts, events and the dashboard.
Every series this module creates counts against ``MetricsConfig.max_series``; a new label set
beyond the cap is folded into the family's ``other`` series (every edge label ``"other"``), and
the folded samples are counted in ``kubepulse_series_overflow_total{family}``. The "other"
series sit outside the cap: at most one per family and outcome, reason or rcode. A series with
no activity for ``grace_seconds`` (its pods are gone) is removed.

``AgentMetrics.observe_tick(agent, changes)`` runs in the agent's ``on_tick`` and costs
O(edges of the tick). Everything that is already a counter on the agent (records, losses,
kernel counters, attach status, tracked edges) is read at scrape time by the collector, never
copied per tick.

Latency histograms are fed from per-interval summaries (``LatencyStat``: sum, count, max), not
from single observations. Each summary puts one observation at its max and ``count - 1`` at the
mean of the rest, so ``_sum`` and ``_count`` are exact and the buckets are an approximation
that keeps the worst case of every interval (docs/metrics.md).
"""

from __future__ import annotations

import bisect
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from kubepulse import __version__
from kubepulse.detect.config import MetricsConfig
from kubepulse.model import (
    ALERT_TYPES,
    Alert,
    DnsSample,
    DropSample,
    EdgeSample,
    Identity,
    LatencyStat,
)

OTHER = "other"
EDGE_LABELS: tuple[str, ...] = (
    "src_namespace", "src_workload", "dst_namespace", "dst_workload", "dst_service", "port")
CLIENT_LABELS: tuple[str, ...] = ("namespace", "workload")

# Kernel counters (enum kp_counter, lower-cased) and the family each is exposed as. A counter
# the table does not name is still exposed, as kubepulse_kernel_events_total{counter=...}.
KERNEL_COUNTERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "records": ("kubepulse_kernel_records_submitted",
                "connection records the kernel put on the ring buffer", {}),
    "retransmits": ("kubepulse_kernel_tcp_retransmits",
                    "TCP segments retransmitted on this node (tcp_retransmit_skb)", {}),
    "syn_retransmits": ("kubepulse_kernel_tcp_syn_retransmits",
                        "SYN retransmits on this node", {}),
    "resets_rx": ("kubepulse_kernel_tcp_resets",
                  "TCP resets on this node, by direction", {"direction": "received"}),
    "resets_tx": ("kubepulse_kernel_tcp_resets",
                  "TCP resets on this node, by direction", {"direction": "sent"}),
    "untracked_close": ("kubepulse_kernel_untracked_closes",
                        "closes of sockets opened before the agent or evicted from its map", {}),
    "connect_pending_lost": ("kubepulse_kernel_connect_pending_lost",
                             "local connect failures whose errno never came", {}),
}
# Attach-status keys of optional probes (set to False when one is missing altogether) and of
# the optional hooks of a probe that did attach; they do not make the agent unready (it still
# sees TCP), but they do show as 0.
OPTIONAL_PROBES = frozenset({"dns", "drops", "cgroup_skb/ingress:listen"})


# -- what AgentMetrics reads from the agent (kubepulse.agent.loop.Agent satisfies it) -----------


class _StatsLike(Protocol):
    ticks: int
    records_received: int
    dns_records: int
    lost_kernel: int
    lost_user: int
    detection_lag_seconds: float
    alerts_emitted: int
    attach_status: dict[str, bool]
    kernel_counters: dict[str, int]
    engine: dict[str, int]


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


# -- one family's series, with the cap and the grace period ---------------------------------------

Kind = Literal["counter", "gauge", "histogram"]
Key = tuple[str, ...]


@dataclass
class _Hist:
    buckets: list[float]  # per-bucket counts (not cumulative); the last one is +Inf
    sum: float = 0.0
    count: float = 0.0


@dataclass
class _Family:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    n_edge: int  # how many leading labels fold into "other" on overflow
    bounds: tuple[float, ...] = ()
    values: dict[Key, float] = field(default_factory=dict)
    hists: dict[Key, _Hist] = field(default_factory=dict)
    seen: dict[Key, float] = field(default_factory=dict)

    @property
    def cost(self) -> int:  # exposed series per label set
        return len(self.bounds) + 3 if self.kind == "histogram" else 1


class AgentMetrics:
    """The agent's Prometheus families. Call ``observe_tick`` from ``Agent.on_tick``."""

    def __init__(self, config: MetricsConfig | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 kernel_counters: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.config = config or MetricsConfig()
        self._clock = clock
        self._kernel_counters = kernel_counters
        self._lock = threading.Lock()
        self._agent: AgentLike | None = None
        self.series = 0  # label sets in use, weighted by exposed series (histograms: buckets)
        self.other_series = 0  # the same for the "other" label sets, which sit outside the cap
        self.overflow_total: dict[str, int] = {}
        self.removed_total = 0
        self.last_tick: float | None = None  # self._clock() of the last observe_tick
        self._last_sweep = clock()
        self._anomalies: dict[tuple[str, str], int] = {}
        self._firing: dict[str, int] = dict.fromkeys(ALERT_TYPES, 0)
        c = self.config
        e, n = EDGE_LABELS, len(EDGE_LABELS)
        f = self._families = {
            "connections": _Family("kubepulse_connections", "counter",
                                   "TCP connections that ended, by outcome", (*e, "outcome"), n),
            "attempts": _Family("kubepulse_connection_attempts", "counter",
                                "TCP connections started (connect/SYN sent, or accepted)", e, n),
            "syn_retransmits": _Family("kubepulse_syn_retransmits", "counter",
                                       "SYNs retransmitted (a handshake not answered yet)", e, n),
            "resets": _Family("kubepulse_resets", "counter",
                              "established connections aborted by RST, by direction",
                              (*e, "direction"), n),
            "segs_sent": _Family("kubepulse_tcp_segments_sent", "counter",
                                 "TCP segments sent", e, n),
            "segs_retrans": _Family("kubepulse_tcp_segments_retransmitted", "counter",
                                    "TCP segments retransmitted", e, n),
            "sent_bytes": _Family("kubepulse_tcp_sent_bytes", "counter",
                                  "bytes sent and acknowledged by the peer", e, n),
            "open": _Family("kubepulse_open_connections", "gauge",
                            "established TCP connections at the end of the last tick", e, n),
            "connect_latency": _Family("kubepulse_connect_latency_seconds", "histogram",
                                       "SYN to ESTABLISHED, active opens (approximate buckets)",
                                       e, n, c.latency_buckets),
            "rtt": _Family("kubepulse_tcp_rtt_seconds", "histogram",
                           "smoothed RTT of connections (approximate buckets)", e, n,
                           c.latency_buckets),
            "drops": _Family("kubepulse_drops", "counter",
                             "packets the kernel dropped, by drop reason and class",
                             (*e, "reason", "class"), n),
            "dns_queries": _Family("kubepulse_dns_requests", "counter",
                                   "DNS queries sent by a client workload", CLIENT_LABELS, 2),
            "dns_responses": _Family("kubepulse_dns_responses", "counter",
                                     "DNS responses received, by rcode", (*CLIENT_LABELS, "rcode"),
                                     2),
            "dns_timeouts": _Family("kubepulse_dns_timeouts", "counter",
                                    "DNS queries unanswered at the probe's deadline",
                                    CLIENT_LABELS, 2),
            "dns_latency": _Family("kubepulse_dns_latency_seconds", "histogram",
                                   "DNS query to response (approximate buckets)", CLIENT_LABELS,
                                   2, c.dns_buckets),
        }
        self._edge_families = tuple(f.values())
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    # -- the tick ---------------------------------------------------------------------------------
    def observe_tick(self, agent: AgentLike, changes: Sequence[Alert]) -> None:
        """Fold one tick's samples and alert changes into the families. O(edges)."""
        now = self._clock()
        f = self._families
        with self._lock:
            self._agent = agent
            open_now: dict[Key, float] = {}
            for s in agent.last_samples:
                key = edge_key(s.edge.src, s.edge.dst, s.edge.dst_port)
                for outcome, n in s.outcomes.items():
                    if n:
                        self._add(f["connections"], (*key, outcome), n, now)
                        if outcome in ("reset_sent", "reset_received"):
                            self._add(f["resets"], (*key, outcome[6:]), n, now)
                for fam, value in ((f["attempts"], s.attempts),
                                   (f["syn_retransmits"], s.syn_retransmits),
                                   (f["segs_sent"], s.segs_sent),
                                   (f["segs_retrans"], s.segs_retrans),
                                   (f["sent_bytes"], s.bytes_sent)):
                    if value:
                        self._add(fam, key, value, now)
                self._observe(f["connect_latency"], key, s.connect_latency, now)
                self._observe(f["rtt"], key, s.srtt, now)
                if s.open_connections is not None:
                    k = self._admit(f["open"], key, now)
                    open_now[k] = open_now.get(k, 0) + s.open_connections
            opens = f["open"].values
            for k in opens:
                opens[k] = open_now.get(k, 0.0)
            for d in agent.last_drops:
                key = edge_key(d.edge.src, d.edge.dst, d.edge.dst_port)
                if d.count:
                    self._add(f["drops"], (*key, d.reason, d.drop_class), d.count, now)
            for q in agent.last_dns:
                ck = client_key(q.client)
                if q.queries:
                    self._add(f["dns_queries"], ck, q.queries, now)
                for rcode, n in q.rcodes.items():
                    if n:
                        self._add(f["dns_responses"], (*ck, rcode), n, now)
                if q.timeouts:
                    self._add(f["dns_timeouts"], ck, q.timeouts, now)
                self._observe(f["dns_latency"], ck, q.latency, now)
            for a in changes:
                if a.state == "firing":
                    k2 = (a.type, a.severity)
                    self._anomalies[k2] = self._anomalies.get(k2, 0) + 1
            firing = dict.fromkeys(ALERT_TYPES, 0)
            for a in agent.alerts.open_alerts():
                firing[a.type] = firing.get(a.type, 0) + 1
            self._firing = firing
            if now - self._last_sweep >= self.config.grace_seconds / 10:
                self._sweep(now)
            self.last_tick = now

    def _admit(self, fam: _Family, key: Key, now: float) -> Key:
        """The key to use: ``key`` itself, or the family's "other" key when over the cap."""
        store = fam.hists if fam.kind == "histogram" else fam.values
        if key not in store:
            if self.series + fam.cost > self.config.max_series and key[0] != OTHER:
                self.overflow_total[fam.name] = self.overflow_total.get(fam.name, 0) + 1
                key = (OTHER,) * fam.n_edge + key[fam.n_edge:]
                if key in store:
                    fam.seen[key] = now
                    return key
            if key[0] == OTHER:
                self.other_series += fam.cost
            else:
                self.series += fam.cost
            if fam.kind == "histogram":
                fam.hists[key] = _Hist([0.0] * (len(fam.bounds) + 1))
            else:
                fam.values[key] = 0.0
        fam.seen[key] = now
        return key

    def _add(self, fam: _Family, key: Key, n: float, now: float) -> None:
        key = self._admit(fam, key, now)
        fam.values[key] += n

    def _observe(self, fam: _Family, key: Key, stat: LatencyStat, now: float) -> None:
        if not stat.count:
            return
        h = fam.hists[self._admit(fam, key, now)]
        h.sum += stat.sum_s
        h.count += stat.count
        rest = stat.count
        if stat.count > 1 and stat.max_s > stat.mean_s:
            h.buckets[bisect.bisect_left(fam.bounds, stat.max_s)] += 1
            rest -= 1
            mean = max(0.0, (stat.sum_s - stat.max_s) / rest)
        else:
            mean = stat.mean_s
        h.buckets[bisect.bisect_left(fam.bounds, mean)] += rest

    def _sweep(self, now: float) -> None:
        cutoff = now - self.config.grace_seconds
        for fam in self._edge_families:
            store: dict[Key, float] | dict[Key, _Hist] = (
                fam.hists if fam.kind == "histogram" else fam.values)
            gone = [k for k, t in fam.seen.items() if t < cutoff]
            for k in gone:
                del fam.seen[k]
                del store[k]
                if k[0] == OTHER:
                    self.other_series -= fam.cost
                else:
                    self.series -= fam.cost
            self.removed_total += len(gone)
        self._last_sweep = now

    # -- readiness ----------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        """(ready, why): every required probe attached and a tick seen recently."""
        agent = self._agent
        if agent is None or self.last_tick is None:
            return False, "no tick yet"
        status = dict(agent.stats.attach_status)
        missing = sorted(p for p, ok in status.items() if not ok and p not in OPTIONAL_PROBES)
        if not status or missing:
            return False, "not attached: " + (", ".join(missing) or "no probe")
        age = self._clock() - self.last_tick
        if age > self.config.ready_max_tick_age_seconds:
            return False, f"last tick {age:.1f} s ago"
        optional = sorted(p for p in OPTIONAL_PROBES if status.get(p) is False)
        return True, "ok" + (f" (optional probes missing: {', '.join(optional)})"
                             if optional else "")

    # -- the scrape ---------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = [(fam, dict(fam.values), {k: (list(h.buckets), h.sum, h.count)
                                             for k, h in fam.hists.items()})
                    for fam in self._edge_families]
            anomalies = dict(self._anomalies)
            firing = dict(self._firing)
            overflow = dict(self.overflow_total)
            series, removed = self.series + self.other_series, self.removed_total
            agent, last_tick = self._agent, self.last_tick
        for fam, values, hists in snap:
            yield from _family_metrics(fam, values, hists)
        m = CounterMetricFamily("kubepulse_anomalies", "alerts that started firing, by type "
                                "and severity", labels=["type", "severity"])
        for (t, sev), n in sorted(anomalies.items()):
            m.add_metric([t, sev], n)
        yield m
        g = GaugeMetricFamily("kubepulse_alerts_firing", "alerts firing now, by type",
                              labels=["type"])
        for t, n in sorted(firing.items()):
            g.add_metric([t], n)
        yield g
        yield from self._self_metrics(agent, last_tick, series, removed, overflow)

    def _self_metrics(self, agent: AgentLike | None, last_tick: float | None, series: int,
                      removed: int, overflow: dict[str, int]) -> Iterator[Metric]:
        info = GaugeMetricFamily("kubepulse_build_info", "kubepulse build, always 1",
                                 labels=["version", "python_version"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        g = GaugeMetricFamily("kubepulse_series", "series held by the agent's families "
                              "(histograms count every bucket), \"other\" included")
        g.add_metric([], series)
        yield g
        g = GaugeMetricFamily("kubepulse_series_limit", "the cap on series; the few "
                              "\"other\" series come on top")
        g.add_metric([], self.config.max_series)
        yield g
        c = CounterMetricFamily("kubepulse_series_overflow", "samples folded into an "
                                "\"other\" series because of the cap", labels=["family"])
        for fam in self._edge_families:
            c.add_metric([fam.name], overflow.get(fam.name, 0))
        yield c
        c = CounterMetricFamily("kubepulse_series_removed", "series removed after "
                                "grace_seconds without activity")
        c.add_metric([], removed)
        yield c
        if agent is None:
            return
        st = agent.stats
        c = CounterMetricFamily("kubepulse_records_processed", "records the agent read and "
                                "judged, by probe", labels=["probe"])
        c.add_metric(["tcp_conn"], st.records_received)
        c.add_metric(["dns"], st.dns_records)
        yield c
        sink_lost, sink_rows = _sink_losses(agent)
        c = CounterMetricFamily("kubepulse_records_lost", "records lost, by stage: kernel "
                                "(ring buffer full), queue (submitted but never read), sink "
                                "(alert changes a sink failed to deliver)", labels=["stage"])
        c.add_metric(["kernel"], st.lost_kernel)
        c.add_metric(["queue"], st.lost_user)
        c.add_metric(["sink"], sink_lost)
        yield c
        c = CounterMetricFamily("kubepulse_sink_dropped", "alert changes a sink dropped, by "
                                "sink and stage (queue full, or delivery gave up)",
                                labels=["sink", "stage"])
        for labels, n in sink_rows:
            c.add_metric(list(labels), n)
        yield c
        g = GaugeMetricFamily("kubepulse_probe_attached", "1 when the attach point is "
                              "attached; 0 means that signal is blind", labels=["probe"])
        for probe, ok in sorted(dict(st.attach_status).items()):
            g.add_metric([probe], 1 if ok else 0)
        yield g
        g = GaugeMetricFamily("kubepulse_detection_lag_seconds", "age of the newest record "
                              "when it was judged, last tick")
        g.add_metric([], st.detection_lag_seconds)
        yield g
        c = CounterMetricFamily("kubepulse_ticks", "detection ticks run")
        c.add_metric([], st.ticks)
        yield c
        g = GaugeMetricFamily("kubepulse_last_tick_age_seconds", "seconds since the last tick")
        g.add_metric([], self._clock() - last_tick if last_tick is not None else float("nan"))
        yield g
        eng = dict(st.engine)
        g = GaugeMetricFamily("kubepulse_tracked", "keys the detectors hold windows for, by kind",
                              labels=["kind"])
        for kind, key in (("edges", "edges_tracked"), ("sources", "sources_tracked"),
                          ("dns_clients", "dns_clients_tracked")):
            g.add_metric([kind], eng.get(key, 0))
        yield g
        c = CounterMetricFamily("kubepulse_tracker_evictions", "windows evicted (LRU) because "
                                "the detectors' tables were full")
        c.add_metric([], eng.get("evictions_total", 0))
        yield c
        yield from _kernel_metrics(self._kernel_counters() if self._kernel_counters
                                   else dict(st.kernel_counters))


class _Collector(Collector):
    def __init__(self, owner: AgentMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterable[Metric]:
        return self.owner.collect()


def _family_metrics(fam: _Family, values: dict[Key, float],
                    hists: dict[Key, tuple[list[float], float, float]]) -> Iterator[Metric]:
    labels = list(fam.labels)
    if fam.kind == "histogram":
        h = HistogramMetricFamily(fam.name, fam.help, labels=labels)
        for key, (counts, total, _count) in hists.items():
            acc, buckets = 0.0, []
            for bound, n in zip((*fam.bounds, float("inf")), counts, strict=True):
                acc += n
                buckets.append((_le(bound), acc))
            h.add_metric(list(key), buckets, total)
        yield h
        return
    m: CounterMetricFamily | GaugeMetricFamily
    if fam.kind == "counter":
        m = CounterMetricFamily(fam.name, fam.help, labels=labels)
    else:
        m = GaugeMetricFamily(fam.name, fam.help, labels=labels)
    for key, v in values.items():
        m.add_metric(list(key), v)
    yield m


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _kernel_metrics(counters: Mapping[str, int]) -> Iterator[Metric]:
    fams: dict[str, CounterMetricFamily] = {}
    generic = CounterMetricFamily("kubepulse_kernel_events", "other kernel counters",
                                  labels=["counter"])
    for name, value in sorted(counters.items()):
        if name == "ringbuf_full":  # that is kubepulse_records_lost_total{stage="kernel"}
            continue
        spec = KERNEL_COUNTERS.get(name)
        if spec is None:
            generic.add_metric([name], value)
            continue
        fname, helptext, extra = spec
        if fname not in fams:
            fams[fname] = CounterMetricFamily(fname, helptext, labels=list(extra))
        fams[fname].add_metric(list(extra.values()), value)
    yield from fams.values()
    yield generic


def _sink_losses(agent: AgentLike) -> tuple[int, list[tuple[tuple[str, str], int]]]:
    sinks = getattr(agent, "sinks", None)
    rows: list[tuple[tuple[str, str], int]] = []
    total = 0
    if sinks is None:
        return 0, rows
    errors: dict[str, int] = dict(getattr(sinks, "errors_total", {}))
    for s in getattr(sinks, "sinks", ()):
        name = str(getattr(s, "name", type(s).__name__))
        dropped: dict[str, int] = dict(getattr(s, "dropped_total", {}) or {})
        for stage, n in sorted(dropped.items()):
            rows.append(((name, stage), n))
            total += n
        if errors.get(name):
            rows.append(((name, "error"), errors[name]))
            total += errors[name]
    return total, rows


# -- identities to labels (never addresses, never pods) -------------------------------------------


def workload_name(ident: Identity) -> str:
    """A workload-level name for one end: the workload, else what kind of peer it is."""
    if ident.workload:
        return ident.workload
    if ident.service:
        return ident.service
    return ident.kind  # "external", "host" or "unknown": an address never becomes a label


def edge_key(src: Identity, dst: Identity, port: int) -> Key:
    return (src.namespace, workload_name(src), dst.namespace, workload_name(dst), dst.service,
            str(port) if port else "")


def client_key(ident: Identity) -> Key:
    return (ident.namespace, workload_name(ident))
