"""End to end on the lab: a real fault, the real agent, a real Prometheus scraping it and a
real Alertmanager (Debian's servers) routing what it sends to a webhook served by this test.

1. `refused` on shop/api/api-0: PromQL shows the refused connects on the api edges (and on no
   other workload), the firing gauge rises, and Alertmanager holds connection_refused with
   our identity labels; once the fault is undone the alert resolves, and Alertmanager's
   resolved notification carries the endsAt the agent set.
2. Alertmanager is stopped, `refused` hits api-1, the agent fires while nothing listens; when
   Alertmanager is back on the same address the alert reaches it, and the agent counts no
   drop (its queue was far from its bound).

The Kubernetes API server is not involved: the lab's inventory names the pods.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubepulse.lab import cluster, faults
from kubepulse.model import parse_rfc3339
from tests.alerts.test_alertmanager import Receiver, active, am_config
from tests.export.servers import alertmanager, free_port, poll, prometheus, promql
from tests.live.test_events_cli import _read_until

pytestmark = [pytest.mark.lab, pytest.mark.live]

CONFIG = """
alerts:
  resolve_after_seconds: 5
alertmanager:
  resend_seconds: 1
  backoff_seconds: 0.1
  backoff_max_seconds: 0.5
"""


def _in_am(am: str, fingerprint: str) -> list[dict[str, Any]]:
    return [a for a in active(am) if a["labels"].get("kubepulse_fingerprint") == fingerprint]


def _jsonl(path: Path, pod: str, state: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [a for a in rows if a["type"] == "connection_refused" and a["state"] == state
            and a["labels"].get("dst_pod") == pod]


def _value(prom: str, query: str) -> float:
    r = promql(prom, query)
    return float(r[0]["value"][1]) if r else 0.0


def test_fault_to_prometheus_and_alertmanager_then_an_outage(
        lab: cluster.Lab, tmp_path: Path) -> None:
    cfg = tmp_path / "kubepulse.yaml"
    cfg.write_text(CONFIG)
    alerts = tmp_path / "alerts.jsonl"
    am_port, listen_port = free_port(), free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    rx = Receiver()
    rx.listener.start()
    agent = subprocess.Popen(
        [sys.executable, "-m", "kubepulse.cli", "run", "--inventory", str(lab.inventory_path),
         "--config", str(cfg), "--alerts-jsonl", str(alerts), "--state-dir",
         str(tmp_path / "state"), "--listen", f"127.0.0.1:{listen_port}", "--alertmanager",
         am_url, "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _read_until(agent, "stderr", "agent running", timeout=60)
        with prometheus(tmp_path, [f"127.0.0.1:{listen_port}"]) as prom:
            poll("Prometheus scraping the agent",
                 lambda: _value(prom, 'up{job="kubepulse"}') == 1, timeout=30, interval=0.5)
            # -- 1: a fault, seen in Prometheus and in Alertmanager, then resolved ---------
            with alertmanager(tmp_path, am_config(rx.listener.url), port=am_port,
                              name="am-1") as am:
                fault = faults.start(lab, "refused", "shop/api/api-0")
                try:
                    fp = poll("the agent firing for api-0 (JSONL)", lambda: _jsonl(
                        alerts, "api-0", "firing"), timeout=30, interval=0.2)[0]["fingerprint"]
                    got = poll("connection_refused for api-0 in Alertmanager",
                               lambda: _in_am(am, fp), timeout=20, interval=0.2)
                    labels = got[0]["labels"]
                    assert labels["alertname"] == "connection_refused"
                    # Pods churn: they are in the annotations, never in the labels.
                    assert "dst_pod" not in labels and "api-0" in got[0]["annotations"]["detail"]
                    assert labels["severity"] in ("warning", "critical")
                    assert (labels["dst_namespace"], labels["dst_workload"],
                            labels["dst_port"]) == ("shop", "api", "8080")
                    assert labels["src_namespace"] == "shop"
                    assert labels["src_workload"] in ("frontend", "loadgen")
                    assert "nothing listening" in got[0]["annotations"]["cause"]
                    assert got[0]["generatorURL"].startswith(f"http://127.0.0.1:{listen_port}/")
                    refused_q = ('sum(increase(kubepulse_connections_total{outcome="refused",'
                                 'dst_namespace="shop",dst_workload="api"}[2m]))')
                    poll("refused connects to api in Prometheus",
                         lambda: _value(prom, refused_q) >= 3, timeout=20, interval=0.5)
                    poll("the firing gauge in Prometheus", lambda: _value(
                        prom, 'kubepulse_alerts_firing{type="connection_refused"}') >= 1,
                        timeout=20, interval=0.5)
                finally:
                    truth = fault.stop(tmp_path / "labels.jsonl")
                # Only the faulted workload refused anything.
                others = ('sum(increase(kubepulse_connections_total{outcome="refused",'
                          'dst_workload!="api"}[5m]))')
                assert _value(prom, others) == 0
                poll("the alert resolved in Alertmanager",
                     lambda: not _in_am(am, fp), timeout=40, interval=0.5)
                resolved = poll("the resolved notification", lambda: [
                    a for a in rx.alerts("resolved")
                    if a["labels"].get("kubepulse_fingerprint") == fp], timeout=20)
                line = poll("the resolved JSONL line", lambda: _jsonl(alerts, "api-0",
                                                                       "resolved"))[-1]
                ends = parse_rfc3339(resolved[0]["endsAt"])
                assert abs(ends - parse_rfc3339(line["ends_at"])) < 0.01
                assert ends >= truth.end_epoch - 1.0  # not before the fault was undone
            # -- 2: Alertmanager down while a fault fires; delivered once it is back --------
            fault = faults.start(lab, "refused", "shop/api/api-1")
            try:
                fp = poll("the agent firing for api-1 (JSONL)", lambda: _jsonl(
                    alerts, "api-1", "firing"), timeout=30, interval=0.2)[0]["fingerprint"]
                with alertmanager(tmp_path, am_config(rx.listener.url), port=am_port,
                                  name="am-2") as am:
                    got = poll("the queued alert delivered after the outage",
                               lambda: _in_am(am, fp), timeout=30, interval=0.2)
                    assert got[0]["labels"]["dst_workload"] == "api"
            finally:
                fault.stop(tmp_path / "labels.jsonl")
            metrics = httpx.get(f"http://127.0.0.1:{listen_port}/metrics", timeout=5).text
            dropped = [ln for ln in metrics.splitlines()
                       if ln.startswith('kubepulse_sink_dropped_total{sink="alertmanager"')]
            # both stages are exported (at 0) from the start, so neither can be missing
            stages = {st for st in ("queue", "sink") for ln in dropped if f'stage="{st}"' in ln}
            assert stages == {"queue", "sink"}, dropped
            assert all(float(ln.rsplit(" ", 1)[1]) == 0 for ln in dropped), dropped
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            assert agent.wait(timeout=15) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
            rx.listener.close()
