"""The HTTP side of talking to the API server: one list, one watch stream.

Configuration and authentication (in-cluster service account with token rotation, kubeconfig
with client certificates, bearer tokens or exec plugins, the cluster CA) come from lightkube
(docs/kubernetes.md says why lightkube). Its own ``watch()`` neither asks for bookmarks nor
re-lists after ``410 Gone``; the list-then-watch loop is ours (:mod:`kubepulse.enrich.reflector`)
and speaks to this small interface, which tests can replace.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from kubepulse.errors import ConfigError

MAX_LINE_BYTES = 16 << 20  # one watch event; the API server's own limit on an object is ~1.5 MiB


class ApiError(Exception):
    """The API server answered with an error status (or an ERROR watch event)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Api(Protocol):
    def list(self, path: str, params: Mapping[str, str]) -> dict[str, Any]: ...

    def watch(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Yields decoded watch events until the server ends the stream. Raises ApiError
        on an error status; closing the generator closes the connection."""
        ...

    def close(self) -> None: ...


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
        return str(status.get("message") or status.get("reason") or "")[:300]
    except (ValueError, AttributeError):
        return body[:300].decode(errors="replace")


def split_lines(chunks: Iterator[bytes], max_line: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Newline-delimited records from a byte stream, with a bound on one record's size."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            if line.strip():
                yield line
        if len(buf) > max_line:
            raise ApiError(0, f"a watch event longer than {max_line} bytes; reconnecting")
    if buf.strip():
        yield bytes(buf)


class HttpApi:
    """:class:`Api` over lightkube's configured httpx2 client.

    ``server`` overrides the configuration (tests, or ``kubectl proxy``); otherwise the
    in-cluster service account is used, then ``$KUBECONFIG`` or ``~/.kube/config``.
    """

    def __init__(self, server: str | None = None, kubeconfig: str | None = None,
                 context: str | None = None, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 120.0) -> None:
        import httpx2
        from lightkube.config import client_adapter
        from lightkube.config.kubeconfig import KubeConfig
        from lightkube.config.models import User
        from lightkube.core.exceptions import ConfigError as LightkubeConfigError

        try:
            if server:
                conf = KubeConfig.from_server(server)
            elif kubeconfig:
                conf = KubeConfig.from_file(kubeconfig)
            else:
                conf = KubeConfig.from_env()
            single = conf.get(context_name=context)
        except (LightkubeConfigError, OSError, KeyError) as exc:
            raise ConfigError(
                f"kubernetes: no API server configuration ({exc}); run in a pod with a service "
                "account, or set KUBECONFIG."
            ) from None
        if single is None:
            raise ConfigError(f"kubernetes: kubeconfig has no context {context!r}.")
        if single.user is None:  # e.g. a plain URL (kubectl proxy): no credentials to send
            single = single._replace(user=User())
        timeout = httpx2.Timeout(connect=connect_timeout_s, read=read_timeout_s,
                                 write=connect_timeout_s, pool=connect_timeout_s)
        params = client_adapter.ConnectionParams(timeout=timeout, trust_env=False)
        self.server = single.cluster.server
        self._client = client_adapter.Client(single, params)
        self._httpx = httpx2
        self._lock = threading.Lock()
        self._open: set[Any] = set()  # streaming responses, closed by close()
        self._closed = False

    def list(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        with self._stream(path, params) as resp:  # streamed, so that close() can end it too
            try:
                body: dict[str, Any] = json.loads(resp.read())
            except self._httpx.HTTPError as exc:
                raise ApiError(0, f"{type(exc).__name__}: {exc}") from None
            except ValueError:
                raise ApiError(0, "the list is not JSON") from None
        return body

    def watch(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        with self._stream(path, params) as resp:
            for line in split_lines(resp.iter_bytes()):
                try:
                    event: dict[str, Any] = json.loads(line)
                except ValueError:
                    raise ApiError(0, "a watch event is not JSON; reconnecting") from None
                yield event

    @contextmanager
    def _stream(self, path: str, params: Mapping[str, str]) -> Iterator[Any]:
        try:
            with self._client.stream("GET", path, params=dict(params)) as resp:
                if resp.status_code != 200:
                    raise ApiError(resp.status_code, _status_message(resp.read()))
                with self._lock:
                    if self._closed:
                        raise ApiError(0, "the client is closed")
                    self._open.add(resp)
                try:
                    yield resp
                finally:
                    with self._lock:
                        self._open.discard(resp)
        except self._httpx.HTTPError as exc:
            raise ApiError(0, f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        """Ends every open watch (from any thread) and the connection pool."""
        with self._lock:
            self._closed = True
            open_ = list(self._open)
        for resp in open_:
            # Closing a socket does not wake a thread blocked reading it; shutting it down
            # does. The socket is reached through httpcore's documented "network_stream".
            with contextlib.suppress(Exception):
                stream = resp.extensions.get("network_stream")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):  # closing from another thread: best effort
                resp.close()
        self._client.close()
