"""cgroup path -> container id, on paths as the kubelet and each runtime make them, and the
scans that join a container to its network namespace and cgroup id."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubepulse.enrich.cgroup import (
    CgroupRef,
    cgroup_ids_of_containers,
    container_id_from_status,
    netns_of_containers,
    parse_cgroup_path,
)

CID = "4f1c7d2a9b3e8f60a1d2c3b4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f809"
UID = "3a6b1f0e-9c2d-4e8f-a7b6-5c4d3e2f1a09"
UID_ = UID.replace("-", "_")

CASES = [
    # systemd driver, containerd (cgroup v2), as in /proc/PID/cgroup
    ((f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope"), CgroupRef(CID, UID, "containerd")),
    # systemd driver, cri-o
    ((f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
     f"crio-{CID}.scope"), CgroupRef(CID, UID, "cri-o")),
    # Guaranteed QoS: no QoS slice
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope",
     CgroupRef(CID, UID, "docker")),
    # cgroupfs driver (any runtime): the bare id
    (f"0::/kubepods/burstable/pod{UID}/{CID}", CgroupRef(CID, UID, "")),
    (f"/kubepods/pod{UID}/{CID}/", CgroupRef(CID, UID, "")),
    # cgroup v1, a controller line
    (f"11:memory:/kubepods/besteffort/pod{UID}/{CID}", CgroupRef(CID, UID, "")),
    ((f"4:cpu,cpuacct:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}"
     f".slice/cri-containerd-{CID}.scope"), CgroupRef(CID, UID, "containerd")),
    # kind / nested: the kubelet's own slice prefix
    ((f"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
     f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope"),
     CgroupRef(CID, UID, "containerd")),
    # containerd with systemd cgroup paths not delegated
    ((f"0::/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:"
     f"{CID}"), CgroupRef(CID, UID, "containerd")),
    # docker outside Kubernetes: a container, no pod
    (f"0::/system.slice/docker-{CID}.scope", CgroupRef(CID, "", "docker")),
    # not containers
    (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice",
     CgroupRef("", UID, "")),
    ((f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
     f"crio-conmon-{CID}.scope"), CgroupRef("", UID, "")),
    ("0::/system.slice/containerd.service", CgroupRef("")),
    ("0::/user.slice/user-1000.slice/session-3.scope", CgroupRef("")),
    ("0::/", CgroupRef("")),
    ("", CgroupRef("")),
    (f"0::/kubepods/burstable/pod{UID}/{CID[:60]}", CgroupRef("", UID, "")),  # not 64 hex
]


@pytest.mark.parametrize(("path", "want"), CASES)
def test_parse_cgroup_path(path: str, want: CgroupRef) -> None:
    assert parse_cgroup_path(path) == want


@pytest.mark.parametrize("status", [f"containerd://{CID}", f"cri-o://{CID}", f"docker://{CID}",
                                    CID])
def test_container_id_from_status(status: str) -> None:
    assert container_id_from_status(status) == CID


def test_container_id_from_status_rejects_others() -> None:
    assert container_id_from_status("") == ""
    assert container_id_from_status("containerd://abc") == ""


def _fake_proc(root: Path, pid: int, cgroup: str, netns: int | None) -> None:
    d = root / str(pid)
    (d / "ns").mkdir(parents=True)
    (d / "cgroup").write_text(cgroup)
    if netns is not None:
        os.symlink(f"net:[{netns}]", d / "ns" / "net")  # what readlink shows on a real /proc


def test_netns_of_containers_on_a_proc_tree(tmp_path: Path) -> None:
    other = "a" * 64
    _fake_proc(tmp_path, 10, f"0::/kubepods/burstable/pod{UID}/{CID}\n", 4026532459)
    _fake_proc(tmp_path, 11, f"0::/kubepods/burstable/pod{UID}/{CID}\n", 4026532459)
    _fake_proc(tmp_path, 12, "0::/system.slice/sshd.service\n", 4026531840)
    _fake_proc(tmp_path, 13, f"0::/kubepods/besteffort/pod{UID}/{other}\n", None)  # exited
    (tmp_path / "self").mkdir()
    assert netns_of_containers({CID, other}, tmp_path) == {CID: 4026532459}
    assert netns_of_containers(set(), tmp_path) == {}
    assert netns_of_containers({CID}, tmp_path / "missing") == {}


def test_netns_of_containers_on_the_real_proc() -> None:
    """The real /proc parses (this machine's processes are in no pod: nothing is found)."""
    assert netns_of_containers({CID}, Path("/proc"), max_pids=5000) == {}


def test_cgroup_ids_of_containers(tmp_path: Path) -> None:
    pod = tmp_path / "kubepods.slice" / "kubepods-burstable.slice" / \
        f"kubepods-burstable-pod{UID_}.slice"
    leaf = pod / f"cri-containerd-{CID}.scope"
    leaf.mkdir(parents=True)
    (pod / f"cri-containerd-{'b' * 64}.scope").mkdir()
    (tmp_path / "user.slice" / "deep").mkdir(parents=True)
    found = cgroup_ids_of_containers({CID}, tmp_path)
    assert found == {leaf.stat().st_ino: CID}
    assert cgroup_ids_of_containers({CID}, tmp_path, max_dirs=2) == {}  # the bound holds
