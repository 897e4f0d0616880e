"""`kubepulse run` as a real process, watched from outside: what an operator can see.

Everything here reads the agent the way a node's tooling would: its HTTP endpoints, its files,
``/proc/<pid>`` and the kernel's own object lists (bpftool, tc). Nothing reaches inside.
Waiting is always a poll with a deadline (``tests.export.servers.poll``), never a sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.export.servers import free_port, poll

KUBEPULSE = [sys.executable, "-m", "kubepulse.cli"]
REPO = Path(__file__).resolve().parents[2]
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, labels) -> value
SUMMARY = re.compile(r"stopped after (\d+) ticks: (\d+) records, (\d+) alert changes, (\d+) "
                     r"records lost in the kernel, (\d+) in user space")


@dataclass
class Summary:
    """The agent's closing line on stderr."""

    ticks: int
    records: int
    alert_changes: int
    lost_kernel: int
    lost_user: int


@dataclass
class AgentProc:
    """One agent process with its own config, state dir, JSONL file and listener port."""

    root: Path
    config: str = ""
    extra: Sequence[str] = ()
    prefix: Sequence[str] = ()  # e.g. unshare/setpriv in front of the python command
    listen: bool = True
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    bpf: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "kubepulse.yaml"
        self.config_path.write_text(self.config)
        self.jsonl = self.root / "alerts.jsonl"
        self.state = self.root / "state"
        self.stderr_path = self.root / "stderr.log"
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        return [*self.prefix, *KUBEPULSE, "run", "--config", str(self.config_path),
                "--state-dir", str(self.state), "--alerts-jsonl", str(self.jsonl), "--quiet",
                "--listen", f"127.0.0.1:{self.port}" if self.listen else "", *self.extra]

    def start(self, timeout: float = 30.0, wait: str = "agent running") -> AgentProc:
        """Start and wait for ``wait`` on stderr (this run's: a restart appends to the file)."""
        self._offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0
        err = self.stderr_path.open("ab")
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=err,
                                     cwd=REPO)
        err.close()
        self.started_at = time.monotonic()
        poll(f"{wait!r} on the agent's stderr",
             lambda: wait in self.stderr() or self._died(), timeout=timeout)
        assert self.proc.poll() is None, f"the agent exited: {self.stderr()[-3000:]}"
        self.bpf = self.bpf_ids()
        return self

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"agent exited {self.proc.returncode}: {self.stderr()[-3000:]}")
        return False

    def stderr(self) -> str:
        """What this run wrote to stderr."""
        if not self.stderr_path.exists():
            return ""
        with self.stderr_path.open("rb") as f:
            f.seek(getattr(self, "_offset", 0))
            return f.read().decode(errors="replace")

    # -- stopping ---------------------------------------------------------------------------------
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Send ``sig``; (exit code, seconds until the process was gone)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the agent did not exit within {timeout} s of signal {sig}")
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)  # in case a test left it stopped
            self.proc.kill()
            self.proc.wait(10)

    def summary(self) -> Summary:
        m = SUMMARY.search(self.stderr())
        assert m, f"no closing summary on stderr: {self.stderr()[-2000:]}"
        return Summary(*(int(g) for g in m.groups()))

    # -- what it serves ---------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 2.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def metrics(self) -> Metrics:
        text = self.get("/metrics", timeout=5.0).text
        out: Metrics = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def metric(self, name: str, metrics: Metrics | None = None, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        m = self.metrics() if metrics is None else metrics
        want = set(labels.items())
        return sum(v for (n, lab), v in m.items() if n == name and want <= set(lab))

    def metrics_where(self, check: Callable[[Metrics], bool]) -> Metrics | None:
        """The metrics if ``check`` holds for them (for ``poll``), else None."""
        m = self.metrics()
        return m if check(m) else None

    def reconciled(self) -> Metrics | None:
        """The metrics of a tick at which user space had read every record the kernel
        submitted (None otherwise): the exact identity submitted == processed."""
        m = self.metrics()
        submitted = self.metric("kubepulse_kernel_records_submitted_total", m)
        processed = self.metric("kubepulse_records_processed_total", m, probe="tcp_conn")
        return m if submitted == processed else None

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line]

    def refused_alerts(self, port: int) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["type"] == "connection_refused"
                and a["labels"].get("dst_port") == str(port)]

    # -- what /proc says --------------------------------------------------------------------------
    def status(self, key: str) -> int:
        """A kB field of /proc/<pid>/status (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def bpf_ids(self) -> dict[str, set[int]]:
        return bpf_ids_of(self.pid)


def bpf_ids_of(pid: int) -> dict[str, set[int]]:
    """IDs of the BPF programs, links and maps this process holds an fd to (its fdinfo)."""
    out: dict[str, set[int]] = {"prog": set(), "link": set(), "map": set()}
    base = Path(f"/proc/{pid}/fdinfo")
    for fd in os.listdir(base):
        try:
            text = (base / fd).read_text()
        except OSError:
            continue
        for kind, ids in out.items():
            m = re.search(rf"^{kind}_id:\s+(\d+)$", text, re.MULTILINE)
            if m:
                ids.add(int(m.group(1)))
    return out


def _bpftool(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["bpftool", "-j", *args], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]


def kernel_objects() -> dict[str, set[int]]:
    """Every BPF program, link and map loaded on this host (bpftool)."""
    return {"prog": {p["id"] for p in _bpftool("prog", "show")},
            "link": {lk["id"] for lk in _bpftool("link", "list")},
            "map": {m["id"] for m in _bpftool("map", "show")}}


def leftovers(ids: dict[str, set[int]]) -> dict[str, set[int]]:
    """Which of ``ids`` the kernel still has (empty sets when everything is gone)."""
    now = kernel_objects()
    return {k: ids[k] & now[k] for k in ids}


def tc_filters_of_ours() -> list[str]:
    """Any tc filter on any host interface that runs a kubepulse program (kp_*)."""
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], check=True,
                                      capture_output=True, text=True).stdout)
    found = []
    for link in links:
        for hook in ("ingress", "egress"):
            out = subprocess.run(["tc", "filter", "show", "dev", link["ifname"], hook],
                                 check=False, capture_output=True, text=True).stdout
            found += [f"{link['ifname']} {hook}: {line}" for line in out.splitlines()
                      if "kp_" in line]
    return found


def pinned_of_ours() -> list[str]:
    root = Path("/sys/fs/bpf")
    if not root.is_dir():
        return []
    return [str(p) for p in root.rglob("*") if "kp_" in p.name or "kubepulse" in p.name]


def sqlite_check(db: Path) -> tuple[str, list[str]]:
    """(PRAGMA integrity_check, open fingerprints) of the agent's store, read-only."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        fps = [r[0] for r in con.execute("SELECT fingerprint FROM open_alerts")]
    finally:
        con.close()
    return str(integrity), fps


