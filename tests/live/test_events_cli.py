"""`kubepulse events` as a user runs it: real process, real signals, real kernel objects."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.live

KUBEPULSE = [sys.executable, "-m", "kubepulse.cli"]


def _our_bpf_ids() -> tuple[set[int], set[int]]:
    """IDs of loaded kubepulse programs (kp_*), and of links that point at them."""
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], check=True,
                                      capture_output=True, text=True).stdout or "[]")
    ours = {p["id"] for p in progs if str(p.get("name", "")).startswith("kp_")}
    links = json.loads(subprocess.run(["bpftool", "-j", "link", "list"], check=True,
                                      capture_output=True, text=True).stdout or "[]")
    return ours, {lk["id"] for lk in links if lk.get("prog_id") in ours}


def _read_until(proc: subprocess.Popen[str], stream: str, needle: str,
                timeout: float) -> list[str]:
    sel = selectors.DefaultSelector()
    f = getattr(proc, stream)
    sel.register(f, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.2):
            if proc.poll() is not None:
                break
            continue
        line = f.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen on {stream} within {timeout}s: {lines}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stream_then_clean_exit_leaves_nothing_in_the_kernel(sig: signal.Signals) -> None:
    before_progs, before_links = _our_bpf_ids()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([*KUBEPULSE, "events", "--json", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _read_until(proc, "stderr", "watching TCP connections", timeout=20)
        progs, links = _our_bpf_ids()
        assert progs - before_progs, "the agent's programs should be loaded while it runs"
        assert links - before_links, "and attached through links"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        lines = _read_until(proc, "stdout", f'"dport": {port}', timeout=10)
        record = json.loads(lines[-1])
        assert record["outcome"] == "refused" and record["pid"] == os.getpid()
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        err = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in err
        assert "refused 1" in err, err  # the closing summary
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    progs, links = _our_bpf_ids()
    assert not (progs - before_progs), "programs left loaded after exit"
    assert not (links - before_links), "links left after exit"


def test_without_privileges_one_clear_error() -> None:
    # Root, but with every capability dropped (as in a locked-down container).
    res = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", *KUBEPULSE,
                          "events", "--duration", "1"], check=False, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 77
    assert res.stderr.startswith("kubepulse: error: privileges:"), res.stderr
    assert "CAP_BPF" in res.stderr and "Traceback" not in res.stderr


def test_bad_arguments_are_one_sentence() -> None:
    res = subprocess.run([*KUBEPULSE, "events", "--outcome", "bogus", "--duration", "1"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "'bogus' is not an outcome" in res.stderr and "Traceback" not in res.stderr


def test_help_teaches_with_examples() -> None:
    out = subprocess.run([*KUBEPULSE, "events", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "examples:" in out and "--outcome refused,timeout" in out
