"""`kubepulse run` as a process: real kernel, real refused connects, real signals, a restart.

On a plain host (no inventory) flows are named by process and address; the alert for our
closed port must fire within seconds, survive a SIGTERM in SQLite, keep its fingerprint and
start time across a restart without firing again, and resolve once.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.live.test_events_cli import _read_until

pytestmark = pytest.mark.live

KUBEPULSE = [sys.executable, "-m", "kubepulse.cli"]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _refuse(port: int, n: int) -> None:
    for _ in range(n):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            pass


def _lines(path: Path, port: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        a = json.loads(line)
        if a["type"] == "connection_refused" and a["labels"].get("dst_port") == str(port):
            out.append(a)
    return out


def _agent(tmp: Path, alerts: Path, config: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*KUBEPULSE, "run", "--alerts-jsonl", str(alerts), "--state-dir",
                             str(tmp / "state"), "--config", str(config), "--quiet",
                             "--listen", ""],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _read_until(proc, "stderr", "agent running", timeout=30)
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    err = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in err
    return err


def test_refused_fires_persists_across_restart_and_resolves_once(tmp_path: Path) -> None:
    config = tmp_path / "kubepulse.yaml"
    config.write_text("alerts:\n  resolve_after_seconds: 3\n")
    alerts = tmp_path / "alerts.jsonl"
    port = _closed_port()

    proc = _agent(tmp_path, alerts, config)
    try:
        t0 = time.time()
        deadline = t0 + 15
        while not _lines(alerts, port) and time.time() < deadline:
            _refuse(port, 5)  # bounded: at most ~15 s of 5 connects to our own closed port
            time.sleep(0.2)  # pacing the load, not synchronisation: the loop polls the file
        fired = _lines(alerts, port)
        assert fired, "no connection_refused alert for our closed port"
        assert fired[0]["state"] == "firing"
        assert time.time() - t0 < 10
        assert "nothing listening" in fired[0]["cause"]
        fp, starts_at = fired[0]["fingerprint"], fired[0]["starts_at"]
        _refuse(port, 5)  # still failing when we stop it
    finally:
        err = _stop(proc) if proc.poll() is None else ""
    assert "alert changes" in err
    db = sqlite3.connect(tmp_path / "state" / "alerts.db")
    open_fps = [r[0] for r in db.execute("SELECT fingerprint FROM open_alerts")]
    db.close()
    assert fp in open_fps, "the firing alert was not saved at SIGTERM"

    # Restart: the alert is still open; with no more refused connects it resolves once,
    # keeping its fingerprint and start time, and never fires a second time.
    proc = _agent(tmp_path, alerts, config)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not any(
                a["state"] == "resolved" for a in _lines(alerts, port)):
            time.sleep(0.2)  # polling the agent's output file
    finally:
        _stop(proc)
    states = [(a["fingerprint"], a["state"]) for a in _lines(alerts, port)]
    assert states == [(fp, "firing"), (fp, "resolved")], states
    assert _lines(alerts, port)[-1]["starts_at"] == starts_at


def test_bad_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("detectors:\n  connection_refused:\n    min_refused: lots\n")
    res = subprocess.run([*KUBEPULSE, "run", "--config", str(config), "--state-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 2
    assert str(config) in res.stderr and "min_refused" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_inventory_is_one_sentence(tmp_path: Path) -> None:
    res = subprocess.run([*KUBEPULSE, "run", "--inventory", str(tmp_path / "nope.json"),
                          "--state-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 2
    assert "nope.json does not exist" in res.stderr and "Traceback" not in res.stderr
