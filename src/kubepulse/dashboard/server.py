"""The dashboard's routes on the agent's HTTP listener: the page, its assets, the JSON API and
the live stream (server-sent events).

    dashboard = Dashboard(DashboardStore(node="node1"))
    dashboard.install(listener, guard=TokenGuard(token) if token else None)
    agent = Agent(..., on_tick=chain(metrics.observe_tick, dashboard.on_tick))
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kubepulse.export.http import HttpListener, Request, Response
from kubepulse.model import Alert

from . import api
from .auth import SECURITY_HEADERS, TokenGuard, login_page
from .store import AgentLike, DashboardStore

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_STREAMS = 16
STREAM_MIN_INTERVAL_S = 1.0  # at most one snapshot a second per client
STREAM_PING_S = 5.0  # a comment line when nothing changed, so the page sees a live stream
STREAM_MAX_S = 3600.0  # then the stream ends and EventSource reconnects
MAX_EVENTS_LIMIT = 1000
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".png": "image/png",
                  ".svg": "image/svg+xml", ".json": "application/json"}
_SERIES = re.compile(r"^/api/v1/edges/([0-9a-f]{12})/series$")
_ASSET = re.compile(r"^/static/((?:vendor/)?[A-Za-z0-9_.-]+)$")


def chain(*callbacks: Callable[[Any, Sequence[Alert]], None]
          ) -> Callable[[Any, Sequence[Alert]], None]:
    """One ``on_tick`` that calls each in turn (metrics first, then the dashboard)."""

    def on_tick(agent: Any, changes: Sequence[Alert]) -> None:
        for cb in callbacks:
            cb(agent, changes)

    return on_tick


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(status, model.model_dump_json().encode(), "application/json",
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _error(status: int, text: str) -> Response:
    return Response(status, json.dumps({"error": text}).encode(), "application/json",
                    headers=dict(SECURITY_HEADERS))


class Dashboard:
    def __init__(self, store: DashboardStore, static_dir: Path = STATIC_DIR) -> None:
        self.store = store
        self.static_dir = static_dir
        self._streams = 0
        self._streams_lock = threading.Lock()
        self._cached: tuple[int, bytes] = (-1, b"")

    def on_tick(self, agent: AgentLike, changes: Sequence[Alert]) -> None:
        self.store.observe(agent, changes)

    def install(self, listener: HttpListener, guard: TokenGuard | None = None) -> None:
        listener.guard = guard
        listener.route("/", self.index)
        listener.route("/static/", self.asset, prefix=True)
        listener.route("/openapi.json", self.openapi_doc)
        listener.route("/api/v1/alerts", self.alerts)
        listener.route("/api/v1/edges", self.edges)
        listener.route("/api/v1/edges/", self.series, prefix=True)
        listener.route("/api/v1/events", self.events)
        listener.route("/api/v1/health", self.health)
        listener.route("/api/v1/stream", self.stream)
        if guard is not None:
            listener.route("/login", guard.login, methods=("GET", "POST"))
        else:
            listener.route("/login", lambda _: Response(303, headers={"Location": "/"}))

    # -- page and assets -------------------------------------------------------------------------
    def index(self, _: Request) -> Response:
        return self._file("index.html")

    def asset(self, req: Request) -> Response:
        m = _ASSET.match(req.path)
        if m is None or ".." in m.group(1):
            return Response(404, b"not found\n")
        return self._file(m.group(1))

    def _file(self, name: str) -> Response:
        path = self.static_dir / name
        if not path.is_file():
            if name == "index.html" or name.startswith("vendor/"):
                return Response(503, b"the dashboard's assets are not built: install "
                                     b"kubepulse with npm present (scripts/setup.sh does)\n")
            return Response(404, b"not found\n")
        ctype = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return Response(200, path.read_bytes(), ctype,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    # -- JSON API -------------------------------------------------------------------------------
    def openapi_doc(self, _: Request) -> Response:
        return Response(200, json.dumps(api.openapi()).encode(), "application/json",
                        headers=dict(SECURITY_HEADERS))

    def alerts(self, req: Request) -> Response:
        state = (req.query.get("state") or [""])[0]
        if state not in ("", "firing", "resolved"):
            return _error(400, "state: expected firing or resolved")
        return _json(api.alerts(self.store, state))

    def edges(self, _: Request) -> Response:
        return _json(api.edges(self.store))

    def series(self, req: Request) -> Response:
        m = _SERIES.match(req.path)
        if m is None:
            return _error(404, "expected /api/v1/edges/{id}/series")
        got = api.series(self.store, m.group(1))
        return _json(got) if got is not None else _error(404, "no such edge")

    def events(self, req: Request) -> Response:
        raw = (req.query.get("limit") or ["100"])[0]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_EVENTS_LIMIT:
            return _error(400, f"limit: expected 1..{MAX_EVENTS_LIMIT}")
        edge = (req.query.get("edge") or [""])[0]
        return _json(api.events(self.store, int(raw), edge))

    def health(self, _: Request) -> Response:
        return _json(api.health(self.store, self._streams))

    # -- live stream -----------------------------------------------------------------------------
    def _snapshot(self, version: int) -> bytes:
        cached_version, data = self._cached
        if cached_version == version:
            return data
        snap = api.snapshot(self.store, version, self._streams)
        data = b"event: snapshot\ndata: " + snap.model_dump_json().encode() + b"\n\n"
        self._cached = (version, data)
        return data

    def stream(self, _: Request) -> Response:
        if self._streams >= MAX_STREAMS:
            return _error(503, f"too many streams open ({MAX_STREAMS})")
        store = self.store

        def run(write: Callable[[bytes], None], closing: threading.Event) -> None:
            with self._streams_lock:
                self._streams += 1
            try:
                write(b"retry: 2000\n\n")
                seen, last_write = -1, 0.0
                end = time.monotonic() + STREAM_MAX_S
                while not closing.is_set() and time.monotonic() < end:
                    with store.changed:
                        if store.version == seen:
                            store.changed.wait(timeout=1.0)
                        version = store.version
                    now = time.monotonic()
                    if version != seen and now - last_write >= STREAM_MIN_INTERVAL_S:
                        write(self._snapshot(version))
                        seen, last_write = version, now
                    elif now - last_write >= STREAM_PING_S:
                        write(b"event: ping\ndata: {}\n\n")
                        last_write = now
                    elif version != seen:  # throttled: wait out the interval, bounded
                        closing.wait(STREAM_MIN_INTERVAL_S - (now - last_write))
            finally:
                with self._streams_lock:
                    self._streams -= 1

        headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return Response(200, b"", "text/event-stream; charset=utf-8", headers=headers, stream=run)


__all__ = ["Dashboard", "chain", "login_page"]
