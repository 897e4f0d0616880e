"""Scenario 5: the webhook receiver and Alertmanager are down, or answer 500, during a fault.

The real agent fires 8 alerts (refused connects to 8 closed ports) while both are out. With
``queue_size: 5`` each sink must hold what its bound allows, retry with exponential backoff
(no hammering), deliver once the receiver is back, and count as dropped exactly what exceeded
the bound: the webhook holds 5 queued + 1 in flight (2 dropped), Alertmanager's pending set
holds 5 (3 dropped, which its periodic re-send then delivers anyway). Nothing is given up
(``stage="sink"`` stays 0).

The short outage (10 s) runs in CI; the 2-minute one is marked ``soak`` (``make soak``).
tests/alerts/test_alertmanager.py and tests/unit/alerts/test_webhook.py prove the same
bounds on the sinks alone; this is the agent, its metrics and a real Alertmanager.

Note: the webhook sink gives up on an alert after ``max_attempts`` (default 5, i.e. about
7.5 s of retrying with the default backoff); the config here raises it so that a long outage
is survivable. With the defaults, an outage longer than that loses the alert (counted as
``stage="sink"``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.export.servers import alertmanager, free_port, poll

from .agentproc import AgentProc, fire_refused, refuse
from .record import record

pytestmark = pytest.mark.live

N_ALERTS = 8
QUEUE = 5
BACKOFF, BACKOFF_MAX = 0.25, 4.0
CONFIG = f"""\
alerts:
  resolve_after_seconds: 600
  webhook:
    queue_size: {QUEUE}
    max_attempts: 100000
    backoff_seconds: {BACKOFF}
    backoff_max_seconds: {BACKOFF_MAX}
alertmanager:
  resend_seconds: 5
  queue_size: {QUEUE}
  backoff_seconds: {BACKOFF}
  backoff_max_seconds: {BACKOFF_MAX}
