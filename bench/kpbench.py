"""Shared pieces of the network benchmarks (dns_flood.py, drop_storm.py).

The load generator (bench/flood.c, built here into bench/out/), a pair of network namespaces
joined by a veth that the benchmark creates and always removes, process and BPF readings.
Namespaces are named ``kpb-*`` and addressed in 10.250.0.0/16: nothing is routed out of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
FLOOD_SRC = BENCH / "flood.c"
FLOOD = OUT / "flood"
NETNS_PREFIX = "kpb-"
SUBNET = "10.250."


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def build_flood() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    if FLOOD.exists() and FLOOD.stat().st_mtime >= FLOOD_SRC.stat().st_mtime:
        return FLOOD
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-pthread", "-o", str(FLOOD), str(FLOOD_SRC)]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)
    return FLOOD


def run(cmd: list[str], *, check: bool = True, timeout: float = 30.0,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                         input=input_text)
    if check and res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def in_netns(ns: str, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


# -- signals: Ctrl-C and SIGTERM both unwind through the `finally` that cleans up -------------


class Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """While cleaning up: a second Ctrl-C must not leave half the namespaces behind."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# -- a veth between two namespaces of our own ---------------------------------------------------


@dataclass(frozen=True)
class NetnsPair:
    """Namespaces ``a`` and ``b``, each with ``eth0`` (a veth pair), ``a_ip`` and ``b_ip``/24."""

    a: str
    b: str
    a_ip: str
    b_ip: str

    def __post_init__(self) -> None:
        for ns in (self.a, self.b):
            if not ns.startswith(NETNS_PREFIX):
                raise ValueError(f"benchmark namespaces are named {NETNS_PREFIX}*, not {ns}")
        for ip in (self.a_ip, self.b_ip):
            if not ip.startswith(SUBNET):
                raise ValueError(f"benchmark addresses are in {SUBNET}0.0/16, not {ip}")

    def inode(self, ns: str) -> int:
        return os.stat(f"/run/netns/{ns}").st_ino

    def create(self) -> None:
        existing = set(run(["ip", "netns", "list"]).stdout.split())
        left = sorted({self.a, self.b} & existing)
        if left:
            raise RuntimeError(
                f"network namespace(s) {', '.join(left)} already exist: another run of this "
                f"benchmark, or one that was killed. Remove them with: "
                + "; ".join(f"ip netns del {ns}" for ns in left))
        run(["ip", "netns", "add", self.a])
        run(["ip", "netns", "add", self.b])
        run(["ip", "-n", self.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
             "netns", self.b])
        for ns, ip in ((self.a, self.a_ip), (self.b, self.b_ip)):
            run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def delete(self) -> list[str]:
        """Remove both namespaces (the veth goes with them); returns what could not go."""
        left = []
        for ns in (self.a, self.b):
            if Path(f"/run/netns/{ns}").exists():
                res = run(["ip", "netns", "del", ns], check=False)
                if res.returncode:
                    left.append(f"{ns}: {res.stderr.strip()}")
        return left


def udp_snmp(ns: str) -> dict[str, int]:
    """The Udp: line of /proc/net/snmp inside a namespace (per-namespace counters)."""
    lines = [ln for ln in run(in_netns(ns, ["cat", "/proc/net/snmp"])).stdout.splitlines()
             if ln.startswith("Udp:")]
    names, values = lines[0].split()[1:], lines[1].split()[1:]
    return {n: int(v) for n, v in zip(names, values, strict=True)}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


# -- processes ------------------------------------------------------------------------------------


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM,
                 timeout: float = 20.0) -> int | None:
    """Signal one process we started; kill it if it does not stop. Its exit code, or None if
    it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str, float]:
    """(status, body, seconds)."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, "", time.monotonic() - t0


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of one family's samples in a Prometheus exposition, optionally by label values."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        lab = m.group(2) or ""
        if all(f'{k}="{v}"' in lab for k, v in labels.items()):
            total += float(m.group(3))
    return total


# -- BPF objects a process holds, read with bpftool ---------------------------------------------


def sysctl(name: str, value: int | None = None) -> int:
    path = Path("/proc/sys") / name.replace(".", "/")
    if value is not None:
        path.write_text(f"{value}\n")
    return int(path.read_text().split()[0])


def bpf_ids(pid: int, kind: str) -> set[int]:
    """IDs of the BPF maps (kind "map") or programs ("prog") process ``pid`` holds an fd to."""
    ids = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for f in fdinfo.iterdir():
        with contextlib.suppress(OSError):
            for line in f.read_text().splitlines():
                if line.startswith(f"{kind}_id:"):
                    ids.add(int(line.split()[1]))
    return ids


def bpftool(*args: str, timeout: float = 30.0) -> Any:
    return json.loads(run(["bpftool", "-j", *args], timeout=timeout).stdout or "null")


