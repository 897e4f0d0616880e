"""The webhook sink against a real HTTP server on 127.0.0.1 (stdlib, in a thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubepulse.alerts import AlertManager, WebhookSink
from kubepulse.detect.config import WebhookConfig
from kubepulse.model import Alert

from .helpers import T0, alerts_config, finding

FAST = {"backoff_seconds": 0.01, "backoff_max_seconds": 0.05, "timeout_seconds": 5.0}


class Receiver:
    """Answers with the queued statuses (then 200) and records every body it got."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, object]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                recv.entered.set()
                recv.gate.wait(10)
                body = self.rfile.read(int(self.headers["content-length"]))
                status = recv.statuses.pop(0) if recv.statuses else 200
                if status < 300:
                    recv.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def alert(n: int = 0) -> Alert:
    mgr = AlertManager(alerts_config())
    return mgr.process([finding(src=f"shop/client{n}", n=n)], T0)[0]


def sink(url: str, **cfg: object) -> WebhookSink:
    return WebhookSink(url, WebhookConfig.model_validate({**FAST, **cfg}))


def test_posts_the_alert_json(receiver: Receiver) -> None:
    s = sink(receiver.url)
    a = alert()
    s.emit(a)
    assert s.flush(10)
    s.close()
    assert receiver.bodies == [a.to_json_dict()]
    assert s.sent_total == 1 and s.dropped_total == {"queue": 0, "sink": 0}


def test_retries_500s_with_backoff_then_delivers(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    s = sink(receiver.url)
    s.emit(alert())
    assert s.flush(10)
    s.close()
    assert len(receiver.bodies) == 1 and s.retries_total == 2 and s.sent_total == 1


def test_gives_up_after_max_attempts_and_counts_the_loss(receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    s = sink(receiver.url, max_attempts=3)
    s.emit(alert())
    assert s.flush(10)
    s.close()
    assert receiver.bodies == [] and s.dropped_total["sink"] == 1 and s.retries_total == 2
    assert s.last_error == "HTTP 500"


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [400, 200]
    s = sink(receiver.url)
    s.emit(alert())
    assert s.flush(10)
    s.close()
    assert s.dropped_total["sink"] == 1 and s.retries_total == 0 and receiver.statuses == [200]


def test_receiver_down_then_up() -> None:
    first = Receiver()
    port, url = first.port, first.url
    first.stop()  # nothing listens on the port now
    failed = threading.Event()
    s = WebhookSink(url, WebhookConfig.model_validate({**FAST, "max_attempts": 1000}),
                    on_attempt=lambda n, status: failed.set() if status is None else None)
    s.emit(alert())
    assert failed.wait(10)
    second = Receiver(port)
    try:
        assert s.flush(10)
        s.close()
        assert len(second.bodies) == 1 and s.sent_total == 1 and s.retries_total >= 1
        assert "ConnectError" in s.last_error
    finally:
        second.stop()


def test_bounded_queue_drops_and_counts_when_the_receiver_stalls(receiver: Receiver) -> None:
    receiver.gate.clear()
    s = sink(receiver.url, queue_size=2)
    s.emit(alert(0))
    assert receiver.entered.wait(10)  # the sender is stuck in the first POST
    for n in range(1, 5):
        s.emit(alert(n))
    assert s.dropped_total["queue"] == 2 and s.queued == 2
    receiver.gate.set()
    assert s.flush(10)
    s.close()
    assert s.sent_total == 3 and len(receiver.bodies) == 3


def test_close_counts_what_it_could_not_send(receiver: Receiver) -> None:
    receiver.gate.clear()
    s = sink(receiver.url, queue_size=5)
    s.emit(alert(0))
    assert receiver.entered.wait(10)
    s.emit(alert(1))
    s.emit(alert(2))
    s.close(timeout=0.2)
    receiver.gate.set()
    assert s.dropped_total["sink"] >= 2
