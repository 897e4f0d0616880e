"""``kubepulse demo``: from a fresh machine to live alerts in one command.

Brings the lab up, starts the agent, injects a rotating series of faults and prints every
alert the agent emits next to the fault that should explain it. Ctrl-C (or the end of the
last round) undoes the fault in force, stops the agent and takes the lab down.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from kubepulse.lab import cluster, faults, labels
from kubepulse.lab.scenarios import Agent, agent_argv


def _follow(path: Path, stop: threading.Event, say: Any) -> None:
    """Print each alert line the agent appends, until ``stop``."""
    pos = 0
    while not stop.wait(0.5):
        try:
            with open(path) as f:
                f.seek(pos)
                for line in f:
                    if not line.endswith("\n"):
                        break
                    pos += len(line.encode())
                    try:
                        a = json.loads(line)
                        lb = a.get("labels") or {}
                        src = lb.get("src_workload") or lb.get("src_pod") or "?"
                        dst = lb.get("dst_service") or lb.get("dst_workload") or "?"
                        say(f"  ALERT {a.get('state', '?'):8} {a.get('type', '?'):22} "
                            f"{src} -> {dst}: {a.get('summary', '')}")
                    except (json.JSONDecodeError, AttributeError):
                        say(f"  ALERT (unparsed) {line.strip()[:120]}")
        except FileNotFoundError:
            continue


def run(
    *,
    agent_cmd: str,
    out_dir: Path,
    rounds: int,
    fault_s: float,
    gap_s: float,
    state_dir: Path = cluster.DEFAULT_STATE_DIR,
    say: Any = print,
) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    alerts_path = out_dir / "alerts.jsonl"
    labels_path = out_dir / "labels.jsonl"
    stop = threading.Event()
    active: faults.ActiveFault | None = None
    agent: Agent | None = None
    follower: threading.Thread | None = None
    try:
        lab = cluster.up(state_dir=state_dir)
        say(f"lab up: {len(lab.plan.pods)} pods on {len(lab.plan.nodes)} nodes "
            f"(CIDR {lab.plan.cidr}); inventory {lab.inventory_path}")
        agent = Agent(agent_cmd, agent_argv(agent_cmd, lab.inventory_path, alerts_path),
                      out_dir / "agent.log")
        if agent.start():
            say(f"agent running: {' '.join(agent.argv)}")
        else:
            say(f"agent NOT running ({agent.error}); see {agent.log}. The faults go on, "
                "so you can watch them with your own tools.")
        say("where to look:")
        say(f"  alerts (printed here too): tail -f {alerts_path}")
        say(f"  ground truth:              {labels_path}")
        say("  the lab:                   kubepulse lab status")
        say("  the dashboard:             not built yet")
        say("Ctrl-C stops the demo and leaves the machine clean.")
        follower = threading.Thread(target=_follow, args=(alerts_path, stop, say), daemon=True)
        follower.start()
        for r in range(rounds):
            for fault in labels.FAULT_TYPES:
                target, source = faults.DEFAULT_TARGETS[fault][r % 2]
                expected = labels.FAULT_ALERTS[fault][0]
                active = faults.start(lab, fault, target, source, max_seconds=fault_s + 30)
                say(f"[round {r + 1}/{rounds}] {fault} on {target}"
                    + (f" from {source}" if source else "")
                    + f" for {fault_s:.0f} s: {faults.DESCRIPTIONS[fault]} "
                    f"(expect a {expected} alert)")
                time.sleep(fault_s)
                active.stop(labels_path)
                active = None
                time.sleep(gap_s)
    except KeyboardInterrupt:
        say("stopping...")
    finally:
        stop.set()
        if active is not None:
            active.stop(labels_path)
        if agent is not None:
            agent.stop()
        removed = cluster.down(state_dir)
        say(f"lab down: removed {removed['netns']} namespaces, {removed['processes']} "
            f"processes; alerts and ground truth kept in {out_dir}")
    return 0
