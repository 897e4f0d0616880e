"""AgentMetrics fed with synthetic ticks: families, labels, the cap, the grace period, HTTP."""

from __future__ import annotations

import time

import httpx
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubepulse.detect.config import MetricsConfig
from kubepulse.export.http import HttpListener, serve_agent_routes
from kubepulse.export.metrics import AgentMetrics
from kubepulse.model import DnsSample, DropSample, EdgeKey, Identity, LatencyStat

from .fakes import API, WEB, FakeAgent, alert, edge_sample, pod


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def samples(m: AgentMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(m: AgentMetrics, name: str, **labels: str) -> float:
    rows = [v for lab, v in samples(m).get(name, []) if labels.items() <= lab.items()]
    assert rows, (name, labels)
    return sum(rows)


def test_families_and_values() -> None:
    m = AgentMetrics(clock=Clock())
    agent = FakeAgent()
    agent.stats.kernel_counters = {"ringbuf_full": 3, "records": 50, "retransmits": 7,
                                   "resets_rx": 2, "brand_new": 1}
    agent.stats.records_received, agent.stats.lost_kernel = 47, 3
    agent.stats.engine = {"edges_tracked": 4, "evictions_total": 9}
    agent.alerts.open["fp0001"] = alert(starts_at=1.0)
    for _ in range(3):
        agent.last_samples = [edge_sample(ok=5, refused=2, reset_received=1, attempts=8,
                                          segs_sent=100, segs_retrans=4, open_connections=3,
                                          latency=LatencyStat(0.004, 4, 0.0025))]
        agent.last_drops = [DropSample(EdgeKey(WEB, API, 8080), "NETFILTER_DROP", "policy", 6)]
        agent.last_dns = [DnsSample(WEB, queries=10, rcodes={"NOERROR": 8, "NXDOMAIN": 1},
                                    latency=LatencyStat(0.02, 9, 0.01), timeouts=1)]
        m.observe_tick(agent, [alert(starts_at=1.0)])
    edge = {"src_namespace": "shop", "src_workload": "web", "dst_namespace": "shop",
            "dst_workload": "api", "dst_service": "api", "port": "8080"}
    assert value(m, "kubepulse_connections_total", outcome="refused", **edge) == 6
    assert value(m, "kubepulse_connections_total", outcome="established_closed") == 15
    assert value(m, "kubepulse_resets_total", direction="received") == 3
    assert value(m, "kubepulse_tcp_segments_retransmitted_total", **edge) == 12
    assert value(m, "kubepulse_open_connections", **edge) == 3
    assert value(m, "kubepulse_connect_latency_seconds_count", **edge) == 12
    assert abs(value(m, "kubepulse_connect_latency_seconds_sum", **edge) - 0.012) < 1e-9
    # one observation at the max (2.5 ms), three at the mean of the rest (0.5 ms)
    assert value(m, "kubepulse_connect_latency_seconds_bucket", le="0.0005", **edge) == 9
    assert value(m, "kubepulse_connect_latency_seconds_bucket", le="0.0025", **edge) == 12
    assert value(m, "kubepulse_drops_total", reason="NETFILTER_DROP", **{"class": "policy"}) == 18
    assert value(m, "kubepulse_dns_responses_total", rcode="NXDOMAIN", workload="web") == 3
    assert value(m, "kubepulse_dns_timeouts_total") == 3
    assert value(m, "kubepulse_dns_latency_seconds_count") == 27
    assert value(m, "kubepulse_anomalies_total", type="connection_refused",
                 severity="critical") == 3
    assert value(m, "kubepulse_alerts_firing", type="connection_refused") == 1
    assert value(m, "kubepulse_alerts_firing", type="dns_errors") == 0
    assert value(m, "kubepulse_records_lost_total", stage="kernel") == 3
    assert value(m, "kubepulse_records_processed_total", probe="tcp_conn") == 47
    assert value(m, "kubepulse_kernel_tcp_retransmits_total") == 7
    assert value(m, "kubepulse_kernel_tcp_resets_total", direction="received") == 2
    assert value(m, "kubepulse_kernel_events_total", counter="brand_new") == 1
    assert value(m, "kubepulse_probe_attached", probe="skb:kfree_skb") == 1
    assert value(m, "kubepulse_tracked", kind="edges") == 4
    assert value(m, "kubepulse_tracker_evictions_total") == 9
    assert value(m, "kubepulse_build_info") == 1
    # The second tier never reaches Prometheus: no pod names, no addresses.
    text = generate_latest(m.registry).decode()
    assert "10.1.0" not in text and "web-0" not in text


def test_external_peers_never_become_labels() -> None:
    m = AgentMetrics(clock=Clock())
    agent = FakeAgent(last_samples=[
        edge_sample(dst=Identity(address=f"203.0.{i // 256}.{i % 256}", kind="external"),
                    port=443, ok=1) for i in range(2000)])
    m.observe_tick(agent, [])
    rows = samples(m)["kubepulse_connections_total"]
    assert len(rows) == 1 and rows[0][0]["dst_workload"] == "external" and rows[0][1] == 2000


def test_series_cap_folds_into_other_and_counts() -> None:
    m = AgentMetrics(MetricsConfig(max_series=500), clock=Clock())
    agent = FakeAgent(last_samples=[edge_sample(dst=pod("ns", f"svc{i}"), ok=1, attempts=1)
                                    for i in range(12_000)])
    m.observe_tick(agent, [])
    assert m.series <= 500
    assert value(m, "kubepulse_connections_total", dst_workload="other") > 0
    total = value(m, "kubepulse_connections_total")
    assert total == 12_000  # folded, never lost
    assert value(m, "kubepulse_series_overflow_total",
                 family="kubepulse_connections") > 11_000


def test_gone_workloads_are_removed_after_grace() -> None:
    clock = Clock()
    m = AgentMetrics(MetricsConfig(grace_seconds=60), clock=clock)
    agent = FakeAgent(last_samples=[edge_sample(ok=1), edge_sample(src=pod("a", "gone"), ok=1)])
    m.observe_tick(agent, [])
    before = m.series
    for _ in range(20):  # "web" keeps talking; "gone" is gone
        clock.t += 5
        agent.last_samples = [edge_sample(ok=1)]
        m.observe_tick(agent, [])
    assert m.series == before - 1
    assert not [r for r in samples(m)["kubepulse_connections_total"]
                if r[0]["src_workload"] == "gone"]
    assert value(m, "kubepulse_series_removed_total") == 1


def test_http_routes_and_readiness() -> None:
    clock = Clock()
    m = AgentMetrics(clock=clock)
    listener = HttpListener("127.0.0.1:0")
    serve_agent_routes(listener, m)
    listener.route("/api/", lambda req: __import__("kubepulse.export.http").export.http
                   .Response(200, b"dashboard"), prefix=True)
    listener.start()
    try:
        with httpx.Client(base_url=listener.url, timeout=5) as c:
            assert c.get("/healthz").status_code == 200
            assert c.get("/readyz").status_code == 503  # no tick yet
            agent = FakeAgent()
            m.observe_tick(agent, [])
            assert c.get("/readyz").status_code == 200
            clock.t += 60
            r = c.get("/readyz")
            assert r.status_code == 503 and "last tick" in r.text
            m.observe_tick(agent, [])
            agent.stats.attach_status["sock:inet_sock_set_state"] = False
            assert c.get("/readyz").status_code == 503
            r = c.get("/metrics")
            assert r.status_code == 200 and "kubepulse_build_info" in r.text
            assert r.headers["content-type"].startswith("text/plain")
            assert c.get("/api/alerts").text == "dashboard"
            assert c.get("/nope").status_code == 404
            assert c.post("/metrics").status_code == 405
    finally:
        listener.close()
    t0 = time.monotonic()
    listener.close()  # idempotent
    assert time.monotonic() - t0 < 1
