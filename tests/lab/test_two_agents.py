"""Two agents, one per lab node (`--node`), as a DaemonSet would run them, here on one kernel:
each speaks only for its own node's pods, and a partition between the nodes is detected
from both sides.

Every pod pair an agent reports (its dashboard API, /api/v1/edges) has at least one end on that
agent's node: its own pods' connections, and those a pod of another node opened to one of its
pods (counted on the server's side when the client is not its own). When node1 and node2 are
cut apart, each agent raises network_partition for that node pair.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubepulse.lab import cluster, faults
from tests.export.servers import free_port, poll
from tests.live.test_events_cli import _read_until

pytestmark = [pytest.mark.lab, pytest.mark.live]

NODES = ("node1", "node2")


def _partitions(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [a for a in rows if a["type"] == "network_partition" and a["state"] == "firing"]


def test_two_agents_keep_to_their_nodes_and_both_see_a_partition(
        lab: cluster.Lab, tmp_path: Path) -> None:
    inv = lab.inventory()
    pods_on = {n: {f"{p.namespace}/{p.name}" for p in inv.pods if p.node == n} for n in NODES}
    assert all(pods_on.values())
    agents: dict[str, tuple[subprocess.Popen[str], str, Path]] = {}
    try:
        for node in NODES:
            port = free_port()
            alerts = tmp_path / f"{node}.jsonl"
            proc = subprocess.Popen(
                [sys.executable, "-m", "kubepulse.cli", "run", "--inventory",
                 str(lab.inventory_path), "--node", node, "--alerts-jsonl", str(alerts),
                 "--state-dir", str(tmp_path / node), "--listen", f"127.0.0.1:{port}",
                 "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            agents[node] = (proc, f"http://127.0.0.1:{port}", alerts)
        for proc, _, _ in agents.values():
            _read_until(proc, "stderr", "agent running", timeout=60)

        def pod_pairs(url: str) -> list[tuple[str, str]]:
            edges = httpx.get(url + "/api/v1/edges", timeout=5).json()["edges"]
            return [(p["src"], p["dst"]) for e in edges if e["protocol"] == "tcp"
                    for p in e["pods"]]

        for node, (_, url, _) in agents.items():
            pairs = poll(f"{node}'s agent reporting live pod pairs", partial(pod_pairs, url),
                         timeout=20, interval=0.5)
            foreign = [p for p in pairs if p[0] not in pods_on[node] and p[1] not in pods_on[node]]
            assert not foreign, (node, foreign)
            # Not everything: the other node's pod-to-pod traffic is the other agent's.
            other = next(n for n in NODES if n != node)
            assert any(p[0] in pods_on[node] for p in pairs), pairs
            assert not any(p[0] in pods_on[other] and p[1] in pods_on[other] for p in pairs)

        fault = faults.start(lab, "partition", "node:node2", "node:node1")
        try:
            for node, (_, _, alerts) in agents.items():
                got = poll(f"network_partition from {node}'s agent",
                           partial(_partitions, alerts), timeout=20, interval=0.2)
                labels = got[0]["labels"]
                assert {labels["src_node"], labels["dst_node"]} == set(NODES), labels
        finally:
            fault.stop(tmp_path / "labels.jsonl")
    finally:
        for proc, _, _ in agents.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _, _ in agents.values():
            try:
                assert proc.wait(timeout=15) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
