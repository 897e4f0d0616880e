"""Real Prometheus and Alertmanager for the tests: free loopback ports, temp dirs, bounded.

Every process is started with a deadline and stopped (terminate, then kill) by the context
manager; readiness is polled with a deadline, never assumed after a sleep.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (apt-get install prometheus prometheus-alertmanager)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(what: str, check: Callable[[], Any], timeout: float = 20.0,
         interval: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


@contextlib.contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _ready(url: str) -> bool:
    return httpx.get(url, timeout=1.0).status_code == 200


@contextlib.contextmanager
def prometheus(tmp: Path, targets: list[str], rule_files: list[str] | None = None
               ) -> Iterator[str]:
    """A real Prometheus scraping ``targets`` (host:port) every second; yields its base URL."""
    need(PROMETHEUS)
    port = free_port()
    cfg = tmp / "prometheus.yml"
    rules = "\n".join(f"  - {r}" for r in rule_files or [])
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + (f"rule_files:\n{rules}\n" if rules else "")
        + "scrape_configs:\n  - job_name: kubepulse\n    static_configs:\n"
        + f"      - targets: {targets!r}\n")
    argv = [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"]
    base = f"http://127.0.0.1:{port}"
    with process(argv, tmp / "prometheus.log"):
        poll("prometheus ready", lambda: _ready(base + "/-/ready"), timeout=30)
        yield base


@contextlib.contextmanager
def alertmanager(tmp: Path, config: str, port: int | None = None, name: str = "am"
                 ) -> Iterator[str]:
    """A real Alertmanager (no cluster), with ``config`` as its YAML; yields its base URL."""
    need(ALERTMANAGER)
    port = port or free_port()
    d = tmp / name
    d.mkdir(exist_ok=True)
    cfg = d / "alertmanager.yml"
    cfg.write_text(config)
    argv = [ALERTMANAGER, f"--config.file={cfg}", f"--storage.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    base = f"http://127.0.0.1:{port}"
    with process(argv, d / "alertmanager.log"):
        poll("alertmanager ready", lambda: _ready(base + "/-/ready"), timeout=30)
        yield base


def promql(base: str, query: str) -> list[dict[str, Any]]:
    resp = httpx.get(base + "/api/v1/query", params={"query": query}, timeout=5.0)
    body = resp.json()
    assert body["status"] == "success", (query, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
