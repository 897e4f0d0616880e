"""Fixtures for tests against the real kernel: the probe, and network namespaces we own."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kubepulse.model import ConnEvent
from tests.conftest import require_bpf

pytestmark = pytest.mark.live


@pytest.fixture(scope="session", autouse=True)
def _bpf_ready() -> None:
    require_bpf()


class Collector:
    """Reads the probe and keeps every decoded record; tests wait for what they expect."""

    def __init__(self, probe: object) -> None:
        from kubepulse.probes.tcp_conn import TcpConnProbe, to_events

        assert isinstance(probe, TcpConnProbe)
        self.probe = probe
        self._decode = to_events
        self.events: list[ConnEvent] = []

    def poll(self) -> None:
        self.probe.wait(0.05)
        batch = self.probe.read()
        if batch.size:
            self.events.extend(self._decode(batch, self.probe.enums, self.probe._wall_offset))

    def wait_for(self, pred: Callable[[ConnEvent], bool], count: int = 1,
                 timeout: float = 10.0) -> list[ConnEvent]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if pred(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            self.poll()

    def settle(self, pred: Callable[[ConnEvent], bool], quiet: float = 0.5) -> list[ConnEvent]:
        """Everything matching once nothing new has matched for ``quiet`` seconds (used only
        to assert that no *extra* record arrives after the expected ones)."""
        last = len([e for e in self.events if pred(e)])
        deadline = time.monotonic() + quiet
        while time.monotonic() < deadline:
            self.poll()
            now = len([e for e in self.events if pred(e)])
            if now != last:
                last, deadline = now, time.monotonic() + quiet
        return [e for e in self.events if pred(e)]


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    from kubepulse.probes.tcp_conn import TcpConnProbe

    with TcpConnProbe() as probe:
        probe.start()
        yield Collector(probe)


_ns_ids = itertools.count()


@dataclass
class NetNs:
    name: str
    inode: int

    def run(self, code: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run Python ``code`` inside the namespace; it prints one JSON object last."""
        out = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=timeout, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def sh(self, *cmd: str, stdin: str | None = None) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *cmd], input=stdin, text=True,
                       check=True, capture_output=True)


@pytest.fixture
def netns() -> Iterator[NetNs]:
    """A fresh network namespace with only loopback up, owned and removed by this test."""
    name = f"kpt-{os.getpid()}-{next(_ns_ids)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        inode = os.stat(f"/run/netns/{name}").st_ino
        yield NetNs(name, inode)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
