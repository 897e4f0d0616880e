"""AlertmanagerSink against a real Alertmanager (Debian's prometheus-alertmanager).

Alertmanager routes to a webhook receiver served by this test (our own HttpListener), so the
test sees what a real route delivers: firing with our labels, then resolved with its endsAt.
"""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from kubepulse.alerts.alertmanager import AlertmanagerSink
from kubepulse.detect.config import AlertmanagerConfig
from kubepulse.export.http import HttpListener, Request, Response
from kubepulse.model import parse_rfc3339

from ..export.fakes import alert
from ..export.servers import alertmanager, free_port, poll


class Receiver:
    """A webhook receiver for Alertmanager's notifications."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.listener = HttpListener("127.0.0.1:0")
        self.listener.route("/hook", self.hook, methods=("POST",))

    def hook(self, req: Request) -> Response:
        with self.lock:
            self.notifications.append(json.loads(req.body))
        return Response(200)

    def alerts(self, status: str) -> list[dict[str, Any]]:
        with self.lock:
            return [a for n in self.notifications for a in n["alerts"] if a["status"] == status]


def am_config(receiver_url: str) -> str:
    return f"""
route:
  receiver: kubepulse
  group_by: [alertname, dst_workload]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: kubepulse
    webhook_configs:
      - url: {receiver_url}/hook
        send_resolved: true
"""


def active(base: str) -> list[dict[str, Any]]:
    resp = httpx.get(base + "/api/v2/alerts", timeout=5)
    resp.raise_for_status()
    out: list[dict[str, Any]] = resp.json()
    return out


def inactive(base: str) -> bool:
    return not active(base)


FAST = AlertmanagerConfig(resend_seconds=1.0, backoff_seconds=0.05, backoff_max_seconds=0.2,
                          timeout_seconds=2.0, dashboard_url="http://127.0.0.1:9810")


def test_fires_with_labels_then_resolves_in_both_of_an_ha_pair(tmp_path: Path) -> None:
    rx = Receiver()
    rx.listener.start()
    try:
        with alertmanager(tmp_path, am_config(rx.listener.url), name="a") as am1, \
                alertmanager(tmp_path, am_config(rx.listener.url), name="b") as am2:
            sink = AlertmanagerSink([am1, am2], FAST)
            try:
                start = time.time()
                sink.emit(alert(starts_at=start))
                for am in (am1, am2):
                    got = poll("the alert in Alertmanager", partial(active, am))
                    a = got[0]
                    assert a["labels"] == {
                        "alertname": "connection_refused", "severity": "critical",
                        "kubepulse_fingerprint": "fp0001", "src": "shop/web", "dst": "shop/api",
                        "dst_service": "shop/api", "dst_port": "8080", "node": "node1",
                        "src_namespace": "shop", "src_workload": "web",
                        "dst_namespace": "shop", "dst_workload": "api"}
                    assert a["annotations"]["summary"] == "shop/web -> api:8080 refused"
                    assert json.loads(a["annotations"]["evidence"]) == {"attempts": 12,
                                                                        "refused": 12}
                    assert "10.1.0.9" in a["annotations"]["detail"]  # addresses: annotations
                    assert a["generatorURL"] == "http://127.0.0.1:9810/#/alerts/fp0001"
                    assert abs(parse_rfc3339(a["startsAt"]) - start) < 0.01
                    assert parse_rfc3339(a["endsAt"]) > time.time()  # a few intervals ahead
                poll("the firing notification", lambda: rx.alerts("firing"))
                resolved_at = time.time()
                sink.emit(alert(state="resolved", starts_at=start, ends_at=resolved_at))
                for am in (am1, am2):
                    poll("the alert resolved", partial(inactive, am))
                got = poll("the resolved notification", lambda: rx.alerts("resolved"))
                assert got[0]["labels"]["alertname"] == "connection_refused"
                assert abs(parse_rfc3339(got[0]["endsAt"]) - resolved_at) < 0.01
                assert sink.dropped_total == {"queue": 0, "sink": 0}
            finally:
                sink.close()
    finally:
        rx.listener.close()


def test_firing_alert_is_resent_and_kept_alive(tmp_path: Path) -> None:
    with alertmanager(tmp_path, am_config("http://127.0.0.1:9")) as am:
        sink = AlertmanagerSink([am], FAST)
        try:
            sink.emit(alert(starts_at=time.time()))
            first = parse_rfc3339(poll("the alert", lambda: active(am))[0]["endsAt"])
            poll("a re-send moving endsAt forward",
                 lambda: parse_rfc3339(active(am)[0]["endsAt"]) > first + 0.5, timeout=10)
        finally:
            sink.close()


def test_outage_then_delivery_up_to_the_queue_bound(tmp_path: Path) -> None:
    port = free_port()
    cfg = AlertmanagerConfig(resend_seconds=2.0, backoff_seconds=0.05, backoff_max_seconds=0.2,
                             timeout_seconds=1.0, queue_size=20)
    sink = AlertmanagerSink([f"http://127.0.0.1:{port}"], cfg)
    try:
        now = time.time()
        with alertmanager(tmp_path, am_config("http://127.0.0.1:9"), port=port) as am:
            sink.emit(alert("before", starts_at=now))
            poll("delivery before the outage", lambda: active(am))
        # Alertmanager is stopped now (and has lost its in-memory alerts).
        t0 = time.monotonic()
        for i in range(25):  # Alertmanager is down: 20 are kept, 5 dropped and counted
            sink.emit(alert(f"fp{i:04d}", starts_at=now))
        assert time.monotonic() - t0 < 0.5, "emit must never block detection"
        poll("retries while down", lambda: sink.retries_total >= 3)
        assert sink.dropped_total["queue"] == 5 and sink.queued == 20
        with alertmanager(tmp_path, am_config("http://127.0.0.1:9"), port=port) as am:
            queued = {f"fp{i:04d}" for i in range(20)}
            poll("every queued alert delivered", lambda: queued <= {
                a["labels"]["kubepulse_fingerprint"] for a in active(am)}, timeout=20)
            assert sink.dropped_total == {"queue": 5, "sink": 0}
            # The periodic re-send then restores what the restart and the bound cost.
            every = queued | {f"fp{i:04d}" for i in range(20, 25)} | {"before"}
            poll("the re-send restoring the rest", lambda: {
                a["labels"]["kubepulse_fingerprint"] for a in active(am)} == every, timeout=20)
    finally:
        sink.close(timeout=1)