"""
AM_ROUTE = """
route: {receiver: none, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: none}]
"""


class Flaky:
    """An HTTP server on ``port`` answering ``status`` to every POST, recording each one."""

    def __init__(self, port: int, status: int) -> None:
        self.status = status
        self.posts: list[tuple[float, int, object]] = []  # (monotonic time, status, body)
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                status = flaky.status
                flaky.posts.append((time.monotonic(), status, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fingerprints(self, status: int = 200) -> set[str]:
        return {b["fingerprint"] for _, s, b in self.posts
                if s == status and isinstance(b, dict)}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@contextmanager
def flaky(port: int, status: int) -> Iterator[Flaky]:
    f = Flaky(port, status)
    try:
        yield f
    finally:
        f.close()


def _expected_attempts(seconds: float) -> int:
    """Attempts a sender with this backoff makes in ``seconds`` of failures."""
    t, delay, n = 0.0, BACKOFF, 1
    while t + delay <= seconds:
        t += delay
        n += 1
        delay = min(delay * 2, BACKOFF_MAX)
    return n


def _drops(a: AgentProc) -> dict[tuple[str, str], float]:
    m = a.metrics()
    return {(s, st): a.metric("kubepulse_sink_dropped_total", m, sink=s, stage=st)
            for s in ("webhook", "alertmanager") for st in ("queue", "sink")}


def _am_fps(base: str) -> set[str]:
    body = httpx.get(base + "/api/v2/alerts", timeout=5).json()
    return {a["labels"]["kubepulse_fingerprint"] for a in body}


def _outage(tmp_path: Path, pod: tuple[str, Path], mode: str, seconds: float) -> None:
    netns, inventory = pod
    wh_port, am_port = free_port(), free_port()
    a = AgentProc(tmp_path / "agent", config=CONFIG, extra=[
        "--inventory", str(inventory), "--webhook", f"http://127.0.0.1:{wh_port}/hook",
        "--alertmanager", f"http://127.0.0.1:{am_port}"])
    wh = Flaky(wh_port, 500) if mode == "500" else None
    am500 = Flaky(am_port, 500) if mode == "500" else None
    try:
        a.start()
        ports = list(range(20001, 20001 + N_ALERTS))  # nothing listens in the pod's netns
        t_fault = time.monotonic()
        fire_refused(a, ports[0], netns=netns)
        # The first alert is now in the sender's hands; the other seven arrive at later ticks.
        for p in ports[1:]:
            refuse(p, 5, netns)

        def firing() -> set[str]:
            return {x["fingerprint"] for x in a.alerts() if x["state"] == "firing"}

        poll("all alerts firing", lambda: len(firing()) >= N_ALERTS, timeout=20)
        fps = firing()
        assert len(fps) == N_ALERTS, a.alerts()
        ready: list[bool] = []
        while time.monotonic() < t_fault + seconds:  # the outage lasts `seconds`
            ready.append(a.ready())
            time.sleep(0.5)  # sampling pace during the outage
        during = _drops(a)
        # Recovery: the webhook answers 200, a real Alertmanager takes over its port.
        if wh is not None:
            wh.status = 200
        else:
            wh = Flaky(wh_port, 200)
        if am500 is not None:
            am500.close()
        t_rec = time.monotonic()
        with alertmanager(tmp_path, AM_ROUTE, port=am_port) as am:
            got = poll("the webhook's deliveries", lambda: wh.fingerprints() if len(
                wh.fingerprints()) >= N_ALERTS - 2 else None, timeout=30)
            wh_s = time.monotonic() - t_rec
            poll("every alert in Alertmanager", lambda: _am_fps(am) >= fps, timeout=30)
            am_s = time.monotonic() - t_rec
            after = _drops(a)
        rc, _ = a.stop()
    finally:
        a.kill()
        for f in (wh, am500):
            if f is not None:
                f.close()
    print(f"outage ({mode}, {seconds:.0f} s): drops {during}; webhook delivered "
          f"{len(got)} of {N_ALERTS} {wh_s:.1f} s after recovery; Alertmanager held all "
          f"{N_ALERTS} {am_s:.1f} s after; ready {sum(ready)}/{len(ready)}")
    assert rc == 0
    assert ready and all(ready), ready
    assert during == {("webhook", "queue"): N_ALERTS - QUEUE - 1, ("webhook", "sink"): 0,
                      ("alertmanager", "queue"): N_ALERTS - QUEUE,
                      ("alertmanager", "sink"): 0}
    assert after == during, "drops counted after recovery"
    assert got <= fps and len(got) == QUEUE + 1
    assert wh_s < BACKOFF_MAX + 3 and am_s < 5 + BACKOFF_MAX + 5
    if mode == "500" and am500 is not None and wh is not None:
        # Backoff: the first alert's POSTs during the outage follow the doubling schedule.
        first = min(fps, key=lambda fp: min(
            (t for t, _, b in wh.posts if isinstance(b, dict) and b["fingerprint"] == fp),
            default=float("inf")))
        times = [t for t, s, b in wh.posts if s == 500 and isinstance(b, dict)
                 and b["fingerprint"] == first]
        gaps = [y - x for x, y in itertools.pairwise(times)]
        cap = _expected_attempts(seconds + 1)
        assert len(times) <= cap + 1, f"{len(times)} POSTs in {seconds} s, expected <= {cap}"
        assert len(gaps) >= 2, f"too few POSTs to show a schedule: {times}"
        assert all(g >= BACKOFF * 0.9 for g in gaps), gaps
        assert gaps == sorted(gaps) or max(gaps) >= BACKOFF_MAX * 0.9
        am_posts = len(am500.posts)
        assert am_posts <= _expected_attempts(seconds + 1) + 2, am_posts
    record(f"sink_outage_{mode}_{seconds:.0f}s", {
        "mode": mode, "seconds": seconds, "alerts": N_ALERTS,
        "dropped": {f"{sink}_{stage}": int(n) for (sink, stage), n in sorted(during.items())},
        "webhook_delivered": len(got), "webhook_s": round(wh_s, 1),
        "alertmanager_s": round(am_s, 1), "ready": sum(ready), "samples": len(ready)})


@pytest.mark.parametrize("mode", ["down", "500"])
def test_sinks_out_for_10s(tmp_path: Path, bpf: None, kpr_pod: tuple[str, Path],
                           mode: str) -> None:
    _outage(tmp_path, kpr_pod, mode, 10.0)


@pytest.mark.soak
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["down", "500"])
def test_sinks_out_for_2_minutes(tmp_path: Path, bpf: None, kpr_pod: tuple[str, Path],
                                 mode: str) -> None:
    _outage(tmp_path, kpr_pod, mode, 120.0)
