"""The dashboard in a real browser (Debian's chromium), fed by a fake agent: fast and exact.

About 50 workloads in 5 namespaces, each with two pods, an external peer and kube-dns; one
edge refusing connects with its alert. The page must draw every workload, color the refusing
edge failing, list the anomaly with its evidence, highlight its edge and chart it when
selected, list the raw records, filter, search, expand to pods, show the alert resolved, and
raise the banner when the stream is lost; with no console error. Screenshots go to
artifacts/dashboard/.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from kubepulse.model import Identity
from tests.dashboard.fakes import (
    DashAgent,
    FakeResolver,
    alert,
    dns,
    pod,
    records,
    sample,
)
from tests.dashboard.feed import now, served

NAMESPACES = ("ns-a", "ns-b", "ns-c", "ns-d", "ns-e")
N = 50
DNS = pod("kube-system", "kube-dns", 0, "10.2.0.10", "kube-dns")
EXTERNAL = Identity(address="93.184.216.34", kind="external")


def workloads() -> list[tuple[Identity, Identity]]:
    out = []
    for i in range(N):
        ns, name = NAMESPACES[i // 10], f"svc-{i:02d}"
        out.append((pod(ns, name, 0, f"10.2.{i + 1}.10", name),
                    pod(ns, name, 1, f"10.2.{i + 1}.11", name)))
    return out


PODS = workloads()
BAD = (3, 4)  # svc-03 -> svc-04 refuses
FP = "aa11bb22cc33dd44"


def refused_alert(state: str, starts: float, ends: float | None) -> Any:
    return alert(FP, "connection_refused", "critical", state, starts, ends,
                 {"src_namespace": "ns-a", "src_workload": "svc-03", "src_pod": "svc-03-0",
                  "dst_namespace": "ns-a", "dst_workload": "svc-04", "dst_service": "svc-04",
                  "dst_port": "8080", "node": "node-test"},
                 "ns-a/svc-03 -> svc-04:8080: 16 of 20 connects refused",
                 "nothing listening on svc-04:8080",
                 {"refused": 16, "attempts": 20, "handshakes": 4, "ratio": 0.8,
                  "baseline": {"mean": 0.0, "stddev": 0.0, "windows": 42},
                  "window_seconds": 3.0},
                 {"src": "ns-a/svc-03", "dst": "ns-a/svc-04", "dst_port": "8080"})


def fill(agent: DashAgent, t: float, bad: bool) -> None:
    samples = []
    for i in range(N):
        for j in (i + 1) % N, (i + 7) % N:
            for n in range(2):
                refusing = bad and (i, j) == BAD
                samples.append(sample(PODS[i][n], PODS[j][n], 8080, ok=1 if refusing else 5,
                                      refused=4 if refusing else 0, retrans=10 if i == 9 else 0,
                                      rtt_s=0.0004 + 0.0001 * (i % 5)))
    samples.append(sample(PODS[0][0], EXTERNAL, 443, ok=2, rtt_s=0.02))
    agent.last_samples = samples
    agent.last_dns = [dns(PODS[i][0], "10.2.0.10", 4, 0.0015) for i in range(0, N, 5)]
    agent.last_records = records([
        {"ts": t, "pid": 4000 + n, "comm": "python3", "src": PODS[3][n].address,
         "sport": 40000 + n, "dst": PODS[4][n].address, "dport": 8080,
         "outcome": "refused" if bad else "established_closed"} for n in range(2)])


def agent() -> DashAgent:
    idents = [p for pair in PODS for p in pair] + [DNS]
    return DashAgent(resolver=FakeResolver(idents))


def test_the_page_shows_map_anomaly_drilldown_and_a_lost_stream() -> None:
    from tests.dashboard.browser import chromium, open_page

    a = agent()
    with served(a) as s, chromium() as browser:
        t0 = now()
        a.alerts.open[FP] = refused_alert("firing", t0 - 3, None)
        for k in range(4):
            fill(a, t0 + k * 0.5, bad=True)
            s.tick()
        with open_page(browser, s.url + "/") as w:
            page = w.page
            w.wait("the map drawn",
                   "() => window.kubepulse && kubepulse.cy.nodes('[?workloadNode]').length >= 52")
            names = page.evaluate(
                "() => kubepulse.cy.nodes('[kind = \"pod\"][?workloadNode]').map(n => n.id())")
            assert sorted(names) == sorted(
                [f"{ns}/svc-{i:02d}" for i in range(N) for ns in (NAMESPACES[i // 10],)]
                + ["kube-system/kube-dns"])
            assert page.evaluate(
                "() => kubepulse.cy.getElementById('93.184.216.34').data('kind')") == "external"
            health = page.evaluate("""() => Object.fromEntries(kubepulse.cy.edges().map(
                e => [e.source().id() + '>' + e.target().id(), e.data('health')]))""")
            assert health["ns-a/svc-03>ns-a/svc-04"] == "failing"
            assert health["ns-a/svc-04>ns-a/svc-05"] == "normal"
            assert health["ns-a/svc-09>ns-b/svc-10"] == "degraded"  # retransmits
            assert page.locator("#node-name").text_content() == "node-test"
            assert "4 / 4" in page.locator("#health-list").text_content()
            w.screenshot("map-fake.png")

            # -- the anomaly: listed with its evidence; selecting it highlights its edge ----
            item = page.locator(f'#alert-list li[data-fingerprint="{FP}"]')
            text = item.text_content()
            for want in ("connection_refused", "critical", "firing", "ns-a/svc-03",
                         "ns-a/svc-04:8080", "nothing listening on svc-04:8080", "refused",
                         "16", "baseline.windows"):
                assert want in text, (want, text)
            item.click()
            w.wait("the alert's edge highlighted",
                   "() => kubepulse.cy.edges('.highlight').length > 0")
            hl = page.evaluate("() => kubepulse.cy.edges('.highlight').map("
                               "e => e.source().id() + '>' + e.target().id())")
            assert hl == ["ns-a/svc-03>ns-a/svc-04"]
            page.wait_for_selector("#charts .chart canvas")
            assert page.locator("#charts .chart").count() == 6
            assert "ns-a/svc-03 → ns-a/svc-04:8080" in page.locator("#drill-title").text_content()
            assert page.locator("#drill-health").text_content().startswith("failing")
            w.wait("the edge's raw records",
                   "() => document.querySelectorAll('#events tbody tr').length === 8")
            row = page.locator("#events tbody tr").first.text_content()
            assert "python3" in row and "refused" in row and "ECONNREFUSED" in row
            assert "400" in row  # pid 4000/4001
            w.screenshot("anomaly-fake.png")

            # -- filter, search, expand -------------------------------------------------------
            page.select_option("#ns-filter", "ns-c")
            w.wait("the namespace filter applied", """() => kubepulse.cy.nodes(
                '[kind = "pod"][?workloadNode]').every(n => n.data('namespace') === 'ns-c'
                || n.connectedEdges().some(e => e.connectedNodes().some(
                    m => m.data('namespace') === 'ns-c')))""")
            shown = page.evaluate("() => kubepulse.cy.nodes('[kind = \"pod\"][?workloadNode]')"
                                  ".map(n => n.data('namespace'))")
            assert set(shown) - {"ns-c"} <= {"ns-b", "ns-d", "kube-system"} and "ns-c" in shown
            assert shown.count("ns-c") == 10
            page.select_option("#ns-filter", "")
            page.fill("#search", "svc-42")
            assert page.evaluate("() => kubepulse.cy.nodes('.match').map(n => n.id())") == [
                "ns-e/svc-42"]
            page.fill("#search", "")
            page.evaluate("() => kubepulse.selectNode('ns-a/svc-04')")
            rows = page.locator("#node-edges tbody tr").all_text_contents()
            assert len(rows) == 4 and sum("failing" in r for r in rows) == 1, rows
            assert page.locator("#drill-title").text_content().startswith(
                "Workload ns-a/svc-04")
            page.click("#drill-close")
            page.evaluate("() => kubepulse.expand('ns-a/svc-03')")
            pods = page.evaluate("() => kubepulse.cy.nodes('[kind = \"podNode\"]')"
                                 ".map(n => n.id()).sort()")
            assert pods == ["ns-a/svc-03-0", "ns-a/svc-03-1"]
            page.click("#collapse")

            # -- the fault ends: the alert shows resolved --------------------------------------
            del a.alerts.open[FP]
            fill(a, now(), bad=False)
            s.tick([refused_alert("resolved", t0 - 3, now())])
            page.wait_for_selector(f'#alert-list li[data-fingerprint="{FP}"][data-state="resolved"]')
            w.assert_clean()

            # -- the stream is lost: a banner -------------------------------------------------
            s.listener.close()
            page.wait_for_selector("#banner", state="visible")
            assert "stream lost" in page.locator("#banner").text_content().lower()
            assert not w.page_errors and not w.dialogs


def test_the_json_api_and_openapi_agree() -> None:
    a = agent()
    with served(a) as s:
        fill(a, now(), bad=True)
        a.alerts.open[FP] = refused_alert("firing", now() - 3, None)
        s.tick()

        def get(path: str) -> Any:
            with urllib.request.urlopen(s.url + path, timeout=5) as r:
                assert r.headers.get("Access-Control-Allow-Origin") is None
                return json.loads(r.read())

        spec = get("/openapi.json")
        for path in ("/api/v1/alerts", "/api/v1/edges", "/api/v1/edges/{id}/series",
                     "/api/v1/events", "/api/v1/health", "/api/v1/stream"):
            assert path in spec["paths"], path
        assert {"EdgesResponse", "AlertsResponse", "SeriesResponse", "EventsResponse",
                "HealthResponse", "Snapshot"} <= set(spec["components"]["schemas"])
        edges = get("/api/v1/edges")["edges"]
        bad = next(e for e in edges if (e["src"]["id"], e["dst"]["id"]) == (
            "ns-a/svc-03", "ns-a/svc-04"))
        assert bad["health"] == "failing" and bad["alerts"] == [FP]
        assert bad["rates"]["outcomes"]["refused"] == 8  # one tick, two pod pairs
        series = get(f"/api/v1/edges/{bad['id']}/series")
        assert series["connections"]["refused"][-1] == 8
        assert get("/api/v1/alerts?state=firing")["alerts"][0]["edges"] == [bad["id"]]
        assert get("/api/v1/alerts?state=resolved")["alerts"] == []
        assert len(get("/api/v1/events?limit=1")["events"]) == 1
        assert get("/api/v1/health")["probes_attached"] == 4
