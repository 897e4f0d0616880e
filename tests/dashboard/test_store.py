"""The store's bounds, evictions, rates, health and alert-to-edge mapping (no browser)."""

from __future__ import annotations

from kubepulse.dashboard import DashboardStore, StoreConfig
from kubepulse.dashboard.store import edge_id, health_of, rates
from tests.dashboard.fakes import DashAgent, FakeResolver, alert, dns, pod, records, sample


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


WEB = [pod("shop", "web", n, f"10.0.0.{n + 1}") for n in range(3)]
API = [pod("shop", "api", n, f"10.0.1.{n + 1}", "api") for n in range(3)]


def test_workload_edges_aggregate_pods_and_rate_over_the_window() -> None:
    clock = Clock()
    store = DashboardStore(StoreConfig(rate_window_seconds=10.0), clock=clock)
    a = DashAgent()
    for _ in range(20):  # 10 s of ticks
        a.last_samples = [sample(WEB[n], API[n], 8080, ok=2, rtt_s=0.001) for n in range(3)]
        store.observe(a, [])
        clock.t += 0.5
    [e] = store.edges_view()["edges"]
    assert e["id"] == edge_id("shop/web", "shop/api", 8080, "tcp")
    assert len(e["pods"]) == 3
    assert abs(e["rates"]["connections_per_second"] - 6 * 20 / 10.0) < 1e-9
    assert e["health"] == "normal" and abs(e["rates"]["rtt_ms"] - 1.0) < 1e-9


def test_caps_evict_and_count() -> None:
    clock = Clock()
    cfg = StoreConfig(max_edges=5, max_pod_edges_per_edge=2, max_events=4, events_per_tick=3,
                      window_seconds=60.0, bucket_seconds=5.0)
    store = DashboardStore(cfg, clock=clock)
    a = DashAgent(resolver=FakeResolver(WEB + API))
    a.last_samples = [sample(pod("ns", f"c{i}", 0, f"10.9.0.{i + 1}"), API[0], 80, ok=1)
                      for i in range(8)]
    a.last_records = records([{"ts": clock.t, "pid": i, "comm": "c", "src": "10.0.0.1",
                               "sport": 1000 + i, "dst": "10.0.1.1", "dport": 80}
                              for i in range(5)])
    store.observe(a, [])
    assert len(store.edges_view()["edges"]) == 5 and store.evictions.edges == 3
    assert store.evictions.events == 2  # 5 records, 3 decoded per tick
    store.observe(a, [])
    assert len(store.events_view(100)) == 4 and store.evictions.events == 2 + 2 + 2
    a.last_samples = [sample(WEB[n], API[n], 8080, ok=1) for n in range(3)]
    a.last_records = records([])
    store.observe(a, [])
    web_api = store.edges_view()["edges"][0]
    assert len(web_api["pods"]) == 2 and store.evictions.pod_edges == 1
    for _ in range(30):  # 15 s of ticks: at most 60/5 buckets, then 61 s idle: expired
        clock.t += 5.0
        store.observe(a, [])
    assert len(store.series_view(web_api["id"])["points"]) == 12  # type: ignore[index]
    a.last_samples = []
    clock.t += 61.0
    store.observe(a, [])
    assert store.edges_view()["edges"] == [] and store.evictions.edges_expired >= 1


def test_alerts_map_to_their_edges_and_raise_health() -> None:
    clock = Clock()
    store = DashboardStore(clock=clock)
    a = DashAgent()
    a.last_samples = [sample(WEB[0], API[0], 8080, ok=10)]
    a.last_dns = [dns(WEB[0], "10.0.9.9", 4, 0.001)]
    labels = {"src_namespace": "shop", "src_workload": "web", "dst_namespace": "shop",
              "dst_workload": "api", "dst_port": "8080"}
    a.alerts.open["f1"] = alert("f1", "connection_reset", "critical", "firing", clock.t,
                                None, labels, "", "", {}, {})
    a.alerts.open["f2"] = alert("f2", "dns_latency", "warning", "firing", clock.t, None,
                                {"src_namespace": "shop", "src_workload": "web",
                                 "dns_server": "10.0.9.9"}, "", "", {}, {})
    store.observe(a, [])
    firing, resolved, by_fp, _ = store.alerts_view()
    assert len(firing) == 2 and resolved == []
    assert by_fp["f1"] == [edge_id("shop/web", "shop/api", 8080, "tcp")]
    assert by_fp["f2"] == [edge_id("shop/web", "10.0.9.9", 53, "dns")]
    health = {e["protocol"]: e["health"] for e in store.edges_view()["edges"]}
    assert health == {"tcp": "failing", "dns": "degraded"}
    del a.alerts.open["f1"]
    store.observe(a, [alert("f1", "connection_reset", "critical", "resolved", clock.t - 5,
                            clock.t, labels, "", "", {}, {})])
    firing, resolved, _, _ = store.alerts_view()
    assert [x.fingerprint for x in resolved] == ["f1"] and len(firing) == 1


def test_health_from_rates() -> None:
    from kubepulse.dashboard.store import Point

    def verdict(**kw: int) -> str:
        p = Point(0.0)
        p.outcomes = {k: v for k, v in kw.items() if k in ("established_closed", "refused")}
        p.syn_retransmits = kw.get("syn", 0)
        return health_of(rates([p], 10.0), ())[0]

    assert verdict(established_closed=10) == "normal"
    assert verdict(established_closed=9, refused=1) == "degraded"
    assert verdict(established_closed=2, refused=8) == "failing"
    assert verdict(syn=5) == "failing"  # no close at all, handshakes unanswered
