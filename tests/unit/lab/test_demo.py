"""The demo's first screen: the dashboard's URL, and whether its page is really served.

No kernel and no lab: the lab is a stand-in, and the "agent" serves the real dashboard
(kubepulse.dashboard on an HttpListener) on the port its argv names, as `kubepulse run` does.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from kubepulse.dashboard import Dashboard, DashboardStore
from kubepulse.export.http import HttpListener
from kubepulse.lab import cluster, demo
from kubepulse.lab.scenarios import agent_argv


def _argv(command: str, listen: str = "127.0.0.1:9810") -> list[str]:
    cmd = command.replace("{listen}", listen)
    return agent_argv(cmd, Path("/tmp/inv.json"), Path("/tmp/out/alerts.jsonl"))


def test_dashboard_url_follows_the_agents_listen() -> None:
    assert demo.dashboard_url(_argv(demo.DEMO_AGENT_CMD)) == "http://127.0.0.1:9810/"
    assert demo.dashboard_url(_argv(demo.DEMO_AGENT_CMD, "127.0.0.1:9811")) == \
        "http://127.0.0.1:9811/"
    assert demo.dashboard_url(_argv(demo.DEMO_AGENT_CMD, "0.0.0.0:9900")) == \
        "http://127.0.0.1:9900/"
    assert demo.dashboard_url(_argv(demo.DEMO_AGENT_CMD, "[::1]:9810")) == "http://[::1]:9810/"
    # `kubepulse run` without --listen serves on its default; the module form counts too
    assert demo.dashboard_url(["kubepulse", "run", "--quiet"]) == "http://127.0.0.1:9810/"
    assert demo.dashboard_url([sys.executable, "-m", "kubepulse.cli", "run"]) == \
        "http://127.0.0.1:9810/"
    assert demo.dashboard_url(["/opt/kubepulse/bin/kubepulse", "-v", "run"]) == \
        "http://127.0.0.1:9810/"


def test_no_dashboard_url_for_another_agent() -> None:
    assert demo.dashboard_url(["kubepulse", "run", "--listen", ""]) is None
    assert demo.dashboard_url(["sleep", "307"]) is None
    assert demo.dashboard_url(["kubepulse", "events"]) is None
    assert demo.dashboard_url(["kubepulse", "run", "--no-such-flag"]) is None
    assert demo.dashboard_url([]) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _DashboardAgent:
    """Stands in for scenarios.Agent: `start` serves the dashboard where argv's --listen says."""

    static_dir = Path()
    served: ClassVar[list[HttpListener]] = []

    def __init__(self, command: str, argv: list[str], log: Path) -> None:
        self.command, self.argv, self.log, self.error = command, argv, log, ""

    def start(self) -> bool:
        listener = HttpListener(self.argv[self.argv.index("--listen") + 1])
        Dashboard(DashboardStore(node="node1"), static_dir=self.static_dir).install(listener)
        listener.start()
        self.served.append(listener)
        return True

    def stop(self) -> None:
        while self.served:
            self.served.pop().close()

    def tail(self, lines: int = 5) -> list[str]:
        return []


def _run_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, static: Path) -> str:
    lab = SimpleNamespace(plan=SimpleNamespace(pods=[1, 2], nodes=[1], cidr="10.99.0.0/16"),
                          inventory_path=tmp_path / "inventory.json")
    monkeypatch.setattr(cluster, "up", lambda **_: lab)
    monkeypatch.setattr(cluster, "down", lambda *_: {"netns": 0, "processes": 0})
    monkeypatch.setattr(_DashboardAgent, "static_dir", static)
    monkeypatch.setattr(demo, "Agent", _DashboardAgent)
    monkeypatch.setattr(demo, "DASHBOARD_WAIT_S", 5.0)
    lines: list[str] = []
    listen = f"127.0.0.1:{_free_port()}"
    kwargs: dict[str, Any] = {"agent_cmd": demo.DEMO_AGENT_CMD, "out_dir": tmp_path / "out",
                              "rounds": 0, "fault_s": 0.0, "gap_s": 0.0, "listen": listen,
                              "state_dir": tmp_path / "state", "say": lines.append}
    assert demo.run(**kwargs) == 0
    assert not _DashboardAgent.served  # the demo stopped its agent
    return "\n".join(lines)


def test_demo_prints_the_dashboard_url_first(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>kubepulse</title>")
    out = _run_demo(tmp_path, monkeypatch, static)
    port = out.split("--listen 127.0.0.1:", 1)[1].split()[0]
    url = f"http://127.0.0.1:{port}/"
    assert f"  the dashboard: {url}\n" in out, out
    assert f"  the dashboard:             {url}\n" in out, out  # and under "where to look"
    # before the first fault and the other pointers: the first thing to open
    assert out.index(url) < out.index("where to look") < out.index("alerts (printed here too)")
    assert "not built" not in out


def test_demo_says_when_the_page_is_not_built(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run_demo(tmp_path, monkeypatch, tmp_path / "no-static")
    line = next(x for x in out.splitlines() if x.startswith("  the dashboard:"))
    assert "does not serve the page: HTTP 503: the dashboard's assets are not built" in line, out
    assert "=" * 78 not in out  # no banner for a page that is not there


def test_dashboard_status_when_nothing_listens() -> None:
    ok, why = demo.dashboard_status(f"http://127.0.0.1:{_free_port()}/", wait_s=0.3)
    assert not ok and why.startswith("nothing answers at http://127.0.0.1:"), why
