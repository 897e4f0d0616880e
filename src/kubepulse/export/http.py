"""The agent's HTTP listener: ``/metrics``, ``/healthz``, ``/readyz``, and room for more routes.

A stdlib ``ThreadingHTTPServer`` in a daemon thread: a scrape never runs on the agent's tick
thread. Routes are a table of path -> handler, so the dashboard adds its pages and JSON API to
the same listener with ``listener.route(...)`` (exact path) or ``route(..., prefix=True)``.

    listener = HttpListener("127.0.0.1:9810")
    serve_agent_routes(listener, metrics)
    listener.start()          # returns once bound; listener.url is the real address
    ...
    listener.close()
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from kubepulse.errors import ConfigError
from kubepulse.export.metrics import AgentMetrics

log = logging.getLogger("kubepulse.http")

DEFAULT_LISTEN = "127.0.0.1:9810"
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # A long-lived response (server-sent events): called after the headers with a ``write``
    # that raises OSError once the client is gone, and the listener's ``closing`` event. It
    # runs on the request's own thread; the connection closes when it returns.
    stream: Callable[[Callable[[bytes], None], threading.Event], None] | None = None


Handler = Callable[[Request], Response]
# Runs before every route: a Response (e.g. 401) refuses the request, None lets it through.
Guard = Callable[[Request], Response | None]


def parse_listen(addr: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (every interface) -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen {addr!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpListener:
    """One HTTP listener with a route table; ``start`` binds, ``close`` stops and joins."""

    def __init__(self, listen: str = DEFAULT_LISTEN) -> None:
        self.host, self.port = parse_listen(listen)
        self._exact: dict[str, tuple[Handler, frozenset[str]]] = {}
        self._prefix: list[tuple[str, Handler, frozenset[str]]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.guard: Guard | None = None
        self.closing = threading.Event()  # set by close(): streams return

    def route(self, path: str, handler: Handler, methods: tuple[str, ...] = ("GET",),
              prefix: bool = False) -> None:
        allowed = frozenset(m.upper() for m in methods) | {"HEAD"}
        if prefix:
            self._prefix.append((path, handler, allowed))
            self._prefix.sort(key=lambda r: -len(r[0]))  # longest prefix wins
        else:
            self._exact[path] = (handler, allowed)

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        family = socket.AF_INET6 if _is_v6(self.host) else socket.AF_INET
        server_cls = type("_BoundServer", (_Server,), {"address_family": family})
        try:
            self._server = server_cls((self.host, self.port), self._handler_class())
        except OSError as exc:
            raise ConfigError(f"--listen {self.host}:{self.port}: cannot bind ({exc.strerror});"
                              " choose a free port or another address") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="kubepulse-http", daemon=True)
        self._thread.start()
        log.info("listening on %s", self.url)

    def close(self, timeout: float = 5.0) -> None:
        if self._server is None:
            return
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def dispatch(self, req: Request) -> Response:
        if self.guard is not None and (refused := self.guard(req)) is not None:
            return refused
        found = self._exact.get(req.path)
        if found is None:
            found = next(((h, m) for p, h, m in self._prefix if req.path.startswith(p)), None)
        if found is None:
            return Response(404, b"not found\n")
        handler, allowed = found
        if req.method not in allowed:
            return Response(405, b"method not allowed\n",
                            headers={"Allow": ", ".join(sorted(allowed))})
        try:
            return handler(req)
        except Exception:  # one broken page must not kill the listener
            log.exception("handler for %s failed", req.path)
            return Response(500, b"internal error\n")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "kubepulse"

            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = min(int(self.headers.get("content-length") or 0), MAX_BODY_BYTES)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, url.path, urllib.parse.parse_qs(url.query),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                resp = listener.dispatch(req)
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                if resp.stream is None:
                    self.send_header("Content-Length", str(len(resp.body)))
                else:
                    self.send_header("Connection", "close")
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                if resp.stream is None:
                    self.wfile.write(resp.body)
                    return
                self.close_connection = True
                self.connection.settimeout(10.0)  # a stalled client cannot pin the thread

                def write(data: bytes) -> None:
                    self.wfile.write(data)
                    self.wfile.flush()

                try:
                    resp.stream(write, listener.closing)
                except OSError:  # the client went away
                    pass

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        return _Handler


def _is_v6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def serve_agent_routes(listener: HttpListener, metrics: AgentMetrics) -> None:
    """``/metrics`` (Prometheus text), ``/healthz`` (the process answers), ``/readyz``."""

    def get_metrics(_: Request) -> Response:
        return Response(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)

    def healthz(_: Request) -> Response:
        return Response(200, b"ok\n")

    def readyz(_: Request) -> Response:
        ok, why = metrics.readiness()
        return Response(200 if ok else 503, (why + "\n").encode())

    listener.route("/metrics", get_metrics)
    listener.route("/healthz", healthz)
    listener.route("/readyz", readyz)
