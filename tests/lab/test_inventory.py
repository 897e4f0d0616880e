"""The inventory written by `lab up`, and hand-written ones with clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubepulse.enrich import inventory
from kubepulse.errors import ConfigError
from kubepulse.lab import cluster

pytestmark = pytest.mark.lab


def test_lab_inventory_names_every_pod_and_service(lab: cluster.Lab) -> None:
    inv = inventory.load(lab.inventory_path)
    assert len(inv.pods) == len(lab.plan.pods) and inv.cidr == lab.plan.cidr
    api = inv.service("shop", "api")
    assert api is not None and sorted(api.endpoints) == sorted(
        p.ip for p in inv.pods if p.workload == "api")
    assert [p.port for p in api.ports] == [8080]
    for node in inv.nodes:
        assert node.netns and os.stat(node.netns).st_ino == node.netns_inode
    pod = inv.pod_by_ip()[lab.plan.pod("db-0").ip]
    assert (pod.namespace, pod.workload, pod.labels["app"]) == ("shop", "db", "db")
    # The file is plain JSON that a user could have written.
    raw = json.loads(lab.inventory_path.read_text())
    assert set(raw) >= {"version", "nodes", "pods", "services"}


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "inv.json"
    p.write_text(json.dumps(data))
    return p


def test_a_minimal_hand_written_inventory_loads(tmp_path: Path) -> None:
    inv = inventory.load(write(tmp_path, {
        "pods": [{"name": "web-1", "namespace": "default", "ip": "192.168.1.5"}],
        "services": [{"name": "web", "namespace": "default", "endpoints": ["192.168.1.5"],
                      "ports": [{"port": 80}]}],
    }))
    assert inv.pods[0].netns is None and inv.services[0].ports[0].protocol == "TCP"


@pytest.mark.parametrize("data,message", [
    ({"pods": [{"name": "a", "namespace": "x", "ip": "10.0.0.1"},
               {"name": "b", "namespace": "x", "ip": "10.0.0.1"}]},
     r"inv.json: pods\[1\].ip: duplicate pod IP 10.0.0.1 \(also pods\[0\] x/a\)"),
    ({"pods": [{"name": "a", "namespace": "x", "ip": "10.0.0.300"}]},
     r"inv.json: pods\[0\].ip: .*'10.0.0.300' is not an IP address"),
    ({"pods": [{"namespace": "x", "ip": "10.0.0.1"}]}, r"pods\[0\].name: Field required"),
    ({"pods": [], "pdos": []}, r"pdos: Extra inputs are not permitted"),
    ({"nodes": [{"name": "n1"}], "pods": [{"name": "a", "namespace": "x", "ip": "10.0.0.1",
                                           "node": "n2"}]},
     r"pods\[0\].node: 'n2' is not one of the nodes \(n1\)"),
    ({"services": [{"name": "s", "namespace": "x", "ports": [{"port": 70000}]}]},
     r"services\[0\].ports\[0\].port"),
    ({"version": 2}, r"version: 2 is not supported"),
])
def test_errors_name_the_file_the_key_and_the_problem(
    tmp_path: Path, data: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        inventory.load(write(tmp_path, data))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; run `kubepulse lab up`"):
        inventory.load(tmp_path / "nope.json")
    p = tmp_path / "bad.json"
    p.write_text("{\n  'pods': []\n}")
    with pytest.raises(ConfigError, match=r"bad.json: line 2 column 3: not valid JSON"):
        inventory.load(p)
