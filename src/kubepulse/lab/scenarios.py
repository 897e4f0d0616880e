"""The scenario runner: bring up the lab, start the agent, inject faults, score the alerts.

The agent is any command (``--agent-cmd``) that reads the inventory and appends alerts as JSON
Lines; ``{inventory}`` and ``{alerts}`` in the command are replaced with the paths. When the
agent cannot start or dies, the run still injects every fault, writes the ground truth and
scores whatever alerts exist, and the report says that the agent was not running.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubepulse.errors import ConfigError
from kubepulse.lab import cluster, faults, labels, procs, scorer, topology
from kubepulse.lab.labels import rfc3339

DEFAULT_AGENT_CMD = ("kubepulse run --inventory {inventory} --alerts-jsonl {alerts} "
                     "--state-dir {state} --quiet")
AGENT_START_CHECK_S = 3.0


@dataclass(frozen=True)
class Step:
    fault: str
    target: str
    source: str | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    steps: tuple[Step, ...]
    fault_s: float  # how long each fault stays on
    gap_s: float  # healthy time between faults
    settle_s: float  # after the agent starts, before anything is measured
    healthy_s: float  # the healthy-only period that false alarms per hour are measured on
    flush_s: float = 15.0  # after the last fault, for late alerts

    def estimated_seconds(self) -> float:
        return (self.settle_s + self.healthy_s + len(self.steps) * (self.fault_s + self.gap_s)
                + self.flush_s)


QUICK_FAULTS = ("refused", "blackhole", "loss", "reset", "dns_nxdomain", "partition",
                "conn_flood")


def _steps(types: tuple[str, ...]) -> tuple[Step, ...]:
    # Round-robin: every type once on its first target, then every type on its second.
    return tuple(
        Step(t, *faults.DEFAULT_TARGETS[t][i]) for i in range(2) for t in types
    )


def suite(name: str, **overrides: float) -> Suite:
    if name == "quick":
        base = Suite("quick", _steps(QUICK_FAULTS), fault_s=20, gap_s=10, settle_s=15,
                     healthy_s=45, flush_s=15)
    elif name == "full":
        base = Suite("full", _steps(labels.FAULT_TYPES), fault_s=30, gap_s=20, settle_s=20,
                     healthy_s=300, flush_s=30)
    else:
        raise ConfigError(f"unknown suite {name!r}; choose quick or full.")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return Suite(**{**asdict(base), "steps": base.steps, **changes})


# --------------------------------------------------------------------------- the agent


@dataclass
class Agent:
    """The agent under test, as a subprocess."""

    command: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    error: str = ""
    returncode: int | None = None
    exited_at: float | None = None
    status: dict[str, Any] = field(default_factory=dict)

    def start(self) -> bool:
        try:
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env=procs.child_env(),
                )
        except OSError as exc:
            self.error = f"could not start {self.argv[0]!r}: {exc.strerror}"
            return False
        procs.wait_for(lambda: not self.running(), AGENT_START_CHECK_S)
        if not self.running():
            self.error = f"exited with code {self.returncode} right after starting"
            return False
        return True

    def running(self) -> bool:
        if self.proc is None:
            return False
        rc = self.proc.poll()
        if rc is not None and self.returncode is None:
            self.returncode = rc
            self.exited_at = time.time()
        return rc is None

    def stop(self) -> None:
        if self.proc is None or not self.running():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.returncode = self.proc.returncode

    def tail(self, lines: int = 5) -> list[str]:
        try:
            return self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return []


def agent_argv(command: str, inventory: Path, alerts: Path, node: str | None = None
               ) -> list[str]:
    """The agent's argv; with ``node``, the agent of that node (``{node}`` in the command, or
    ``--node NODE`` appended), with its own state directory."""
    # Fresh per run (and per node): no alert restored from another.
    state = alerts.parent / (f"agent-state-{node}" if node else "agent-state")
    if node is not None and "{node}" not in command:
        command += " --node {node}"
    if node is not None and "--listen" not in command:
        command += " --listen ''"  # one agent per node: they cannot all have 127.0.0.1:9810
    argv = shlex.split(command.format(inventory=shlex.quote(str(inventory)),
                                      alerts=shlex.quote(str(alerts)),
                                      state=shlex.quote(str(state)),
                                      node=shlex.quote(node or "")))
    if argv and argv[0] == "kubepulse" and shutil.which("kubepulse") is None:
        argv = [sys.executable, "-m", "kubepulse.cli", *argv[1:]]
    return argv


# --------------------------------------------------------------------------- the run


def _wait(stop: threading.Event, seconds: float) -> None:
    """A scheduled pause of the scenario (its timeline), not a synchronisation."""
    if stop.wait(max(0.0, seconds)):
        raise KeyboardInterrupt


def run(
    s: Suite,
    out_dir: Path,
    *,
    agent_cmd: str = DEFAULT_AGENT_CMD,
    cidr: str = topology.DEFAULT_CIDR,
    nodes: int = topology.DEFAULT_NODES,
    state_dir: Path = cluster.DEFAULT_STATE_DIR,
    keep_lab: bool = False,
    per_node: bool = False,
    progress: Any = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Run suite ``s``; returns the report (also written to ``out_dir/report.json``).

    With ``per_node``, one agent per lab node, each scoped with ``--node`` as a DaemonSet runs
    them, each writing ``alerts-<node>.jsonl``; the alerts scored (and ``alerts.jsonl``) are
    their union."""
    stop = stop or threading.Event()
    say = progress or (lambda msg: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_path = out_dir / "labels.jsonl"
    alerts_path = out_dir / "alerts.jsonl"
    labels_path.unlink(missing_ok=True)
    alerts_path.unlink(missing_ok=True)
    lab = cluster.up(cidr, nodes, state_dir, traffic_seconds=s.estimated_seconds() + 600)
    say(f"lab up; inventory {lab.inventory_path}")
    scoped: list[str | None] = [n.name for n in lab.plan.nodes] if per_node else [None]
    agents: list[tuple[str | None, Agent, Path]] = []
    for node in scoped:
        out = out_dir / f"alerts-{node}.jsonl" if node else alerts_path
        out.unlink(missing_ok=True)
        agents.append((node, Agent(agent_cmd, agent_argv(agent_cmd, lab.inventory_path, out,
                                                         node),
                                   out_dir / (f"agent-{node}.log" if node else "agent.log")),
                       out))
    active: faults.ActiveFault | None = None
    healthy: list[tuple[float, float]] = []
    started = time.time()
    try:
        for node, agent, out in agents:
            who = f"agent of {node}" if node else "agent"
            if agent.start():
                say(f"{who} running (pid {agent.proc.pid if agent.proc else '?'}); "
                    f"alerts -> {out}")
            else:
                say(f"{who} NOT running: {agent.error}; injecting faults anyway")
        _wait(stop, s.settle_s)
        if s.healthy_s > 0:
            h0 = time.time()
            say(f"healthy-only period, {s.healthy_s:.0f} s")
            _wait(stop, s.healthy_s)
            healthy.append((h0, time.time()))
        for i, step in enumerate(s.steps, 1):
            say(f"[{i}/{len(s.steps)}] {step.fault} -> {step.target}"
                + (f" from {step.source}" if step.source else ""))
            active = faults.start(lab, step.fault, step.target, step.source,
                                  max_seconds=s.fault_s + 30)
            _wait(stop, s.fault_s)
            active.stop(labels_path)
            active = None
            _wait(stop, s.gap_s)
        _wait(stop, s.flush_s)
    finally:
        if active is not None:
            active.stop(labels_path)
        was_running: dict[str | None, bool] = {}
        for node, agent, _ in agents:
            agent.running()
            was_running[node] = agent.proc is not None and agent.returncode is None
        for _, agent, _ in agents:
            agent.stop()
        if not keep_lab:
            cluster.down(state_dir)
    truth = labels.load(labels_path) if labels_path.exists() else []
    if per_node:  # the union of the nodes' alerts, as one file to re-score
        with open(alerts_path, "w") as union:
            for _, _, out in agents:
                if out.exists():
                    union.write(out.read_text(errors="replace"))
    alerts, problems = scorer.load_alerts(alerts_path)
    inv = None
    report_inv = out_dir / "inventory.json"
    if lab.inventory_path.exists():
        shutil.copyfile(lab.inventory_path, report_inv)
    if report_inv.exists():
        from kubepulse.enrich import inventory

        inv = inventory.load(report_inv)
    result = scorer.score(truth, alerts, healthy, inv)
    report = {
        "suite": s.name,
        "started": rfc3339(started),
        "ended": rfc3339(time.time()),
        "timeline": {"fault_s": s.fault_s, "gap_s": s.gap_s, "settle_s": s.settle_s,
                     "healthy_s": s.healthy_s, "flush_s": s.flush_s},
        "agent": _agent_report(agent_cmd, agents, was_running),
        "files": {"labels": str(labels_path), "alerts": str(alerts_path),
                  "inventory": str(report_inv)},
        "alert_problems": problems[:20],
        "healthy_windows": [{"start": rfc3339(a), "end": rfc3339(b)} for a, b in healthy],
        **result,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _agent_report(command: str, agents: list[tuple[str | None, Agent, Path]],
                  was_running: dict[str | None, bool]) -> dict[str, Any]:
    """The report's ``agent``: the one agent, or with one per node the first that failed
    (``started`` and ``running_at_end`` only when every one did), each under ``per_node``."""
    rows = []
    for node, agent, out in agents:
        rows.append({
            "command": command,
            "node": node,
            "argv": agent.argv,
            "started": agent.proc is not None and not agent.error,
            "running_at_end": was_running.get(node, False),
            "error": agent.error,
            "returncode": agent.returncode,
            "exited_at": rfc3339(agent.exited_at) if agent.exited_at else None,
            "log": str(agent.log),
            "log_tail": agent.tail(),
            "alerts": str(out),
        })
    if len(rows) == 1 and rows[0]["node"] is None:
        return rows[0]
    worst = next((r for r in rows if not (r["started"] and r["running_at_end"])), rows[0])
    return {**worst, "started": all(r["started"] for r in rows),
            "running_at_end": all(r["running_at_end"] for r in rows), "per_node": rows}


def render(report: dict[str, Any]) -> Any:
    """A rich renderable summarising a report."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def fmt(v: Any, pct: bool = False) -> str:
        if v is None:
            return "-"
        return f"{v:.0%}" if pct else (f"{v:.1f}" if isinstance(v, float) else str(v))

    table = Table(title=f"kubepulse scenarios: {report['suite']} suite")
    for col in ("alert type", "faults", "detected", "recall", "alerts", "TP", "FP",
                "tolerated", "precision", "TTD p50 s", "TTD p95 s"):
        table.add_column(col, justify="left" if col == "alert type" else "right")
    for t, row in report["per_type"].items():
        table.add_row(t, str(row["faults"]), str(row["detected"]), fmt(row["recall"], True),
                      str(row["alerts"]), str(row["true_positives"]),
                      str(row["false_positives"]), str(row["tolerated"]),
                      fmt(row["precision"], True), fmt(row["ttd_p50_s"]),
                      fmt(row["ttd_p95_s"]))
    o, fa = report["overall"], report["false_alarms"]
    lines = [
        Text(f"overall: {o['detected']}/{o['faults']} faults detected (recall "
             f"{fmt(o['recall'], True)}), precision {fmt(o['precision'], True)}; false alarms: "
             f"{fa['count']} in {fa['healthy_seconds']:.0f} s healthy "
             f"({fmt(fa['per_hour'])}/h)"),
    ]
    agent = report["agent"]
    if not agent["running_at_end"]:
        why = agent["error"] or f"exited with code {agent['returncode']}"
        last = (agent.get("log_tail") or [""])[-1]
        lines.append(Text(f"the agent was NOT running ({why}); scores count only the alerts "
                          f"it wrote. Its log: {agent['log']}" + (f" ends: {last}" if last else ""),
                          style="bold red"))
    lines.append(Text(f"ground truth {report['files']['labels']}; alerts "
                      f"{report['files']['alerts']}"))
    return Group(table, *lines)
