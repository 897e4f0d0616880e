"""Containers on this node: cgroup path -> container id, and container id -> network namespace.

The kernel stamps each record with the socket's cgroup id and network-namespace inode. The API
server knows pods by container id (``status.containerStatuses[].containerID``). What joins
the two is the cgroup path of the container's processes, which every runtime names after the
container id:

==========================  ===============================================================
driver / runtime            cgroup v2 path (``/proc/PID/cgroup``: ``0::<path>``)
==========================  ===============================================================
systemd, containerd         ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-
                            pod<uid_with_underscores>.slice/cri-containerd-<id>.scope``
systemd, cri-o              ``.../kubepods-besteffort-pod<uid>.slice/crio-<id>.scope``
systemd, docker (dockershim ``.../kubepods-pod<uid>.slice/docker-<id>.scope``
/ cri-dockerd)
cgroupfs (any runtime)      ``/kubepods/burstable/pod<uid>/<id>``
containerd, systemd cgroup  ``/system.slice/containerd.service/kubepods-burstable-pod<uid>.
path not delegated          slice:cri-containerd:<id>``
==========================  ===============================================================

:func:`parse_cgroup_path` is pure (tested on such paths); the two scans below read ``/proc``
and ``/sys/fs/cgroup`` with a bound on the work they do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

# A container id is 64 lowercase hex digits for containerd, cri-o and docker.
_ID = r"[0-9a-f]{64}"
# The last path component of a container's cgroup, with the runtime's prefix (if any).
_LEAF = re.compile(
    rf"^(?:(?P<rt>cri-containerd|crio|docker|containerd|libpod)[-:])?(?P<id>{_ID})(?:\.scope)?$"
)
# containerd with the systemd driver but cgroups not delegated: "<slice>:cri-containerd:<id>".
_COLON = re.compile(rf":(?P<rt>cri-containerd|crio|docker|containerd):(?P<id>{_ID})$")
# The pod's UID: "pod<uid>" (cgroupfs) or "...-pod<uid_with_underscores>.slice" (systemd).
_POD = re.compile(r"pod(?P<uid>[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_]"
                  r"[0-9a-f]{12})(?:\.slice)?(?:/|:|$)")
_RUNTIMES = {"cri-containerd": "containerd", "containerd": "containerd", "crio": "cri-o",
             "docker": "docker", "libpod": "podman"}
_NETNS = re.compile(r"^net:\[(\d+)\]$")


@dataclass(frozen=True, slots=True)
class CgroupRef:
    """What a cgroup path says about its process: the container and the pod it belongs to."""

    container_id: str  # "" when the path is not a container's (a pod slice, conmon, a service)
    pod_uid: str = ""  # with dashes, as in metadata.uid; "" outside a pod
    runtime: str = ""  # containerd, cri-o, docker, podman; "" for cgroupfs leaves (no prefix)


def parse_cgroup_path(path: str) -> CgroupRef:
    """The container id (and pod UID) in a cgroup path, or an empty :class:`CgroupRef`.

    Accepts a bare path or a whole ``/proc/PID/cgroup`` line (``0::/kubepods/...`` on cgroup
    v2, ``4:memory:/kubepods/...`` on v1). cri-o's ``crio-conmon-<id>.scope`` is the container
    monitor, not the container, and gives no container id.
    """
    text = path.strip()
    if text and text[0].isdigit() and ":" in text:
        text = text.split(":", 2)[2]  # hierarchy-id:controllers:path
    text = text.rstrip("/")
    pod = _POD.search(text)
    pod_uid = pod.group("uid").replace("_", "-") if pod else ""
    colon = _COLON.search(text)
    if colon:
        return CgroupRef(colon.group("id"), pod_uid, _RUNTIMES[colon.group("rt")])
    leaf = _LEAF.match(text.rsplit("/", 1)[-1])
    if leaf is None:
        return CgroupRef("", pod_uid)
    runtime = _RUNTIMES.get(leaf.group("rt") or "", "")
    return CgroupRef(leaf.group("id"), pod_uid, runtime)


def container_id_from_status(container_id: str) -> str:
    """``containerd://<id>``, ``cri-o://<id>``, ``docker://<id>`` -> ``<id>`` ("" if none)."""
    _, sep, rest = container_id.partition("://")
    rest = rest if sep else container_id
    return rest if re.fullmatch(_ID, rest) else ""


def _read_cgroup_file(text: str) -> CgroupRef:
    """The container a ``/proc/PID/cgroup`` file names: the v2 line first, else any v1 line."""
    lines = [ln for ln in text.splitlines() if ln]
    for line in sorted(lines, key=lambda ln: not ln.startswith("0::")):
        ref = parse_cgroup_path(line)
        if ref.container_id:
            return ref
    return CgroupRef("")


def netns_of_containers(wanted: Collection[str], proc_root: Path = Path("/proc"),
                        max_pids: int = 100_000) -> dict[str, int]:
    """container id -> network-namespace inode, for the ``wanted`` containers that have a
    process in ``proc_root``. Reads at most ``max_pids`` processes; a process that exits
    while it is read is skipped."""
    found: dict[str, int] = {}
    if not wanted:
        return found
    try:
        entries = os.scandir(proc_root)
    except OSError:
        return found
    with entries:
        for n, entry in enumerate(entries):
            if n >= max_pids or len(found) == len(wanted):
                break
            if not entry.name.isdigit():
                continue
            base = Path(entry.path)
            try:
                ref = _read_cgroup_file((base / "cgroup").read_text())
                if not ref.container_id or ref.container_id not in wanted \
                        or ref.container_id in found:
                    continue
                m = _NETNS.match(os.readlink(base / "ns" / "net"))
            except OSError:
                continue  # gone, or not ours to read
            if m:
                found[ref.container_id] = int(m.group(1))
    return found


def cgroup_ids_of_containers(wanted: Collection[str], cgroup_root: Path = Path("/sys/fs/cgroup"),
                             max_dirs: int = 50_000, max_depth: int = 8) -> dict[int, str]:
    """cgroup id -> container id for the ``wanted`` containers. On cgroup v2 a cgroup's id
    (what ``bpf_get_current_cgroup_id()`` and the socket's cgroup report) is the inode number of
    its directory. Walks only the kubepods subtrees, at most ``max_dirs`` directories."""
    found: dict[int, str] = {}
    if not wanted:
        return found
    stack: list[tuple[str, int]] = [(str(cgroup_root), 0)]
    seen = 0
    while stack and seen < max_dirs and len(found) < len(wanted):
        path, depth = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen >= max_dirs:
                break
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                name = entry.name
                ref = parse_cgroup_path(entry.path[len(str(cgroup_root)):])
                if ref.container_id and ref.container_id in wanted:
                    found[entry.inode()] = ref.container_id
                elif depth < max_depth and (
                        "kubepods" in name or name.endswith(".service") or name == "system.slice"
                        or "kubelet" in name):
                    stack.append((entry.path, depth + 1))
            except OSError:
                continue
    return found
