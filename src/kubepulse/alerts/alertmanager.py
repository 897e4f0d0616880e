"""Alertmanager sink: ``POST /api/v2/alerts`` to every configured instance (HA pairs).

The Alertmanager contract is that a client keeps telling it what fires. So this sink:

* re-sends every firing alert each ``resend_seconds`` with ``endsAt`` = now +
  ``ends_at_intervals`` × ``resend_seconds``: an agent that dies lets its alerts expire;
* on resolve sends ``endsAt`` = the time it resolved, and repeats that for
  ``resolved_repeat_seconds`` (a restarted or partitioned peer still learns it);
* never blocks the agent: ``emit`` only updates in-memory state. Each instance has its own
  sender thread and its own bounded pending set, keyed by fingerprint, so the newest state of an
  alert replaces an unsent older one (not a loss). A new alert when the set is full is dropped
  and counted (stage ``queue``); a batch Alertmanager rejects with a 4xx other than 429 is
  dropped and counted (stage ``sink``). Errors, 5xx and 429 are retried with exponential backoff
  for as long as it takes: what is pending is delivered once the instance is back.
* ``endsAt`` of a firing alert is computed when the request is made, never when it was queued,
  so an alert held through an outage is not delivered already expired. An alert dropped from a
  full pending set is still known to the sink, so the next re-send after the outage brings it.

Labels: ``alertname`` (the kubepulse type), ``severity``, ``kubepulse_fingerprint``, the
alert's identity (``src``, ``dst``, ``dst_service``, ``dst_port``) and the stable parts of its
labels (namespaces, workloads, service, node). Pods and addresses churn, so they would split
one alert into many in Alertmanager; they go to annotations, with the summary, the cause and
the evidence (JSON).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from kubepulse.detect.config import AlertmanagerConfig
from kubepulse.model import Alert, rfc3339

log = logging.getLogger("kubepulse.alerts.alertmanager")

API_PATH = "/api/v2/alerts"
# Alert labels worth routing on that survive pod churn; everything else becomes an annotation.
STABLE_LABELS = frozenset({
    "src_namespace", "src_workload", "dst_namespace", "dst_workload", "dst_service",
    "dst_port", "node", "namespace", "workload", "client_namespace", "client_workload"})
_LABEL_RE = re.compile(r"[^a-zA-Z0-9_]")


@dataclass
class _Active:
    alert: Alert
    forget_at: float | None = None  # resolved: stop re-sending at this wall time


class _Target:
    """One Alertmanager: its pending alerts, its thread and its counters."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + API_PATH
        self.pending: dict[str, Alert] = {}  # fingerprint -> newest state not yet accepted
        self.cond = threading.Condition()
        self.sent_total = 0
        self.failures_total = 0
        self.last_error = ""
        self.up = False
        self.thread: threading.Thread | None = None