def maps_by_name(pid: int) -> dict[str, int]:
    out = {}
    for mid in sorted(bpf_ids(pid, "map")):
        with contextlib.suppress(RuntimeError):
            info = bpftool("map", "show", "id", str(mid))
            out[info.get("name", str(mid))] = mid
    return out


def percpu_array_sums(map_id: int) -> dict[int, int]:
    """{index: value summed over CPUs} of a per-CPU array of u64."""
    out = {}
    for e in bpftool("map", "dump", "id", str(map_id)):
        f = e.get("formatted") or {}
        if f:
            out[int(f["key"])] = sum(int(v["value"]) for v in f["values"])
        else:
            key = int.from_bytes(bytes(int(b, 16) for b in e["key"]), "little")
            out[key] = sum(int.from_bytes(bytes(int(b, 16) for b in v["value"]), "little")
                           for v in e["values"])
    return out


def map_entries(map_id: int) -> int:
    """Entries in a hash map right now, read in chunks with BPF_MAP_LOOKUP_BATCH through
    libbpf (milliseconds for 16k entries, where a bpftool dump takes seconds)."""
    info = bpftool("map", "show", "id", str(map_id))
    ks, vs = int(info["bytes_key"]), int(info["bytes_value"])
    lib = ctypes.CDLL("libbpf.so.1")
    lib.bpf_map_get_fd_by_id.argtypes = [ctypes.c_uint32]
    fd = int(lib.bpf_map_get_fd_by_id(map_id))
    if fd < 0:
        raise RuntimeError(f"map id {map_id}: {os.strerror(-fd)}")
    try:
        chunk = 4096
        kbuf = ctypes.create_string_buffer(ks * chunk)
        vbuf = ctypes.create_string_buffer(vs * chunk)
        in_b, out_b = ctypes.create_string_buffer(max(ks, 8)), ctypes.create_string_buffer(
            max(ks, 8))
        total, first = 0, True
        for _ in range(int(info["max_entries"]) // chunk + 2):  # bounded by the map's size
            count = ctypes.c_uint32(chunk)
            rc = int(lib.bpf_map_lookup_batch(fd, None if first else in_b, out_b, kbuf, vbuf,
                                              ctypes.byref(count), None))
            total += int(count.value)
            if rc < 0:
                if -rc != errno.ENOENT:  # ENOENT: that was the last chunk
                    raise RuntimeError(f"map id {map_id}: batch lookup: {os.strerror(-rc)}")
                break
            ctypes.memmove(in_b, out_b, len(out_b))
            first = False
        return total
    finally:
        os.close(fd)


def prog_stats(ids: set[int]) -> dict[str, dict[str, int]]:
    """{name: {run_cnt, run_time_ns}} of these programs (kernel.bpf_stats_enabled=1)."""
    out = {}
    for p in bpftool("prog", "show"):
        if p["id"] in ids:
            out[p.get("name", str(p["id"]))] = {"run_cnt": int(p.get("run_cnt", 0)),
                                                 "run_time_ns": int(p.get("run_time_ns", 0))}
    return out


def foreign_bpf(own_pids: set[int]) -> dict[str, int]:
    """BPF programs attached by someone else (another agent, a test) that run on the same
    packets: programs linked to a cgroup or a tracepoint, by name, that none of
    ``own_pids`` holds. They tax every measurement here, baseline included."""
    own: set[int] = set()
    for pid in own_pids:
        with contextlib.suppress(OSError):
            own |= bpf_ids(pid, "prog")
    names = {p["id"]: p.get("name", str(p["id"])) for p in bpftool("prog", "show")}
    out: dict[str, int] = {}
    for link in bpftool("link", "show"):
        if link.get("type") in ("cgroup", "perf_event") and link["prog_id"] not in own:
            name = names.get(link["prog_id"], str(link["prog_id"]))
            out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items()))


def prog_delta(before: dict[str, dict[str, int]],
               after: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, a in after.items():
        b = before.get(name, {"run_cnt": 0, "run_time_ns": 0})
        cnt, ns = a["run_cnt"] - b["run_cnt"], a["run_time_ns"] - b["run_time_ns"]
        out[name] = {"runs": cnt, "ns_total": ns,
                     "ns_per_run": round(ns / cnt, 1) if cnt else None}
    return out


def environment() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "kernel": os.uname().release,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join([sys.executable, *sys.argv])}


def write_results(stem: str, result: dict[str, Any], md: str, out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{stem}.md").write_text(md)
    print(md)
    record(stem, result)


def record(name: str, result: dict[str, Any]) -> None:
    """Also write results/<name>.json (commit, date, machine, command): the docs' source."""
    if str(REPO / "src") not in sys.path:
        sys.path.insert(0, str(REPO / "src"))
    from kubepulse.results import command_line, write_result

    log(f"wrote {write_result(name, result, command_line([sys.executable, *sys.argv]))}")
