"""Fixtures for the resilience suite (docs/reliability.md).

Kernel tests use ``require_bpf`` (fail, not skip, under KUBEPULSE_REQUIRE_BPF=1). Network
namespaces made here are named ``kpr-*`` and removed in ``finally``; all traffic stays on
loopback or inside them.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_bpf

from .agentproc import churn_binary

_ids = itertools.count()


@pytest.fixture
def bpf() -> None:
    require_bpf()


@pytest.fixture(scope="session")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return churn_binary(tmp_path_factory.mktemp("churn"))


@pytest.fixture
def kpr_pair() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth: client 192.0.2.2, server 192.0.2.1 (TEST-NET-1, never
    routed anywhere: the namespaces have no other interface)."""
    base = f"kpr-{os.getpid()}-{next(_ids)}"
    names = (f"{base}-c", f"{base}-s")
    try:
        for n in names:
            subprocess.run(["ip", "netns", "add", n], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", names[0], "link", "add", "eth0", "type", "veth", "peer",
                        "name", "eth0", "netns", names[1]], check=True)
        for n, ip in zip(names, ("192.0.2.2/24", "192.0.2.1/24"), strict=True):
            subprocess.run(["ip", "-n", n, "addr", "add", ip, "dev", "eth0"], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", "eth0", "up"], check=True)
        yield names
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], check=False, capture_output=True)


@pytest.fixture
def kpr_pod(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A namespace with only loopback, and an inventory naming it as the one pod: an agent
    run with ``--inventory`` judges only what happens inside it, whatever else this host
    does. Yields (namespace name, inventory path)."""
    name = f"kpr-{os.getpid()}-{next(_ids)}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        inv = tmp_path / "inventory.json"
        inv.write_text(json.dumps({"version": 1, "cluster": "kpr", "pods": [{
            "name": "client-0", "namespace": "kpr", "workload": "client", "ip": "127.0.0.1",
            "netns": f"/run/netns/{name}",
            "netns_inode": os.stat(f"/run/netns/{name}").st_ino}]}))
        yield name, inv
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