# -- load, always bounded ---------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port with no listener (bound once to pick it, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_REFUSE = """
import socket, sys
port, n, refused = int(sys.argv[1]), int(sys.argv[2]), 0
for _ in range(n):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        refused += 1
print(refused)
"""


def refuse(port: int, n: int, netns: str | None = None) -> int:
    """``n`` connects to a closed loopback port (in ``netns`` if given); how many were
    refused."""
    if netns is not None:
        out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _REFUSE,
                              str(port), str(n)], check=True, capture_output=True, text=True,
                             timeout=60)
        return int(out.stdout)
    refused = 0
    for _ in range(n):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            refused += 1
    return refused


def fire_refused(agent: AgentProc, port: int, timeout: float = 20.0,
                 netns: str | None = None) -> dict[str, Any]:
    """Refuse connects to ``port`` (bounded: 5 per round, at most ``timeout`` s) until the
    agent's JSONL holds a firing connection_refused alert for it; returns that line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refuse(port, 5, netns)
        got = [a for a in agent.refused_alerts(port) if a["state"] == "firing"]
        if got:
            return got[0]
        # Pacing the load (a few connects per tick), not waiting for a result: the loop
        # itself polls the agent's output.
        time.sleep(0.2)
    raise AssertionError(f"no connection_refused alert for port {port} within {timeout} s; "
                         f"agent stderr: {agent.stderr()[-2000:]}")


@contextlib.contextmanager
def agent_running(root: Path, **kw: Any) -> Iterator[AgentProc]:
    a = AgentProc(root, **kw)
    try:
        yield a.start()
    finally:
        a.kill()


def churn_binary(out_dir: Path) -> Path:
    """bench/churn.c built with the system compiler (as bench/tcp_overhead.py does)."""
    exe = out_dir / "churn"
    if not exe.exists():
        subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe), str(REPO / "bench/churn.c")],
                       check=True, capture_output=True, timeout=120)
    return exe


def run_churn(exe: Path, *, duration: float, count: int = 0, threads: int = 2,
              servers: int = 2) -> dict[str, Any]:
    """One bounded churn run (``duration`` seconds and/or ``count`` connects); its JSON."""
    out = subprocess.run([str(exe), "--duration", str(duration), "--count", str(count),
                          "--threads", str(threads), "--servers", str(servers)],
                         check=True, capture_output=True, text=True, timeout=duration + 60)
    return json.loads(out.stdout)  # type: ignore[no-any-return]
