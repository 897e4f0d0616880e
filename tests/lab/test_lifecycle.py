"""lab up / status / up again / down / up again, with nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kubepulse.enrich import inventory
from kubepulse.errors import ConfigError
from kubepulse.lab import cluster, procs

from .conftest import lab_leftovers

pytestmark = pytest.mark.lab


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the lab builds network namespaces: run the lab tests as root")
    cluster.down(tmp_path)
    return tmp_path


def test_up_status_down_up_leaves_nothing(state: Path) -> None:
    lab = cluster.up(state_dir=state, traffic_seconds=300)
    st = cluster.status(state)
    assert st["up"] is True
    assert st["pods"], st
    assert all(p["serving"] in (True, None) for p in st["pods"]), st["pods"]
    assert sorted(st["netns_present"]) == sorted(lab.plan.netns_names())

    inv = inventory.load(lab.inventory_path)
    assert {p.name for p in inv.pods} >= {"api-0", "api-1", "db-0", "kube-dns-0"}
    for pod in inv.pods:
        assert pod.netns and os.stat(pod.netns).st_ino == pod.netns_inode
    assert {p.node for p in inv.pods if p.workload == "api"} == {"node1", "node2"}

    pids = dict(procs.recorded(state))
    again = cluster.up(state_dir=state, traffic_seconds=300)  # idempotent: nothing rebuilt
    assert again.plan == lab.plan and procs.recorded(state) == pids

    with pytest.raises(ConfigError, match="already up"):
        cluster.up("10.245.0.0/16", state_dir=state)

    removed = cluster.down(state)
    assert removed["netns"] == len(lab.plan.netns_names())
    assert lab_leftovers() == {"netns": [], "links": [], "nft_tables": [], "processes": []}
    assert not procs.wait_for(lambda: any(procs.alive(p) for p in pids.values()), 0.5)

    cluster.up(state_dir=state, traffic_seconds=300)
    assert cluster.status(state)["up"] is True
    cluster.down(state)
    assert lab_leftovers() == {"netns": [], "links": [], "nft_tables": [], "processes": []}


def test_down_cleans_after_a_crash(state: Path) -> None:
    """State dir lost (a crash, a reboot of /run): down still finds everything by prefix."""
    cluster.up(state_dir=state, traffic_seconds=300)
    subprocess.run(["ip", "netns", "exec", "kpl-shop-api-0", "nft", "add", "table", "inet",
                    "kubepulse_lab_stray"], check=True)
    for entry in state.iterdir():
        if entry.is_dir():
            subprocess.run(["rm", "-rf", str(entry)], check=True)
        else:
            entry.unlink()
    cluster.down(state / "elsewhere")
    assert lab_leftovers() == {"netns": [], "links": [], "nft_tables": [], "processes": []}


def test_up_refuses_a_cidr_that_overlaps_the_host(state: Path) -> None:
    routes = json.loads(subprocess.run(["ip", "-4", "-j", "route"], capture_output=True,
                                       text=True, check=True).stdout)
    host_net = next(r["dst"] for r in routes if r.get("dst", "default") != "default"
                    and not r.get("dev", "").startswith("kpl-"))
    with pytest.raises(ConfigError, match="overlaps the host route"):
        cluster.check_cidr_free(host_net)
    cluster.check_cidr_free("10.244.0.0/16")  # the default lab CIDR is free here
    assert lab_leftovers()["netns"] == []


def test_bad_cidrs_are_refused_with_the_fix(state: Path) -> None:
    with pytest.raises(ConfigError, match="private"):
        cluster.up("8.8.0.0/16", state_dir=state)
    with pytest.raises(ConfigError, match="/16 to /22"):
        cluster.up("10.0.0.0/8", state_dir=state)
