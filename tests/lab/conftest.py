"""Shared helpers for the lab tests: they build real network namespaces, so they need root."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kubepulse.lab import cluster, procs
from kubepulse.lab.sh import in_netns


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab builds network namespaces: run the lab tests as root")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.Lab]:
    """One lab per test module (building one takes about a second)."""
    _need_root()
    state = tmp_path_factory.mktemp("lab-state")
    built = cluster.up(state_dir=state, traffic_seconds=900)
    try:
        yield built
    finally:
        cluster.down(state)


def probe(lab: cluster.Lab, pod: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    """Run ``kubepulse.lab.programs.probe`` inside ``pod``'s netns; its JSON result."""
    p = lab.plan.pod(pod)
    out = subprocess.run(
        in_netns(p.netns, procs.python_argv("probe", *args)),
        capture_output=True, text=True, env=procs.child_env(), timeout=timeout, check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def netns_counter(netns: str, table: str, name: str) -> int:
    """One counter of /proc/net/snmp or /proc/net/netstat, as seen inside ``netns``."""
    path = "/proc/net/snmp" if table in ("Tcp", "Udp", "Ip") else "/proc/net/netstat"
    text = subprocess.run(in_netns(netns, ["cat", path]), capture_output=True, text=True,
                          check=True).stdout
    lines = [line.split() for line in text.splitlines() if line.startswith(table + ":")]
    header, values = lines[0], lines[1]
    return int(values[header.index(name)])


def tcp_established(netns: str, dst: str) -> int:
    out = subprocess.run(in_netns(netns, ["ss", "-Htn", "state", "established", "dst", dst]),
                         capture_output=True, text=True, check=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


def _out(argv: list[str]) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()


def lab_leftovers() -> dict[str, list[str]]:
    """What of the lab is still on this machine, by the tools an operator would use."""
    me = str(os.getpid())
    markers = ("kubepulse.lab.programs", "kpl-", "kubepulse-lab", "dnsmasq --keep", "pods/shop-")
    return {
        "netns": [ln.split()[0] for ln in _out(["ip", "netns", "list"]) if ln.startswith("kpl-")],
        "links": [ln for ln in _out(["ip", "-o", "link"]) if ": kpl-" in ln],
        "nft_tables": [ln for ln in _out(["nft", "list", "tables"]) if "kubepulse_lab" in ln],
        "processes": [
            ln for ln in _out(["ps", "-eo", "pid,args"])
            if any(m in ln for m in markers) and ln.split()[0] != me and "ps -eo" not in ln
        ],
    }


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    assert procs.wait_for(check, timeout_s), f"timed out after {timeout_s} s waiting for {what}"


__all__ = ["lab", "lab_leftovers", "netns_counter", "probe", "tcp_established", "wait_until"]
