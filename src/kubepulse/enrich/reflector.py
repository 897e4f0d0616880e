"""List-then-watch, as client-go's Reflector does it, for one resource.

1. **List** (paginated: ``limit`` and ``continue``), replace the store with the result, and
   remember the list's ``resourceVersion``. An expired ``continue`` token (410) restarts the
   list.
2. **Watch** from that ``resourceVersion`` with ``allowWatchBookmarks=true`` and a server-side
   ``timeoutSeconds``; apply ADDED/MODIFIED/DELETED; a BOOKMARK only advances the
   ``resourceVersion``. When the stream ends (timeout, dropped connection, API server restart)
   watch again from the last ``resourceVersion`` seen, so nothing is missed and nothing is
   listed twice.
3. **410 Gone** (as the watch's HTTP status or as an ERROR event: the version is older than
   the server keeps) -> list again (step 1).
4. Any other failure (connection refused, 5xx, a 429, a broken stream) -> wait, with
   exponential backoff and full jitter (``backoff_initial_s`` doubling to ``backoff_max_s``),
   then resume; the backoff resets only after a healthy watch (one that delivered an event or
   lasted ``min_healthy_watch_s``). A watch that ends at once without an event also counts as
   a failure, and only the first 410 after a healthy watch re-lists at once, so neither a
   server that accepts and closes nor one that answers every watch with 410 makes a hot loop.

Bounded: at most ``max_objects`` in the store (beyond it, new keys are dropped and counted),
one event at most ``kubeapi.MAX_LINE_BYTES``, list pages of ``page_size``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kubepulse.enrich.kubeapi import Api, ApiError
from kubepulse.enrich.kubeobjects import object_key

log = logging.getLogger("kubepulse.kube")

R = TypeVar("R")


@dataclass(frozen=True)
class Resource:
    """One collection to list and watch: ``/api/v1/pods``, ``/apis/apps/v1/replicasets``."""

    name: str  # for logs and stats: "pods", "local-pods"
    path: str
    field_selector: str = ""
    label_selector: str = ""


@dataclass(frozen=True)
class WatchTuning:
    page_size: int = 500
    watch_timeout_s: int = 300  # the server ends each watch after this (client-go: 5-10 min)
    backoff_initial_s: float = 0.8
    backoff_max_s: float = 30.0
    min_healthy_watch_s: float = 5.0  # a watch shorter than this with no event is a failure
    max_objects: int = 200_000


@dataclass
class ReflectorStats:
    lists: int = 0
    relists_gone: int = 0
    watches: int = 0
    events: int = 0
    bookmarks: int = 0
    errors: int = 0
    dropped_over_limit: int = 0
    last_error: str = ""
    consecutive_failures: int = 0


@dataclass
class Reflector(Generic[R]):
    """Keeps ``store`` (key -> reduced record) equal to the API server's view of
    ``resource``. ``on_change(name, deleted)`` is called after every applied change (the
    records removed by it, for tombstones) and after every list."""

    api: Api
    resource: Resource
    reduce: Callable[[Mapping[str, Any]], R]
    on_change: Callable[[str, list[R]], None]
    tuning: WatchTuning = field(default_factory=WatchTuning)
    rng: random.Random = field(default_factory=random.Random)
    store: dict[str, R] = field(default_factory=dict)
    resource_version: str = ""
    synced: threading.Event = field(default_factory=threading.Event)
    stats: ReflectorStats = field(default_factory=ReflectorStats)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _watch_was_healthy: bool = False  # the current/last watch delivered an event

    # -- the loop --------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: list, then watch; re-list after 410; back off on failure."""
        backoff = self.tuning.backoff_initial_s
        need_list = True
        gone_streak = 0  # 410s since the last healthy watch
        while not stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                if self._watch(stop):
                    backoff = self.tuning.backoff_initial_s
                    self.stats.consecutive_failures = 0
                    gone_streak = 0
                    continue
                self._failed("the watch ended at once without an event")
            except ApiError as exc:
                if stop.is_set():
                    return
                if self._watch_was_healthy:  # a busy watch that broke: start the backoff over
                    backoff, gone_streak = self.tuning.backoff_initial_s, 0
                if exc.status == 410:
                    self.stats.relists_gone += 1
                    log.info("kubernetes %s: %s; listing again", self.resource.name, exc)
                    need_list = True
                    gone_streak += 1
                    if gone_streak == 1:
                        continue  # the first 410 re-lists at once; a second one backs off
                self._failed(str(exc))
            except Exception as exc:  # noqa: BLE001 - keep following the cluster, whatever broke
                if stop.is_set():
                    return  # stop() closed the connection under us
                if self._watch_was_healthy:
                    backoff, gone_streak = self.tuning.backoff_initial_s, 0
                self._failed(f"{type(exc).__name__}: {exc}")
            # full jitter: uniform in [backoff/2, backoff]; never a hot loop
            delay = backoff * (0.5 + 0.5 * self.rng.random())
            backoff = min(backoff * 2, self.tuning.backoff_max_s)
            stop.wait(delay)

    def _failed(self, why: str) -> None:
        self.stats.errors += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = why
        if self.stats.consecutive_failures in (1, 5) or self.stats.consecutive_failures % 50 == 0:
            log.warning("kubernetes %s: %s (failure %d in a row; retrying with backoff)",
                        self.resource.name, why, self.stats.consecutive_failures)

    def _params(self) -> dict[str, str]:
        p: dict[str, str] = {}
        if self.resource.field_selector:
            p["fieldSelector"] = self.resource.field_selector
        if self.resource.label_selector:
            p["labelSelector"] = self.resource.label_selector
        return p

    # -- list ------------------------------------------------------------------------------------
    def _list(self) -> None:
        self._watch_was_healthy = False
        fresh: dict[str, R] = {}
        cont = ""
        rv = ""
        for _ in range(100_000):  # pages; bounded even if a server never stops paging
            params = self._params() | {"limit": str(self.tuning.page_size)}
            if cont:
                params["continue"] = cont
            body = self.api.list(self.resource.path, params)
            meta = body.get("metadata") or {}
            for item in body.get("items") or []:
                key = object_key(item)
                if key in fresh or len(fresh) < self.tuning.max_objects:
                    fresh[key] = self.reduce(item)
                else:
                    self.stats.dropped_over_limit += 1
            rv = str(meta.get("resourceVersion") or "")
            cont = str(meta.get("continue") or "")
            if not cont:
                break
        with self.lock:
            gone = [rec for key, rec in self.store.items() if key not in fresh]
            self.store = fresh
            self.resource_version = rv
        self.stats.lists += 1
        self.synced.set()
        self.on_change(self.resource.name, gone)

    # -- watch -----------------------------------------------------------------------------------
    def _watch(self, stop: threading.Event) -> bool:
        """One watch request; True if it was healthy (delivered an event or lasted a while)."""
        params = self._params() | {
            "watch": "1", "allowWatchBookmarks": "true",
            "resourceVersion": self.resource_version,
            "timeoutSeconds": str(self.tuning.watch_timeout_s),
        }
        self.stats.watches += 1
        started = time.monotonic()
        got_event = False
        self._watch_was_healthy = False
        stream = self.api.watch(self.resource.path, params)
        try:
            for event in stream:
                if stop.is_set():
                    return True
                got_event = True
                self._apply(event)
                self._watch_was_healthy = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return got_event or time.monotonic() - started >= self.tuning.min_healthy_watch_s

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            raise ApiError(int(obj.get("code") or 0),
                           str(obj.get("message") or obj.get("reason") or "watch error"))
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
            if rv:
                self.resource_version = rv
            return
        key = object_key(obj)
        gone: list[R] = []
        with self.lock:
            if kind in ("ADDED", "MODIFIED"):
                if key in self.store or len(self.store) < self.tuning.max_objects:
                    self.store[key] = self.reduce(obj)
                else:
                    self.stats.dropped_over_limit += 1
            elif kind == "DELETED":
                old = self.store.pop(key, None)
                if old is not None:
                    gone.append(old)
            else:
                raise ApiError(0, f"unknown watch event type {kind!r}")
            if rv:
                self.resource_version = rv
        self.stats.events += 1
        self.on_change(self.resource.name, gone)

    def snapshot(self) -> list[R]:
        with self.lock:
            return list(self.store.values())
