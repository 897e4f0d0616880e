"""Two network namespaces joined by a veth (192.0.2.2 client, 192.0.2.1 server), owned and
removed by the test that asks for them. Used by test_dns.py and test_drops.py."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

_ids = itertools.count()

CLIENT_IP = "192.0.2.2"
SERVER_IP = "192.0.2.1"
SERVER_IP2 = "192.0.2.3"


@dataclass
class Ns:
    name: str
    inode: int

    def run(self, code: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run Python ``code`` inside the namespace; it prints one JSON object last."""
        out = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", code,
                              *args], capture_output=True, text=True, timeout=timeout,
                             check=False)
        if out.returncode:
            raise AssertionError(f"in {self.name}: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def sh(self, *cmd: str, stdin: str | None = None) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *cmd], input=stdin, text=True,
                       check=True, capture_output=True, timeout=30)

    def popen(self, *cmd: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@dataclass
class Pair:
    client: Ns
    server: Ns


def _add(name: str) -> Ns:
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return Ns(name, os.stat(f"/run/netns/{name}").st_ino)


@pytest.fixture
def pair() -> Iterator[Pair]:
    base = f"kpd-{os.getpid()}-{next(_ids)}"
    names = [f"{base}-c", f"{base}-s"]
    try:
        cli, srv = _add(names[0]), _add(names[1])
        subprocess.run(["ip", "-n", cli.name, "link", "add", "eth0", "type", "veth", "peer",
                        "name", "eth0", "netns", srv.name], check=True)
        for ns, ips in ((cli, [CLIENT_IP]), (srv, [SERVER_IP, SERVER_IP2])):
            for ip in ips:
                subprocess.run(["ip", "-n", ns.name, "addr", "add", f"{ip}/24", "dev", "eth0"],
                               check=True)
            subprocess.run(["ip", "-n", ns.name, "link", "set", "eth0", "up"], check=True)
        yield Pair(cli, srv)
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], check=False, capture_output=True)
