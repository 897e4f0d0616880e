"""Against the real Prometheus tools: promtool on the rules and a live /metrics, a real server
scraping a live exporter fed with synthetic ticks, and every Grafana panel's PromQL."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kubepulse.detect.config import MetricsConfig
from kubepulse.export.http import HttpListener, serve_agent_routes
from kubepulse.export.metrics import AgentMetrics
from kubepulse.model import DnsSample, DropSample, EdgeKey, LatencyStat

from .fakes import API, WEB, FakeAgent, alert, edge_sample, pod
from .servers import PROMTOOL, need, poll, prometheus, promql

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/kubepulse-rules.yml"
DASHBOARD = ROOT / "deploy/grafana/kubepulse-dashboard.json"


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    need(PROMTOOL)
    return subprocess.run([PROMTOOL, *args], check=False, input=stdin, capture_output=True, timeout=60,
                          cwd=ROOT)


def tick(agent: FakeAgent, m: AgentMetrics) -> None:
    agent.last_samples = [
        edge_sample(ok=4, refused=6, attempts=10, segs_sent=200, segs_retrans=10,
                    open_connections=2, latency=LatencyStat(0.002, 2, 0.0015)),
        edge_sample(src=pod("shop", "cart"), ok=3, attempts=3, segs_sent=50),
    ]
    agent.last_drops = [DropSample(EdgeKey(WEB, API, 8080), "NETFILTER_DROP", "policy", 2)]
    agent.last_dns = [DnsSample(WEB, queries=5, rcodes={"NOERROR": 4, "SERVFAIL": 1},
                                latency=LatencyStat(0.01, 5, 0.004))]
    agent.stats.ticks += 1
    agent.stats.records_received += 13
    m.observe_tick(agent, [alert(starts_at=1.0)] if agent.stats.ticks == 1 else [])


@pytest.fixture
def exporter() -> Iterator[tuple[HttpListener, AgentMetrics, FakeAgent]]:
    m = AgentMetrics()
    agent = FakeAgent()
    agent.alerts.open["fp0001"] = alert(starts_at=1.0)
    tick(agent, m)
    listener = HttpListener("127.0.0.1:0")
    serve_agent_routes(listener, m)
    listener.start()
    try:
        yield listener, m, agent
    finally:
        listener.close()


def test_promtool_check_rules() -> None:
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_promtool_test_rules() -> None:
    r = promtool("test", "rules", "deploy/prometheus/tests/kubepulse-rules.test.yml")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_prometheusrule_matches_rules_file() -> None:
    pr = yaml.safe_load((ROOT / "deploy/prometheus/prometheusrule.yaml").read_text())
    assert pr["kind"] == "PrometheusRule"
    assert pr["spec"] == yaml.safe_load(RULES.read_text())


def test_promtool_check_metrics_on_live_exposition(exporter: tuple[HttpListener, AgentMetrics,
                                                                   FakeAgent]) -> None:
    listener, _, _ = exporter
    body = httpx.get(listener.url + "/metrics", timeout=5).content
    r = promtool("check", "metrics", stdin=body)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr  # no lint notes


def test_real_prometheus_scrapes_and_queries(
        tmp_path: Path, exporter: tuple[HttpListener, AgentMetrics, FakeAgent]) -> None:
    listener, m, agent = exporter
    # The rules as shipped, but every group evaluated each second (the recording group's 30 s
    # would leave it unevaluated for the length of this test).
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(RULES.read_text().replace("interval: 30s", "interval: 1s"))
    n_rules = sum(len(g["rules"]) for g in yaml.safe_load(rules_file.read_text())["groups"])
    with prometheus(tmp_path, [f"127.0.0.1:{listener.port}"], [str(rules_file)]) as prom:
        def scraped_twice_with_growth() -> bool:
            tick(agent, m)
            r = promql(prom, 'increase(kubepulse_connections_total{outcome="refused"}[1m])')
            return bool(r) and float(r[0]["value"][1]) > 0

        poll("two scrapes of a growing counter", scraped_twice_with_growth, timeout=30,
             interval=0.5)
        up = promql(prom, 'up{job="kubepulse"}')
        assert up and up[0]["value"][1] == "1"
        r = promql(prom, 'sum by (dst_workload, outcome) (kubepulse_connections_total'
                         '{src_workload="web"})')
        got = {(s["metric"]["dst_workload"], s["metric"]["outcome"]): float(s["value"][1])
               for s in r}
        assert set(got) == {("api", "refused"), ("api", "established_closed")}
        assert got[("api", "refused")] / got[("api", "established_closed")] == pytest.approx(1.5)
        r = promql(prom, 'kubepulse_alerts_firing{type="connection_refused"}')
        assert float(r[0]["value"][1]) == 1
        r = promql(prom, 'histogram_quantile(0.99, sum by (le) '
                         '(kubepulse_connect_latency_seconds_bucket))')
        assert 0.001 <= float(r[0]["value"][1]) <= 0.0025
        r = promql(prom, 'kubepulse_probe_attached == 0')
        assert r == []
        # Every panel of the dashboard is accepted by the real query API on this data.
        dash = json.loads(DASHBOARD.read_text())
        names = {v["name"] for v in dash["templating"]["list"]}
        assert {"namespace", "workload"} <= names
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        assert len(exprs) >= 14
        non_empty = 0
        for expr in exprs:
            q = (expr.replace("$__rate_interval", "1m").replace("$namespace", ".*")
                 .replace("$workload", ".*"))
            assert "$" not in re.sub(r"\{\{[^}]*\}\}", "", q), q
            non_empty += bool(promql(prom, q))
        assert non_empty >= len(exprs) // 2, "most panels should show the test data"
        # The rules load into the real server, and every one of them evaluates without error.
        def evaluated() -> list[dict[str, Any]] | None:
            groups = httpx.get(prom + "/api/v1/rules", timeout=5).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            done = [r for r in rules if r.get("lastEvaluation", "").startswith("20")]
            return rules if rules and len(done) == len(rules) else None

        rules = poll("every rule evaluated", evaluated, timeout=15, interval=0.5)
        assert len(rules) == n_rules, rules
        assert all(r["health"] == "ok" for r in rules), rules


def test_high_cardinality_stays_under_cap_and_scrapes_fast(tmp_path: Path) -> None:
    cap = 10_000
    m = AgentMetrics(MetricsConfig(max_series=cap))
    agent = FakeAgent()
    peers = 12_000
    agent.last_samples = [edge_sample(dst=pod("tenant", f"peer{i}", addr=f"10.{i >> 16}."
                                              f"{(i >> 8) & 255}.{i & 255}"),
                                      port=8000 + i % 100, ok=1, attempts=1,
                                      latency=LatencyStat(0.001, 1, 0.001))
                          for i in range(peers)]
    t0 = time.perf_counter()
    m.observe_tick(agent, [])
    tick_s = time.perf_counter() - t0
    listener = HttpListener("127.0.0.1:0")
    serve_agent_routes(listener, m)
    listener.start()
    try:
        times, size = [], 0
        for _ in range(5):
            t0 = time.perf_counter()
            resp = httpx.get(listener.url + "/metrics", timeout=10)
            times.append(time.perf_counter() - t0)
            size = len(resp.content)
        lines = [ln for ln in resp.text.splitlines() if ln and not ln.startswith("#")]
        assert m.series <= cap
        assert len(lines) <= cap + 500, len(lines)  # the cap, plus "other" and self-metrics
        assert "10.0." not in resp.text
        scrape = sorted(times)[len(times) // 2]
        assert scrape < 1.0, times
        r = promtool("check", "metrics", stdin=resp.content)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        print(f"\nBENCH peers={peers} cap={cap} series={m.series} lines={len(lines)} "
              f"bytes={size} tick_ms={tick_s * 1e3:.1f} scrape_median_ms={scrape * 1e3:.1f} "
              f"overflow={sum(m.overflow_total.values())}")
    finally:
        listener.close()