class AlertmanagerSink:
    name = "alertmanager"

    def __init__(self, urls: Sequence[str], config: AlertmanagerConfig | None = None,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not urls:
            raise ValueError("AlertmanagerSink needs at least one URL")
        self.config = config or AlertmanagerConfig()
        self.clock = clock
        self.dropped_total: dict[str, int] = {"queue": 0, "sink": 0}
        self.retries_total = 0
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=self.config.timeout_seconds, transport=transport,
                                    headers={"content-type": "application/json"})
        self.targets = [_Target(u) for u in urls]
        for i, t in enumerate(self.targets):
            t.thread = threading.Thread(target=self._run, args=(t,), daemon=True,
                                        name=f"kubepulse-alertmanager-{i}")
            t.thread.start()

    # -- the Sink interface -----------------------------------------------------------------------
    def emit(self, alert: Alert) -> None:
        with self._lock:
            prev = self._active.get(alert.fingerprint)
            if alert.state == "resolved":
                forget = (alert.ends_at or self.clock()) + self.config.resolved_repeat_seconds
                self._active[alert.fingerprint] = _Active(alert, forget)
            else:
                self._active[alert.fingerprint] = _Active(alert)
            if prev is not None and am_labels(prev.alert) != am_labels(alert):
                # The label set is Alertmanager's identity: close the old one explicitly.
                old = _resolved_copy(prev.alert, self.clock())
                self._active["~" + alert.fingerprint] = _Active(
                    old, self.clock() + self.config.resolved_repeat_seconds)
                self._enqueue("~" + alert.fingerprint, old)
        self._enqueue(alert.fingerprint, alert)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every instance has accepted what is pending. False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self.targets:
            with t.cond:
                while t.pending:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    t.cond.wait(0.05 if left is None else min(0.05, left))
        return True

    def close(self, timeout: float = 3.0) -> None:
        """Deliver what is pending, then stop, all within ``timeout`` (an agent told to stop
        must stop, Alertmanager down or not); what is left counts as dropped."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stop.set()
        for t in self.targets:
            with t.cond:
                t.cond.notify_all()
        for t in self.targets:
            if t.thread is not None:  # daemon threads: one stuck in a request cannot hold us
                t.thread.join(max(0.0, deadline - time.monotonic()))
            with t.cond:
                self.dropped_total["sink"] += len(t.pending)
                t.pending.clear()
        self._client.close()

    # -- counters for export ----------------------------------------------------------------------
    @property
    def sent_total(self) -> int:
        return sum(t.sent_total for t in self.targets)

    @property
    def queued(self) -> int:
        return sum(len(t.pending) for t in self.targets)

    # -- the sender ---------------------------------------------------------------------------------
    def _enqueue(self, fp: str, alert: Alert) -> None:
        for t in self.targets:
            with t.cond:
                if fp not in t.pending and len(t.pending) >= self.config.queue_size:
                    self.dropped_total["queue"] += 1
                    continue
                t.pending[fp] = alert
                t.cond.notify_all()

    def _refresh(self, t: _Target) -> None:
        """The periodic re-send: every firing alert, and resolves still being repeated."""
        now = self.clock()
        with self._lock:
            for fp in [fp for fp, a in self._active.items()
                       if a.forget_at is not None and a.forget_at <= now]:
                del self._active[fp]
            items = [(fp, a.alert) for fp, a in self._active.items()]
        with t.cond:
            # Not bounded by queue_size: these alerts are held in _active anyway, so re-sending
            # all of them costs a dict entry each, and the bound only limits new arrivals.
            t.pending.update(items)
            t.cond.notify_all()

    def _run(self, t: _Target) -> None:
        cfg = self.config
        next_resend = time.monotonic() + cfg.resend_seconds
        delay = cfg.backoff_seconds
        while not self._stop.is_set():
            if time.monotonic() >= next_resend:
                self._refresh(t)
                next_resend = time.monotonic() + cfg.resend_seconds
            with t.cond:
                if not t.pending:
                    t.cond.wait(max(0.0, next_resend - time.monotonic()))
                    continue
                batch = list(t.pending.items())[: cfg.batch_size]
            status = self._post(t, [a for _, a in batch])
            if status is not None and status < 300:
                t.up, delay, t.last_error = True, cfg.backoff_seconds, ""
                t.sent_total += len(batch)
                self._accepted(t, batch)
                continue
            if status is not None and 400 <= status < 500 and status != 429:
                t.up = True  # it answered: the request is wrong, retrying will not help
                self.dropped_total["sink"] += len(batch)
                self._accepted(t, batch)
                continue
            t.up = False
            t.failures_total += 1
            self.retries_total += 1
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, cfg.backoff_max_seconds)

    def _accepted(self, t: _Target, batch: list[tuple[str, Alert]]) -> None:
        with t.cond:
            for fp, alert in batch:
                if t.pending.get(fp) is alert:  # a newer state arrived meanwhile: keep it
                    del t.pending[fp]
            t.cond.notify_all()

    def _post(self, t: _Target, alerts: list[Alert]) -> int | None:
        body = [self.payload(a) for a in alerts]
        try:
            resp = self._client.post(t.url, content=json.dumps(body))
        except httpx.HTTPError as exc:
            t.last_error = f"{type(exc).__name__}: {exc}"
            return None
        if resp.status_code >= 300:
            t.last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
        return resp.status_code

    def payload(self, alert: Alert) -> dict[str, Any]:
        """One alert as Alertmanager's postableAlert; a firing ``endsAt`` is computed now."""
        cfg = self.config
        if alert.state == "resolved":
            ends = alert.ends_at if alert.ends_at is not None else alert.emitted_at
        else:
            ends = self.clock() + cfg.ends_at_intervals * cfg.resend_seconds
        out: dict[str, Any] = {
            "labels": am_labels(alert),
            "annotations": am_annotations(alert),
            "startsAt": rfc3339(alert.starts_at),
            "endsAt": rfc3339(ends),
        }
        if cfg.dashboard_url:
            out["generatorURL"] = (f"{cfg.dashboard_url.rstrip('/')}/#/alerts/"
                                   f"{alert.fingerprint}")
        return out


def _label_name(key: str) -> str:
    name = _LABEL_RE.sub("_", key)
    return name if name and not name[0].isdigit() else "_" + name


def am_labels(alert: Alert) -> dict[str, str]:
    labels = {_label_name(k): v for k, v in alert.labels.items() if k in STABLE_LABELS and v}
    labels.update({_label_name(k): v for k, v in alert.identity.items() if v})
    labels["alertname"] = alert.type
    labels["severity"] = alert.severity
    labels["kubepulse_fingerprint"] = alert.fingerprint
    return labels


def am_annotations(alert: Alert) -> dict[str, str]:
    out = {
        "summary": alert.summary,
        "cause": alert.cause,
        "evidence": json.dumps(alert.evidence, sort_keys=True, default=str),
    }
    detail = {k: v for k, v in alert.labels.items() if k not in STABLE_LABELS and v}
    if detail:
        out["detail"] = json.dumps(detail, sort_keys=True)
    if alert.flapping:
        out["flapping"] = "true"
    if alert.inhibited_by:
        out["inhibited_by"] = alert.inhibited_by
    return out


def _resolved_copy(alert: Alert, now: float) -> Alert:
    from dataclasses import replace

    return replace(alert, state="resolved", ends_at=now, emitted_at=now)
