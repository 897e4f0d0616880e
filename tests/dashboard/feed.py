"""A dashboard on a loopback listener, fed tick by tick from the test (no agent thread)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from kubepulse.dashboard import Dashboard, DashboardStore, TokenGuard
from kubepulse.export.http import HttpListener, serve_agent_routes
from kubepulse.export.metrics import AgentMetrics
from kubepulse.model import Alert
from tests.dashboard.fakes import DashAgent


@dataclass
class Served:
    dashboard: Dashboard
    listener: HttpListener
    agent: DashAgent

    @property
    def url(self) -> str:
        return self.listener.url

    def tick(self, changes: Sequence[Alert] = ()) -> None:
        self.dashboard.on_tick(self.agent, changes)


@contextlib.contextmanager
def served(agent: DashAgent, token: str = "", node: str = "node-test") -> Iterator[Served]:
    dashboard = Dashboard(DashboardStore(node=node))
    listener = HttpListener("127.0.0.1:0")
    serve_agent_routes(listener, AgentMetrics())
    dashboard.install(listener, guard=TokenGuard(token) if token else None)
    listener.start()
    try:
        yield Served(dashboard, listener, agent)
    finally:
        listener.close()


def now() -> float:
    return time.time()
