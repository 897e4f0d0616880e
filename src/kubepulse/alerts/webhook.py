"""Generic webhook: POST each alert's JSON from a background thread.

``emit`` never blocks: it puts the alert on a bounded queue, and a full queue drops the alert
(counted with stage ``queue``). The sender retries errors and 5xx/429 answers with exponential
backoff; an alert still unsent after ``max_attempts`` is dropped (stage ``sink``). Other 4xx
answers are not retried: the receiver said the request itself is wrong.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import httpx

from kubepulse.detect.config import WebhookConfig
from kubepulse.model import Alert

# Called after every POST attempt with (attempt number, HTTP status or None for no answer).
AttemptHook = Callable[[int, int | None], None]


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, config: WebhookConfig | None = None,
                 transport: httpx.BaseTransport | None = None,
                 on_attempt: AttemptHook | None = None) -> None:
        self.url = url
        self.config = config or WebhookConfig()
        self.sent_total = 0
        self.retries_total = 0
        self.dropped_total: dict[str, int] = {"queue": 0, "sink": 0}
        self.last_error = ""
        self._queue: queue.Queue[Alert | None] = queue.Queue(self.config.queue_size)
        self._stop = threading.Event()
        self._on_attempt = on_attempt
        self._client = httpx.Client(timeout=self.config.timeout_seconds, transport=transport,
                                    headers={"content-type": "application/json"})
        self._thread = threading.Thread(target=self._run, name="kubepulse-webhook", daemon=True)
        self._thread.start()

    def emit(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped_total["queue"] += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert is sent or dropped. False if ``timeout`` ran out."""
        done = threading.Event()

        def waiter() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=waiter, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 3.0) -> None:
        """Send what is queued, then stop, all within ``timeout``; what is left counts as
        dropped."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stop.set()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.dropped_total["sink"] += 1
            self._queue.task_done()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._client.close()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                if alert is None:
                    return
                if self._stop.is_set() or not self._deliver(alert):
                    self.dropped_total["sink"] += 1
                else:
                    self.sent_total += 1
            finally:
                self._queue.task_done()

    def _deliver(self, alert: Alert) -> bool:
        cfg = self.config
        delay = cfg.backoff_seconds
        for attempt in range(1, cfg.max_attempts + 1):
            status: int | None = None
            try:
                resp = self._client.post(self.url, json=alert.to_json_dict())
                status = resp.status_code
                if status < 300:
                    return True
                self.last_error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                if self._on_attempt is not None:
                    self._on_attempt(attempt, status)
            if status is not None and 400 <= status < 500 and status != 429:
                return False
            if attempt == cfg.max_attempts or self._stop.wait(delay):
                return False
            self.retries_total += 1
            delay = min(delay * 2, cfg.backoff_max_seconds)
        return False
