"""A stand-in for the Kubernetes API server, written for these tests.

The real API server cannot run on this machine (no etcd, no container runtime), so the tests
run kubepulse's list/watch cache against this stdlib HTTP server, which speaks the same
protocol on the paths kubepulse uses:

- ``GET <collection>?limit=&continue=&fieldSelector=`` -> a ``<Kind>List`` with
  ``metadata.resourceVersion`` (and ``continue`` while pages remain);
- ``GET <collection>?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N``
  -> HTTP/1.1 chunked transfer, one JSON watch event per line (``ADDED``, ``MODIFIED``,
  ``DELETED``, ``BOOKMARK``, ``ERROR``), every event after RV from its event log, then live
  events; the stream ends after ``timeoutSeconds``;
- a ``resourceVersion`` older than the event log keeps -> ``ERROR`` event with a ``Status`` of
  code 410 (``Expired``), or HTTP 410 (``gone_as_http``), as the real server does both;
- faults: answer every request with a status for a while (``fail_until``), drop every open
  watch without the closing chunk (``drop_watches``), send a 410 in the middle of open streams
  (``gone_midstream``), and restart (``stop`` / ``start`` on the same port, with its watch
  cache compacted, as a restarted server's is).

Objects are stored and sent as the real API server sends them (see ``objects.py``): a list's
items have no kind/apiVersion, watch events carry them.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

COLLECTIONS: dict[str, tuple[str, str]] = {  # path -> (apiVersion, kind)
    "/api/v1/pods": ("v1", "Pod"),
    "/api/v1/services": ("v1", "Service"),
    "/api/v1/nodes": ("v1", "Node"),
    "/api/v1/namespaces": ("v1", "Namespace"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
    "/apis/apps/v1/replicasets": ("apps/v1", "ReplicaSet"),
}
KIND_PATH = {kind: path for path, (_, kind) in COLLECTIONS.items()}


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _field_match(obj: dict[str, Any], selector: str) -> bool:
    """fieldSelector: only ``a.b=v`` / ``a.b==v`` / ``a.b!=v`` terms, comma-separated."""
    for term in filter(None, selector.split(",")):
        neg = "!=" in term
        field, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
        cur: Any = obj
        for part in field.split("."):
            cur = cur.get(part, "") if isinstance(cur, dict) else ""
        if (str(cur) == value) == neg:
            return False
    return True


class State:
    """What etcd would hold: objects, a global resourceVersion, and the watch cache's log."""

    def __init__(self, log_limit: int = 1000) -> None:
        self.cond = threading.Condition()
        self.rv = 100
        self.objects: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in COLLECTIONS}
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, path, type, obj)
        self.oldest_rv = self.rv  # watches from before this get 410
        self.log_limit = log_limit

    def _emit(self, path: str, kind: str, obj: dict[str, Any]) -> None:
        self.log.append((self.rv, path, kind, copy.deepcopy(obj)))
        if len(self.log) > self.log_limit:
            dropped = self.log[: len(self.log) - self.log_limit]
            del self.log[: len(dropped)]
            self.oldest_rv = dropped[-1][0]
        self.cond.notify_all()

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace (ADDED / MODIFIED) an object."""
        path = KIND_PATH[obj["kind"]]
        with self.cond:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            key = _key(obj)
            kind = "MODIFIED" if key in self.objects[path] else "ADDED"
            self.objects[path][key] = obj
            self._emit(path, kind, obj)
            return obj

    def delete(self, kind: str, namespace: str, name: str) -> None:
        path = KIND_PATH[kind]
        with self.cond:
            obj = self.objects[path].pop(f"{namespace}/{name}")
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._emit(path, "DELETED", obj)

    def compact(self) -> None:
        """Forget the event log (as a restarted server's watch cache has): older RVs get 410."""
        with self.cond:
            self.log.clear()
            self.rv += 1  # etcd's revision moves on (in a real cluster, Leases change always)
            self.oldest_rv = self.rv
            self.cond.notify_all()


class StandInApiServer:
    """The HTTP side. ``port`` stays the same across :meth:`stop` / :meth:`start`."""

    def __init__(self, state: State | None = None, port: int = 0,
                 bookmark_interval_s: float = 0.5) -> None:
        self.state = state or State()
        self.port = port
        self.bookmark_interval_s = bookmark_interval_s
        self.fail_status = 0
        self.fail_until = 0.0  # monotonic; every request answers fail_status until then
        self.forbidden: set[str] = set()  # collection paths answered 403 (RBAC)
        self.gone_as_http = False  # 410 on a too-old watch as an HTTP status (else an event)
        self.requests: list[tuple[float, str, dict[str, str]]] = []  # (time, path, query)
        self.auth: list[str] = []  # Authorization headers received
        self._epoch = 0  # bumped to drop open watches / on stop
        self._gone_epoch = 0  # bumped to send 410 on open watches
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> StandInApiServer:
        server = self

        class Handler(_Handler):
            api = server

        ThreadingHTTPServer.allow_reuse_address = True
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (a crash or a restart)."""
        with self.state.cond:
            self._epoch += 1
            self.state.cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restart(self) -> None:
        self.stop()
        self.state.compact()
        self.start()

    # -- faults ----------------------------------------------------------------------------------
    def fail_for(self, seconds: float, status: int = 500) -> None:
        self.fail_status, self.fail_until = status, time.monotonic() + seconds

    def drop_watches(self) -> None:
        """Cut every open watch mid-stream, without the terminating chunk."""
        with self.state.cond:
            self._epoch += 1
            self.state.cond.notify_all()

    def gone_midstream(self) -> None:
        """Send ``ERROR 410`` on every open watch, and forget the log (as compaction does)."""
        with self.state.cond:
            self._gone_epoch += 1
            self.state.log.clear()
            self.state.rv += 1
            self.state.oldest_rv = self.state.rv
            self.state.cond.notify_all()

    def count(self, path: str, watch: bool | None = None, since: float = 0.0) -> int:
        return len(self.times(path, watch, since))

    def times(self, path: str, watch: bool | None = None, since: float = 0.0) -> list[float]:
        """When each matching request arrived (monotonic), oldest first."""
        with self._lock:
            return [t for t, p, q in self.requests if p == path and t >= since
                    and (watch is None or (q.get("watch") == "1") == watch)]


class _Handler(BaseHTTPRequestHandler):
    api: StandInApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}

    def do_GET(self) -> None:
        api = self.api
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        # a fault injected after this request is logged applies to it
        self.epochs = (api._epoch, api._gone_epoch)
        with api._lock:
            api.requests.append((time.monotonic(), url.path, query))
            api.auth.append(self.headers.get("Authorization", ""))
            api._conns.add(self.connection)
        try:
            if api.fail_status and time.monotonic() < api.fail_until:
                self._json(api.fail_status, self._status(api.fail_status, "InternalError",
                                                         "the stand-in is failing on purpose"))
                return
            if url.path in api.forbidden:
                self._json(403, self._status(403, "Forbidden", f"{url.path} is forbidden: "
                                             "User cannot list resource"))
                return
            if url.path not in COLLECTIONS:
                self._json(404, self._status(404, "NotFound", f"{url.path} not found"))
                return
            if query.get("watch") in ("1", "true"):
                self._watch(url.path, query)
            else:
                self._list(url.path, query)
        finally:
            with api._lock:
                api._conns.discard(self.connection)

    def _list(self, path: str, query: dict[str, str]) -> None:
        state = self.api.state
        api_version, kind = COLLECTIONS[path]
        with state.cond:
            items = [copy.deepcopy(o) for _, o in sorted(state.objects[path].items())
                     if _field_match(o, query.get("fieldSelector", ""))]
            rv = state.rv
        start = 0
        if query.get("continue"):
            tok_rv, _, tok_off = query["continue"].partition(":")
            rv, start = int(tok_rv), int(tok_off)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start: start + limit]
        for item in page:  # a list's items carry no kind/apiVersion
            item.pop("kind", None)
            item.pop("apiVersion", None)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if start + limit < len(items):
            meta["continue"] = f"{rv}:{start + limit}"
        self._json(200, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta,
                         "items": page})

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, path: str, query: dict[str, str]) -> None:
        api, state = self.api, self.api.state
        api_version, kind = COLLECTIONS[path]
        selector = query.get("fieldSelector", "")
        bookmarks = query.get("allowWatchBookmarks") == "true"
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        try:
            since = int(query.get("resourceVersion") or 0)
        except ValueError:
            since = 0
        with state.cond:
            too_old = bool(since) and since < state.oldest_rv
            if not since:
                since = state.rv
            epoch, gone_epoch = self.epochs
        if too_old and api.gone_as_http:
            self._json(410, self._status(410, "Expired", f"too old resource version: {since}"))
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if too_old:
            self._chunk({"type": "ERROR", "object": self._status(
                410, "Expired", f"too old resource version: {since}")})
            self._end()
            return
        last_bookmark = time.monotonic()
        sent_rv = since
        while True:
            with state.cond:
                while True:
                    pending = [e for e in state.log if e[0] > sent_rv and e[1] == path]
                    now = time.monotonic()
                    if (pending or api._epoch != epoch or api._gone_epoch != gone_epoch
                            or now >= deadline
                            or (bookmarks and now - last_bookmark >= api.bookmark_interval_s)):
                        break
                    state.cond.wait(0.05)
                current_rv = state.rv
                dropped = api._epoch != epoch
                gone = api._gone_epoch != gone_epoch
            if dropped:
                self._abort()
                return
            if gone:
                self._chunk({"type": "ERROR", "object": self._status(
                    410, "Expired", "The resourceVersion for the provided watch is too old.")})
                self._end()
                return
            for rv, _, etype, obj in pending:
                sent_rv = rv
                if _field_match(obj, selector):
                    self._chunk({"type": etype, "object": obj})
            if time.monotonic() >= deadline:
                self._end()
                return
            if bookmarks and time.monotonic() - last_bookmark >= api.bookmark_interval_s:
                last_bookmark = time.monotonic()
                sent_rv = max(sent_rv, current_rv)
                self._chunk({"type": "BOOKMARK", "object": {
                    "kind": kind, "apiVersion": api_version,
                    "metadata": {"resourceVersion": str(sent_rv),
                                 "annotations": {"k8s.io/initial-events-end": "false"}}}})

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True


def iter_events(server: StandInApiServer) -> Iterator[tuple[int, str, str]]:
    """(rv, path, type) of the log, for debugging a failing test."""
    with server.state.cond:
        yield from ((rv, p, t) for rv, p, t, _ in list(server.state.log))
