"""Starting, tracking and stopping the lab's processes.

Each process runs inside a lab netns and is recorded in ``<state>/procs/<name>.pid``. Cleanup
does not trust the records alone: ``stop_all`` also kills every process whose network namespace
is one of the lab's, so it cleans up after a crash, a Ctrl-C or a lost state directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from kubepulse.lab.sh import in_netns

_children: dict[int, subprocess.Popen[bytes]] = {}


def python_argv(module: str, *args: str) -> list[str]:
    """Run one of ``kubepulse.lab.programs`` with this interpreter."""
    return [sys.executable, "-m", f"kubepulse.lab.programs.{module}", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the dir that holds the kubepulse package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(state_dir: Path, name: str, netns: str, argv: Sequence[str]) -> int:
    """Start ``argv`` inside ``netns`` in its own session; log to ``<state>/logs/<name>.log``."""
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    (state_dir / "procs").mkdir(parents=True, exist_ok=True)
    with open(state_dir / "logs" / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            in_netns(netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(),
        )
    _children[proc.pid] = proc
    (state_dir / "procs" / f"{name}.pid").write_text(f"{proc.pid} {netns}\n")
    return proc.pid


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        _children.pop(pid, None)


def recorded(state_dir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in sorted((state_dir / "procs").glob("*.pid")):
        try:
            out[f.stem] = int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


def netns_inode(path: str | Path) -> int:
    return os.stat(path).st_ino


def pids_in_netns(inodes: Iterable[int]) -> list[int]:
    """Every process whose network namespace is one of ``inodes``."""
    wanted = set(inodes)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "net").st_ino in wanted:
                found.append(int(entry.name))
        except OSError:
            continue
    return [p for p in found if p != os.getpid()]


def stop(pids: Iterable[int], timeout_s: float = 5.0) -> None:
    """SIGTERM, wait up to ``timeout_s`` for the processes to go, then SIGKILL the rest."""
    pending = [p for p in set(pids) if alive(p)]
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if alive(p)]
        if pending:
            time.sleep(0.05)
    for pid in pending:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(alive(p) for p in pending) and time.monotonic() < deadline:
        time.sleep(0.02)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_one(state_dir: Path, name: str) -> None:
    pid = recorded(state_dir).get(name)
    if pid is not None:
        stop([pid])
        (state_dir / "procs" / f"{name}.pid").unlink(missing_ok=True)


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``check()`` until true or the deadline; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
