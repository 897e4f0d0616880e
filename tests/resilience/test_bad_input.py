"""Scenario 6: bad config, bad inventory, bad command-line arguments.

Each mistake a user makes must end ``kubepulse run`` with a non-zero exit and one sentence
that names the file (or the option), the key and the fix, and never a traceback. Then the
parsers are fuzzed: whatever YAML/JSON-shaped data they get, they either accept it or raise
ConfigError, nothing else.

Already covered elsewhere (not repeated): a wrong type in a detector section and a missing
inventory file (tests/live/test_agent.py), a bad --outcome for `kubepulse events`
(tests/live/test_events_cli.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubepulse.detect.config import parse_config
from kubepulse.enrich.inventory import parse as parse_inventory
from kubepulse.errors import ConfigError

from .agentproc import KUBEPULSE

POD = {"name": "a-0", "namespace": "shop", "workload": "a", "ip": "10.1.0.5"}


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KUBEPULSE, "run", "--state-dir", str(tmp / "state"),
                           "--listen", "", "--duration", "1", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def _one_sentence(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    # argparse prints its usage first; our own errors are the whole of stderr.
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, res.stderr
    return errors[0]


# (file name, content, pieces the sentence must hold). The path of the file is always checked.
CONFIGS: list[tuple[str, str, list[str]]] = [
    ("wrong-type.yaml", "agent:\n  tick_seconds: fast\n",
     ["agent.tick_seconds", "should be a valid number"]),
    ("unknown-key.yaml", "detectors:\n  connection_refused:\n    min_refusd: 3\n",
     ["detectors.connection_refused.min_refusd", "unknown key",
      "check the spelling against deploy/config/kubepulse.yaml"]),
    ("out-of-range.yaml", "agent:\n  ring_buffer_kib: 1000\n",
     ["agent", "ring_buffer_kib 1000 is not a power of two"]),
    ("bad-yaml.yaml", "agent:\n  tick_seconds: [1\n", ["not valid YAML at line"]),
    ("list.yaml", "- agent\n", ["the top level must be a mapping"]),
    ("unknown-alert.yaml", "alerts:\n  inhibit:\n    - source: nope\n      targets: []\n",
     ["alerts.inhibit.0", "unknown alert type 'nope'"]),
]


@pytest.mark.parametrize("name,content,pieces", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_bad_config(tmp_path: Path, name: str, content: str, pieces: list[str]) -> None:
    path = tmp_path / name
    path.write_text(content)
    res = _run(tmp_path, "--config", str(path))
    line = _one_sentence(res)
    assert res.returncode == 2
    for piece in [str(path), *pieces]:
        assert piece in line, (piece, line)


def test_missing_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    line = _one_sentence(_run(tmp_path, "--config", str(path)))
    assert str(path) in line and "No such file or directory" in line


def test_missing_config_says_what_to_do(tmp_path: Path) -> None:
    line = _one_sentence(_run(tmp_path, "--config", str(tmp_path / "nope.yaml")))
    assert "deploy/config/kubepulse.yaml" in line or "--config" in line


INVENTORIES: list[tuple[str, Any, list[str]]] = [
    ("duplicate-ip.json", {"pods": [POD, {**POD, "name": "a-1"}]},
     ["pods[1].ip", "duplicate pod IP 10.1.0.5", "also pods[0] shop/a-0",
      "give each pod its own IP"]),
    ("wrong-type.json", {"pods": [{**POD, "ip": "ten.one"}]},
     ["pods[0].ip", "'ten.one' is not an IP address", "fix that key", "docs/inventory.md"]),
    ("unknown-key.json", {"pods": [{**POD, "podIP": "10.1.0.6"}]},
     ["pods[0].podIP", "Extra inputs are not permitted", "fix that key"]),
    ("version.json", {"version": 9}, ["version: 9 is not supported"]),
    ("bad-json.json", "{\"pods\": [", ["line 1 column", "not valid JSON", "fix the syntax"]),
    ("unknown-node.json", {"nodes": [{"name": "n1"}], "pods": [{**POD, "node": "n2"}]},
     ["pods[0].node", "'n2' is not one of the nodes", "add it to 'nodes' or fix the name"]),
]


@pytest.mark.parametrize("name,content,pieces", INVENTORIES, ids=[c[0] for c in INVENTORIES])
def test_bad_inventory(tmp_path: Path, name: str, content: Any, pieces: list[str]) -> None:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    res = _run(tmp_path, "--inventory", str(path))
    line = _one_sentence(res)
    assert res.returncode == 2
    for piece in [str(path), *pieces]:
        assert piece in line, (piece, line)


def test_node_not_in_inventory(tmp_path: Path) -> None:
    path = tmp_path / "inv.json"
    path.write_text(json.dumps({"nodes": [{"name": "n1"}], "pods": [{**POD, "node": "n1"}]}))
    res = _run(tmp_path, "--inventory", str(path), "--node", "n9")
    line = _one_sentence(res)
    assert res.returncode == 2
    assert "--node 'n9'" in line and str(path) in line and "choose one of: n1" in line


ARGS: list[tuple[list[str], list[str]]] = [
    (["--duration", "soon"], ["argument --duration", "invalid float value: 'soon'"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
    (["--listen", "nowhere"], ["--listen 'nowhere'", "expected HOST:PORT, e.g. 127.0.0.1:9810"]),
]


@pytest.mark.parametrize("args,pieces", ARGS, ids=["duration", "unknown", "listen"])
def test_bad_arguments(tmp_path: Path, args: list[str], pieces: list[str]) -> None:
    res = _run(tmp_path, *args)
    line = _one_sentence(res)
    assert res.returncode == 2
    for piece in pieces:
        assert piece in line, (piece, line)


def test_listen_port_in_use(tmp_path: Path, bpf: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([*KUBEPULSE, "run", "--state-dir", str(tmp_path / "state"),
                              "--listen", f"127.0.0.1:{port}", "--duration", "1"],
                             capture_output=True, text=True, timeout=60, check=False)
    line = _one_sentence(res)
    assert res.returncode == 2
    assert f"--listen 127.0.0.1:{port}: cannot bind" in line and "choose a free port" in line


def test_state_dir_not_writable(tmp_path: Path, bpf: None) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = subprocess.run([*KUBEPULSE, "run", "--state-dir", str(blocker / "state"),
                          "--listen", "", "--duration", "1"],
                         capture_output=True, text=True, timeout=60, check=False)
    line = _one_sentence(res)
    assert res.returncode == 2
    assert f"--state-dir {blocker / 'state'}: cannot write there" in line
    assert "choose a writable directory" in line


def test_alerts_jsonl_is_a_directory(tmp_path: Path, bpf: None) -> None:
    # (A missing parent directory is not a mistake: the sink creates it.)
    res = _run(tmp_path, "--alerts-jsonl", str(tmp_path))
    line = _one_sentence(res)
    assert res.returncode == 2
    assert f"--alerts-jsonl {tmp_path}: Is a directory" in line


# -- the parsers, fuzzed --------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=12))
keys = st.sampled_from(["agent", "tick_seconds", "ring_buffer_kib", "detectors",
                        "connection_refused", "min_refused", "alerts", "inhibit", "source",
                        "targets", "webhook", "queue_size", "metrics", "latency_buckets",
                        "pods", "services", "nodes", "name", "namespace", "ip", "endpoints",
                        "ports", "port", "version", "x"]) | st.text(max_size=8)
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(keys, inner, max_size=5), max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(trees)
def test_config_parser_only_raises_config_error(data: object) -> None:
    try:
        parse_config(data, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml"), str(exc)


@settings(max_examples=400, deadline=None)
@given(trees)
def test_inventory_parser_only_raises_config_error(data: object) -> None:
    try:
        parse_inventory(data, "fuzz.json")
    except ConfigError as exc:
        assert str(exc).startswith("inventory fuzz.json"), str(exc)
