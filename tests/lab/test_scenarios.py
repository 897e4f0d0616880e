"""The scenario runner end to end on a tiny suite: faults, ground truth, agent handling."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from kubepulse.lab import labels, scenarios
from kubepulse.lab.scenarios import Step, Suite

from .conftest import lab_leftovers

pytestmark = pytest.mark.lab

TINY = Suite("tiny", (Step("refused", "shop/api/api-0"),
                      Step("dns_nxdomain", "kube-system/kube-dns", "shop/api")),
             fault_s=1.0, gap_s=0.5, settle_s=0.5, healthy_s=1.0, flush_s=0.5)


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the lab builds network namespaces: run the lab tests as root")
    return tmp_path / "state"


def test_runner_without_an_agent_still_writes_truth_and_scores(
    tmp_path: Path, state: Path
) -> None:
    out = tmp_path / "out"
    report = scenarios.run(TINY, out, agent_cmd="kubepulse-no-such-agent {inventory}",
                           state_dir=state)
    assert report["agent"]["started"] is False and report["agent"]["running_at_end"] is False
    assert "could not start" in report["agent"]["error"]
    truth = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [t["type"] for t in truth] == ["refused", "dns_nxdomain"]
    assert report["overall"] == {"faults": 2, "detected": 0, "recall": 0.0, "alerts": 0,
                                 "true_positives": 0, "false_positives": 0, "precision": None}
    assert report["false_alarms"]["count"] == 0
    assert json.loads((out / "report.json").read_text())["suite"] == "tiny"
    assert lab_leftovers()["netns"] == []


def test_runner_scores_what_a_running_agent_writes(tmp_path: Path, state: Path) -> None:
    """A stand-in agent (a real process) that raises one alert per second about api-0."""
    agent = tmp_path / "agent.py"
    agent.write_text(
        "import json, sys, time\n"
        "from datetime import datetime, timezone\n"
        "inv = json.load(open(sys.argv[1]))\n"
        "assert any(p['name'] == 'api-0' for p in inv['pods'])\n"
        "for i in range(300):\n"
        "    now = datetime.now(timezone.utc).isoformat()\n"
        "    a = {'fingerprint': f'a{i}', 'type': 'connection_refused', 'state': 'firing',\n"
        "         'starts_at': now, 'emitted_at': now, 'labels': {'dst_pod': 'api-0',\n"
        "         'dst_namespace': 'shop'}}\n"
        "    with open(sys.argv[2], 'a') as f: f.write(json.dumps(a) + '\\n')\n"
        "    time.sleep(1)\n"
    )
    out = tmp_path / "out"
    suite = dataclasses.replace(TINY, healthy_s=3.0)  # longer than the 1 s lead tolerance
    report = scenarios.run(suite, out, agent_cmd=f"{sys.executable} {agent} {{inventory}} "
                           "{alerts}", state_dir=state)
    assert report["agent"]["started"] and report["agent"]["running_at_end"]
    row = report["per_type"]["connection_refused"]
    assert (row["faults"], row["detected"]) == (1, 1)
    # It never stops alerting, so it is also wrong outside the fault's window.
    assert row["true_positives"] >= 1 and row["false_positives"] >= 1
    assert report["false_alarms"]["count"] >= 1
    assert lab_leftovers() == {"netns": [], "links": [], "nft_tables": [], "processes": []}


def test_suites_fit_their_budgets() -> None:
    quick, full = scenarios.suite("quick"), scenarios.suite("full")
    assert quick.estimated_seconds() <= 9 * 60
    assert full.healthy_s >= 300
    for s, types in ((quick, scenarios.QUICK_FAULTS), (full, tuple(labels.FAULT_TYPES))):
        for t in types:
            targets = [(st.target, st.source) for st in s.steps if st.fault == t]
            assert len(targets) == 2 and targets[0] != targets[1], t


def test_demo_ctrl_c_leaves_the_machine_clean(tmp_path: Path, state: Path) -> None:
    import signal
    import subprocess

    from kubepulse.lab import procs

    # Python leaves SIGINT ignored if its parent ignored it (a background CI job): restore it.
    boot = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from kubepulse.cli import main; sys.exit(main(sys.argv[1:]))")
    argv = [sys.executable, "-c", boot, "demo", "--rounds", "1",
            "--fault-seconds", "30", "--agent-cmd", "sleep 307", "--out", str(tmp_path),
            "--state-dir", str(state)]
    demo = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=procs.child_env())
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:  # ends when the demo exits; the fault line comes within seconds
        seen.append(line)
        if "refused on shop/api/api-0" in line:
            demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
            break
    out = demo.communicate(timeout=60)[0]
    assert demo.returncode == 0, "".join(seen) + out
    assert "agent running: sleep 307" in "".join(seen)
    # only `kubepulse run` serves the dashboard, and the demo says so instead of a dead URL
    assert "the dashboard:             not served by this agent" in "".join(seen)
    assert "lab down" in out
    left = lab_leftovers()
    assert left == {"netns": [], "links": [], "nft_tables": [], "processes": []}, left
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert "sleep 307" not in ps.stdout  # the agent was stopped too
    truth = (tmp_path / "labels.jsonl").read_text().splitlines()
    assert len(truth) == 1 and '"type":"refused"' in truth[0]  # cut short, still recorded
