"""``kubepulse demo``: from a fresh machine to live alerts in one command.

Brings the lab up, starts the agent, points at its dashboard (the live service map, served on
the agent's listener), injects a rotating series of faults and prints every alert the agent
emits next to the fault that should explain it. Ctrl-C (or the end of the last round) undoes
the fault in force, stops the agent and takes the lab down.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubepulse.errors import KubepulseError
from kubepulse.export.http import DEFAULT_LISTEN, HttpListener
from kubepulse.lab import cluster, faults, labels, procs
from kubepulse.lab.scenarios import DEFAULT_AGENT_CMD, Agent, agent_argv

# The scenario runner's agent, serving its dashboard on the demo's --listen ({listen}).
DEMO_AGENT_CMD = DEFAULT_AGENT_CMD + " --listen {listen}"
DASHBOARD_WAIT_S = 10.0  # the agent opens its listener before it attaches the probes


def dashboard_url(argv: Sequence[str]) -> str | None:
    """The dashboard's URL when ``argv`` is ``kubepulse run`` (its ``--listen``, by default
    127.0.0.1:9810), else None: another agent, or ``--listen ''``."""
    argv = list(argv)
    if argv[1:3] == ["-m", "kubepulse.cli"]:
        args = argv[3:]
    elif argv and Path(argv[0]).name == "kubepulse":
        args = argv[1:]
    else:
        return None
    from kubepulse.cli import build_parser

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ns = build_parser().parse_args(args)
        if ns.command != "run" or not ns.listen:
            return None
        return HttpListener(ns.listen).url + "/"
    except (SystemExit, KubepulseError):  # argv the agent itself will refuse
        return None


def dashboard_status(url: str, wait_s: float = DASHBOARD_WAIT_S) -> tuple[bool, str]:
    """Whether the dashboard's page answers at ``url`` (waiting up to ``wait_s`` for the
    listener), and, when it does not, why, in words for the user."""
    import httpx

    answer: list[httpx.Response] = []
    failure: list[str] = []

    def answered() -> bool:
        try:
            answer.append(httpx.get(url, timeout=2.0))
            return True
        except httpx.HTTPError as exc:
            failure[:] = [str(exc) or type(exc).__name__]
            return False

    if not procs.wait_for(answered, wait_s, interval_s=0.25):
        return False, f"nothing answers at {url} ({failure[0] if failure else 'no reply'})"
    r = answer[-1]
    if r.status_code == 200 and r.headers.get("content-type", "").startswith("text/html"):
        return True, ""
    if r.status_code in (303, 401):
        return True, "it asks for the agent's token (--token or KUBEPULSE_TOKEN)"
    text = r.text.strip().splitlines()
    return False, f"HTTP {r.status_code}: {text[0] if text else 'no page'}"


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


def _announce_dashboard(agent: Agent, running: bool, say: Any) -> str:
    """Print where the dashboard is, prominently; returns the line for "where to look"."""
    url = dashboard_url(agent.argv)
    if url is None:
        return "not served by this agent (`kubepulse run` serves it on its --listen)"
    if not running:
        return f"{url} once the agent runs"
    ok, why = dashboard_status(url, DASHBOARD_WAIT_S)
    if not ok:
        return f"{url} does not serve the page: {why}; see {agent.log}"
    bar = "=" * 78
    say(bar)
    say(f"  the dashboard: {url}")
    say("  open it now: the live service map of the lab; each fault below lights up its edge")
    if why:
        say(f"  ({why})")
    if url.startswith("http://127.0.0.1:"):
        port = url.rstrip("/").rsplit(":", 1)[-1]
        say(f"  from another machine: ssh -L {port}:127.0.0.1:{port} THIS_HOST, then the same "
            "URL")
    say(bar)
    return url


def run(
    *,
    agent_cmd: str,
    out_dir: Path,
    rounds: int,
    fault_s: float,
    gap_s: float,
    listen: str = DEFAULT_LISTEN,
    state_dir: Path = cluster.DEFAULT_STATE_DIR,
    say: Any = print,
) -> int:
    """The demo; ``{listen}`` in ``agent_cmd`` becomes ``listen``, the dashboard's address."""
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
        command = agent_cmd.replace("{listen}", shlex.quote(listen))
        agent = Agent(agent_cmd, agent_argv(command, lab.inventory_path, alerts_path),
                      out_dir / "agent.log")
        running = agent.start()
        if running:
            say(f"agent running: {' '.join(agent.argv)}")
        else:
            last = agent.tail(1)
            say(f"agent NOT running ({agent.error}{': ' + last[0] if last else ''}); see "
                f"{agent.log}. The faults go on, so you can watch them with your own tools.")
        where = _announce_dashboard(agent, running, say)
        say("where to look:")
        say(f"  the dashboard:             {where}")
        say(f"  alerts (printed here too): tail -f {alerts_path}")
        say(f"  ground truth:              {labels_path}")
        say("  the lab:                   kubepulse lab status")
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
