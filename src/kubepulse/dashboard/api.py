"""The JSON API's payloads (pydantic), built from the store's views, and the OpenAPI document.

The dashboard page reads exactly these payloads, so a script sees what the SRE sees.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from kubepulse import __version__
from kubepulse.model import Alert, Identity, rfc3339

from .store import DashboardStore, Point, StoredEvent, node_id, pod_node_id

Health = Literal["normal", "degraded", "failing"]


class Endpoint(BaseModel):
    """One end of an edge: a map node (workload, else pod, else address)."""

    id: str = Field(description="map node id: namespace/workload, else the pod, else the address")
    kind: Literal["pod", "host", "external", "unknown"]
    namespace: str
    workload: str
    service: str
    address: str = Field(description="the address last seen for this end")


class Rates(BaseModel):
    """Counts and rates over the last ``window_seconds`` (the map's view)."""

    window_seconds: float
    connections_per_second: float = Field(description="connections that ended, per second")
    attempts_per_second: float
    failed_per_second: float
    failure_ratio: float = Field(description="failed / ended connections")
    outcomes: dict[str, int] = Field(description="ended connections by outcome")
    syn_retransmits: int
    retransmits_per_second: float = Field(description="TCP segments retransmitted per second")
    retransmit_ratio: float
    rtt_ms: float | None = Field(description="mean smoothed RTT")
    open_connections: int | None
    drops: dict[str, int] = Field(description="kernel drops by skb_drop_reason")
    dns_queries_per_second: float
    dns_latency_ms: float | None
    dns_error_ratio: float
    dns_rcodes: dict[str, int]
    dns_timeouts: int


class PodEdge(BaseModel):
    src: str = Field(description="source pod node id (namespace/pod), or the workload id")
    dst: str
    src_workload: str = Field(description="the workload node the source pod belongs to")
    dst_workload: str
    health: Health
    health_reason: str
    rates: Rates


class Edge(BaseModel):
    id: str = Field(description="stable edge id (12 hex digits), used by /series")
    src: Endpoint
    dst: Endpoint
    port: int
    protocol: Literal["tcp", "dns"]
    health: Health
    health_reason: str
    rates: Rates
    first_seen: str
    last_seen: str
    active: bool = Field(description="traffic within the rate window")
    alerts: list[str] = Field(description="fingerprints of the alerts firing on this edge")
    pods: list[PodEdge] = Field(description="the pod pairs behind it, active ones only")


class EdgesResponse(BaseModel):
    now: str
    edges: list[Edge]
    namespaces: list[str]


class AlertOut(BaseModel):
    fingerprint: str
    type: str
    severity: str
    state: Literal["firing", "resolved"]
    starts_at: str
    ends_at: str | None
    emitted_at: str
    duration_seconds: float
    src: str
    dst: str
    dst_port: int | None
    labels: dict[str, str]
    summary: str
    cause: str
    evidence: dict[str, Any]
    flapping: bool
    inhibited_by: str | None
    edges: list[str] = Field(description="ids of the edges it is about (to highlight)")


class AlertsResponse(BaseModel):
    now: str
    alerts: list[AlertOut] = Field(description="newest first")


class SeriesResponse(BaseModel):
    """One edge over the last 15 minutes, one value per bucket (null: no sample)."""

    id: str
    src: Endpoint
    dst: Endpoint
    port: int
    protocol: Literal["tcp", "dns"]
    bucket_seconds: float
    window_seconds: float
    t: list[float] = Field(description="bucket starts, unix seconds")
    connections: dict[str, list[int]] = Field(description="ended connections by outcome")
    attempts: list[int]
    syn_retransmits: list[int]
    retransmits: list[int] = Field(description="TCP segments retransmitted")
    segments_sent: list[int]
    rtt_ms: list[float | None]
    rtt_max_ms: list[float | None]
    drops: dict[str, list[int]] = Field(description="kernel drops by reason")
    dns_queries: list[int]
    dns_latency_ms: list[float | None]
    dns_latency_max_ms: list[float | None]
    dns_rcodes: dict[str, list[int]]
    dns_timeouts: list[int]


class EventOut(BaseModel):
    ts: str
    pid: int
    comm: str
    direction: str
    kind: str
    outcome: str
    error: str
    src: str = Field(description="local address:port")
    dst: str = Field(description="remote address:port")
    src_name: str
    dst_name: str
    duration_ms: float | None
    connect_ms: float | None
    retransmits: int
    bytes_sent: int
    bytes_received: int
    edge: str = Field(description="id of the edge it belongs to")


class EventsResponse(BaseModel):
    events: list[EventOut] = Field(description="newest first")


class HealthResponse(BaseModel):
    node: str
    version: str
    now: str
    started_at: str | None
    ticks: int
    last_tick_age_seconds: float | None
    probes: dict[str, bool] = Field(description="attach point -> attached")
    probes_attached: int
    probes_total: int
    records_received: int
    records_lost: dict[str, int] = Field(description="by stage: kernel, queue, sink")
    detection_lag_seconds: float
    edges: int
    pod_edges: int
    events: int
    evictions: dict[str, int]
    limits: dict[str, int]
    stream_clients: int


class Snapshot(BaseModel):
    """One message of the live stream: everything but the series."""

    version: int
    edges: EdgesResponse
    alerts: AlertsResponse
    health: HealthResponse
    events: EventsResponse


# -- builders -----------------------------------------------------------------------------------


def _endpoint(i: Identity) -> Endpoint:
    return Endpoint(id=node_id(i), kind=i.kind, namespace=i.namespace, workload=i.workload,
                    service=i.service, address=i.address)


def edges(store: DashboardStore) -> EdgesResponse:
    v = store.edges_view()
    out = []
    namespaces: set[str] = set()
    for e in v["edges"]:
        namespaces.update(x.namespace for x in (e["src"], e["dst"]) if x.namespace)
        pods = [PodEdge(src=pod_node_id(p["src"]), dst=pod_node_id(p["dst"]),
                        src_workload=node_id(p["src"]), dst_workload=node_id(p["dst"]),
                        health=p["health"], health_reason=p["health_reason"],
                        rates=Rates(**p["rates"])) for p in e["pods"]]
        out.append(Edge(id=e["id"], src=_endpoint(e["src"]), dst=_endpoint(e["dst"]),
                        port=e["port"], protocol=e["protocol"], health=e["health"],
                        health_reason=e["health_reason"], rates=Rates(**e["rates"]),
                        first_seen=rfc3339(e["first_seen"]), last_seen=rfc3339(e["last_seen"]),
                        active=e["active"], alerts=e["alerts"], pods=pods))
    return EdgesResponse(now=rfc3339(v["now"]), edges=out, namespaces=sorted(namespaces))


def _alert(a: Alert, edge_ids: list[str], now: float) -> AlertOut:
    d = a.to_json_dict()
    src = d["identity"].get("src") or ""
    dst = d["identity"].get("dst") or d["labels"].get("dns_server", "")
    port = a.labels.get("dst_port", "")
    end = a.ends_at if a.state == "resolved" and a.ends_at is not None else now
    return AlertOut(fingerprint=a.fingerprint, type=a.type, severity=a.severity, state=a.state,
                    starts_at=d["starts_at"], ends_at=d["ends_at"], emitted_at=d["emitted_at"],
                    duration_seconds=max(0.0, end - a.starts_at), src=src, dst=dst,
                    dst_port=int(port) if port.isdigit() else None, labels=d["labels"],
                    summary=a.summary, cause=a.cause, evidence=d["evidence"],
                    flapping=a.flapping, inhibited_by=d["inhibited_by"], edges=edge_ids)


def alerts(store: DashboardStore, state: str = "") -> AlertsResponse:
    firing, resolved, by_fp, now = store.alerts_view()
    rows = []
    if state in ("", "firing"):
        rows += [_alert(a, by_fp.get(a.fingerprint, []), now) for a in firing]
    if state in ("", "resolved"):
        rows += [_alert(a, by_fp.get(a.fingerprint, []), now) for a in resolved]
    rows.sort(key=lambda a: a.starts_at, reverse=True)
    return AlertsResponse(now=rfc3339(now), alerts=rows)


def series(store: DashboardStore, eid: str) -> SeriesResponse | None:
    v = store.series_view(eid)
    if v is None:
        return None
    pts: list[Point] = v["points"]

    def by_key(get: Any) -> dict[str, list[int]]:
        keys = sorted({k for p in pts for k in get(p)})
        return {k: [get(p).get(k, 0) for p in pts] for k in keys}

    def mean_ms(s: float, n: int) -> float | None:
        return s / n * 1e3 if n else None

    return SeriesResponse(
        id=v["id"], src=_endpoint(v["src"]), dst=_endpoint(v["dst"]), port=v["port"],
        protocol=v["protocol"], bucket_seconds=v["bucket_seconds"],
        window_seconds=v["window_seconds"], t=[p.t for p in pts],
        connections=by_key(lambda p: p.outcomes), attempts=[p.attempts for p in pts],
        syn_retransmits=[p.syn_retransmits for p in pts],
        retransmits=[p.segs_retrans for p in pts], segments_sent=[p.segs_sent for p in pts],
        rtt_ms=[mean_ms(p.rtt_sum, p.rtt_count) for p in pts],
        rtt_max_ms=[p.rtt_max * 1e3 if p.rtt_count else None for p in pts],
        drops=by_key(lambda p: p.drops), dns_queries=[p.dns_queries for p in pts],
        dns_latency_ms=[mean_ms(p.dns_lat_sum, p.dns_lat_count) for p in pts],
        dns_latency_max_ms=[p.dns_lat_max * 1e3 if p.dns_lat_count else None for p in pts],
        dns_rcodes=by_key(lambda p: p.dns_rcodes), dns_timeouts=[p.dns_timeouts for p in pts])


def _event(s: StoredEvent) -> EventOut:
    e = s.event

    def hp(addr: str, port: int) -> str:
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    return EventOut(ts=rfc3339(e.ts), pid=e.pid, comm=e.comm, direction=e.direction,
                    kind=e.kind, outcome=e.outcome, error=e.error, src=hp(e.saddr, e.sport),
                    dst=hp(e.daddr, e.dport), src_name=s.src_name, dst_name=s.dst_name,
                    duration_ms=e.duration_s * 1e3 if e.duration_s is not None else None,
                    connect_ms=(e.connect_latency_s * 1e3 if e.connect_latency_s is not None
                                else None),
                    retransmits=e.retransmits, bytes_sent=e.bytes_sent,
                    bytes_received=e.bytes_received, edge=s.edge_id)


def events(store: DashboardStore, limit: int, edge: str = "") -> EventsResponse:
    return EventsResponse(events=[_event(s) for s in store.events_view(limit, edge)])


def health(store: DashboardStore, stream_clients: int = 0) -> HealthResponse:
    h = store.health_view()
    probes: dict[str, bool] = h.get("probes", {})
    last = h["last_tick"]
    started = h.get("started_at")
    return HealthResponse(
        node=h["node"], version=__version__, now=rfc3339(h["now"]),
        started_at=rfc3339(started) if started else None, ticks=h.get("ticks", 0),
        last_tick_age_seconds=max(0.0, h["now"] - last) if last is not None else None,
        probes=probes, probes_attached=sum(probes.values()), probes_total=len(probes),
        records_received=h.get("records_received", 0),
        records_lost=h.get("lost", {"kernel": 0, "queue": 0, "sink": 0}),
        detection_lag_seconds=h.get("detection_lag_seconds", 0.0), edges=h["edges"],
        pod_edges=h["pod_edges"], events=h["events"], evictions=h["evictions"],
        limits=h["limits"], stream_clients=stream_clients)


def snapshot(store: DashboardStore, version: int, stream_clients: int,
             event_limit: int = 50) -> Snapshot:
    return Snapshot(version=version, edges=edges(store), alerts=alerts(store),
                    health=health(store, stream_clients), events=events(store, event_limit))


# -- OpenAPI --------------------------------------------------------------------------------------

_MODELS: tuple[type[BaseModel], ...] = (
    EdgesResponse, AlertsResponse, SeriesResponse, EventsResponse, HealthResponse, Snapshot)


def _ok(model: str, what: str, media: str = "application/json") -> dict[str, Any]:
    return {"200": {"description": what, "content": {
        media: {"schema": {"$ref": f"#/components/schemas/{model}"}}}}}


def openapi() -> dict[str, Any]:
    _, top = models_json_schema([(m, "serialization") for m in _MODELS],
                                ref_template="#/components/schemas/{model}")
    unauthorized = {"401": {"description": "a token is required (bearer header or login "
                                           "cookie)"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kubepulse dashboard API", "version": __version__,
                 "description": "What the kubepulse dashboard shows, as JSON. Everything is "
                                "this agent's view of its own node, kept in memory for 15 "
                                "minutes (docs/dashboard.md)."},
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "cookie": {"type": "apiKey", "in": "cookie",
                                           "name": "kubepulse_session"}},
        },
        "security": [{}, {"bearer": []}, {"cookie": []}],
        "paths": {
            "/api/v1/alerts": {"get": {
                "summary": "firing and recently resolved alerts, newest first",
                "parameters": [{"name": "state", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": ["firing", "resolved"]}}],
                "responses": {**_ok("AlertsResponse", "the alerts"), **unauthorized}}},
            "/api/v1/edges": {"get": {
                "summary": "workload edges with rates and health, and their pod pairs",
                "responses": {**_ok("EdgesResponse", "the edges"), **unauthorized}}},
            "/api/v1/edges/{id}/series": {"get": {
                "summary": "one edge over the last 15 minutes",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9a-f]{12}$"}}],
                "responses": {**_ok("SeriesResponse", "the series"), **unauthorized,
                              "404": {"description": "no such edge (or it expired)"}}}},
            "/api/v1/events": {"get": {
                "summary": "the latest raw connection records (pid, comm), newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                "default": 100}},
                    {"name": "edge", "in": "query", "required": False,
                     "schema": {"type": "string"}, "description": "only this edge's"}],
                "responses": {**_ok("EventsResponse", "the records"), **unauthorized}}},
            "/api/v1/health": {"get": {
                "summary": "the agent's own health: probes, losses, lag, node",
                "responses": {**_ok("HealthResponse", "the agent's health"),
                              **unauthorized}}},
            "/api/v1/stream": {"get": {
                "summary": "server-sent events: a `snapshot` event (Snapshot JSON) after each "
                           "tick, at most once a second; a comment line every 5 s otherwise",
                "responses": {**_ok("Snapshot", "an event stream", "text/event-stream"),
                              **unauthorized,
                              "503": {"description": "too many streams open"}}}},
        },
    }
