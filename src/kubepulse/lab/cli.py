"""The ``lab``, ``scenarios`` and ``demo`` commands; ``register(subparsers)`` adds them."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubepulse.lab import cluster, labels, scenarios, topology

_RAW = argparse.RawDescriptionHelpFormatter

LAB_EPILOG = """\
The lab is a small Kubernetes data plane made of network namespaces: 2 nodes (each a netns
holding a bridge), a router netns between them, and pods (netns on their node's bridge) running
nginx, dnsmasq (kube-dns) and switchable Python servers, with steady client traffic. Nothing in
it can reach an outside network; everything it creates is named kpl-* / kubepulse_lab*.

examples:
  sudo kubepulse lab up                       build it; prints the inventory path
  sudo kubepulse lab status                   pods, servers, faults in force
  sudo kubepulse lab fault refused --target shop/api/api-0 --duration 30
  sudo kubepulse lab down                     remove everything it made (also after a crash)
"""

FAULT_EPILOG = """\
fault types (each appends one ground-truth line to the labels file when it ends):
{types}

targets and sources: NS/WORKLOAD (every pod of it), NS/WORKLOAD/POD, or node:NAME.
Without --target, the fault's first default target is used.

examples:
  sudo kubepulse lab fault refused --target shop/api/api-0 --duration 30
  sudo kubepulse lab fault loss --target shop/api --source shop/frontend --percent 20
  sudo kubepulse lab fault dns_nxdomain --source shop/api --duration 20
  sudo kubepulse lab fault partition --target node:node2 --source node:node1
  sudo kubepulse lab fault clear              undo any fault left in force
"""

SCEN_EPILOG = """\
The runner brings up the lab, starts the agent (--agent-cmd, with {inventory} and {alerts}
replaced by paths), lets traffic settle, measures a healthy-only period, injects each fault on
two different targets with healthy gaps, then scores the agent's alerts against the ground
truth: per alert type precision, recall and time to detect (p50/p95), and false alarms per
hour. If the agent does not start, the faults still run and the report says so.

suites:
  quick   7 fault types x 2 targets, 20 s each, 45 s healthy-only (about 8 minutes; for CI)
  full    all 13 fault types x 2 targets, 30 s each, 300 s healthy-only (about 25 minutes)

examples:
  sudo kubepulse scenarios run                              the quick suite
  sudo kubepulse scenarios run --per-node                   one agent per node (--node), as CI
  sudo kubepulse scenarios run --suite full --report full.json
  sudo kubepulse scenarios run --agent-cmd 'my-agent --inv {inventory} --out {alerts}'
  kubepulse scenarios score --labels labels.jsonl --alerts alerts.jsonl --inventory inv.json
"""

DEMO_EPILOG = """\
One command from a fresh machine to live alerts: it builds the lab, starts the agent, prints
the address of the agent's dashboard (the live service map, http://127.0.0.1:9810/ by
default), injects every fault type in turn (printing what it does and which alert to expect),
and prints each alert the agent raises. Ctrl-C stops it and leaves the machine clean.

examples:
  sudo kubepulse demo
  sudo kubepulse demo --rounds 1 --fault-seconds 15
  sudo kubepulse demo --listen 127.0.0.1:9811     the dashboard on another port
"""


def _state(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, default=cluster.DEFAULT_STATE_DIR,
                   help="where the lab keeps its state (default: %(default)s)")


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser(
        "lab", help="a lab cluster of network-namespace pods, with fault injection",
        description="Build, inspect and break a lab cluster of network-namespace pods.",
        epilog=LAB_EPILOG, formatter_class=_RAW)
    lsub = lab.add_subparsers(dest="lab_command", metavar="ACTION")
    lsub.required = True

    p = lsub.add_parser("up", help="build the lab (safe to run twice)", epilog=LAB_EPILOG,
                        formatter_class=_RAW,
                        description="Build the lab and write its inventory. Refuses a CIDR "
                                    "that overlaps a route of this host.")
    p.add_argument("--cidr", default=topology.DEFAULT_CIDR,
                   help="private IPv4 range for the lab, /16 to /22 (default: %(default)s)")
    p.add_argument("--nodes", type=int, default=topology.DEFAULT_NODES,
                   help="number of nodes (default: %(default)s)")
    p.add_argument("--traffic-seconds", type=float, default=cluster.DEFAULT_TRAFFIC_SECONDS,
                   help="background clients stop by themselves after this (default: 4 h)")
    _state(p)
    p.set_defaults(func=_lab_up)

    p = lsub.add_parser("down", help="remove everything the lab made", epilog=LAB_EPILOG,
                        formatter_class=_RAW,
                        description="Remove the lab's namespaces, links, nftables tables and "
                                    "processes, also what a crashed run left behind.")
    _state(p)
    p.set_defaults(func=_lab_down)

    p = lsub.add_parser("status", help="show pods, servers and faults", epilog=LAB_EPILOG,
                        formatter_class=_RAW, description="Show the lab's state.")
    p.add_argument("--json", action="store_true", help="print JSON")
    _state(p)
    p.set_defaults(func=_lab_status)

    types = "\n".join(
        f"  {t:16} {_desc(t)} (expect {labels.FAULT_ALERTS[t][0]})" for t in labels.FAULT_TYPES
    )
    p = lsub.add_parser("fault", help="inject one fault for a while",
                        epilog=FAULT_EPILOG.format(types=types), formatter_class=_RAW,
                        description="Inject a real fault into the lab, hold it for --duration "
                                    "seconds (Ctrl-C ends it early), undo it, and record it.")
    p.add_argument("type", choices=(*labels.FAULT_TYPES, "clear"), metavar="TYPE",
                   help="a fault type below, or 'clear' to undo faults left in force")
    p.add_argument("--target", help="what breaks: NS/WORKLOAD[/POD] or node:NAME")
    p.add_argument("--source", help="whose traffic is affected (default: depends on the fault)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (default: 30)")
    p.add_argument("--percent", type=int, default=30, help="loss: percent dropped (default 30)")
    p.add_argument("--delay-ms", type=int, default=1000, help="dns_latency: delay (default 1000)")
    p.add_argument("--rate", type=float, default=300.0,
                   help="conn_flood: new connections per second (default 300)")
    p.add_argument("--labels", type=Path,
                   help="ground-truth JSONL to append to (default: STATE_DIR/labels.jsonl)")
    _state(p)
    p.set_defaults(func=_lab_fault)

    scen = subparsers.add_parser(
        "scenarios", help="inject labelled faults and score the agent's alerts",
        description="Run scenario suites against the agent and score it.",
        epilog=SCEN_EPILOG, formatter_class=_RAW)
    ssub = scen.add_subparsers(dest="scenarios_command", metavar="ACTION")
    ssub.required = True
    p = ssub.add_parser("run", help="run a suite", epilog=SCEN_EPILOG, formatter_class=_RAW,
                        description="Run a scenario suite and score the agent.")
    p.add_argument("--suite", choices=("quick", "full"), default="quick")
    p.add_argument("--report", type=Path, help="also write the JSON report here")
    p.add_argument("--results", metavar="NAME",
                   help="also write the scored table to results/NAME.json (with commit, date, "
                        "machine, command), the file docs/detection.md is rendered from")
    p.add_argument("--out", type=Path,
                   help="directory for labels, alerts, agent log and report "
                        "(default: artifacts/scenarios/SUITE-TIME)")
    p.add_argument("--agent-cmd", default=scenarios.DEFAULT_AGENT_CMD,
                   help="the agent to test; {inventory}, {alerts} and {state} are filled in "
                        "(default: %(default)s)")
    p.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    p.add_argument("--per-node", action="store_true",
                   help="one agent per lab node, each with --node NODE (as a DaemonSet runs "
                        "them); the alerts scored are their union")
    p.add_argument("--fault-seconds", type=float, help="override the suite's fault length")
    p.add_argument("--gap-seconds", type=float, help="override the healthy gap between faults")
    p.add_argument("--healthy-seconds", type=float, help="override the healthy-only period")
    p.add_argument("--cidr", default=topology.DEFAULT_CIDR)
    _state(p)
    p.set_defaults(func=_scenarios_run)

    p = ssub.add_parser("score", help="score existing labels and alerts files",
                        epilog=SCEN_EPILOG, formatter_class=_RAW,
                        description="Score an alerts JSONL against a ground-truth JSONL.")
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--alerts", type=Path, required=True)
    p.add_argument("--inventory", type=Path, help="to resolve pods to workloads and nodes")
    p.add_argument("--healthy", action="append", default=[], metavar="START,END",
                   help="a healthy-only window for false alarms per hour (repeatable)")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.set_defaults(func=_scenarios_score)

    p = subparsers.add_parser("demo", help="the lab, the agent and rotating faults, live",
                              description="A live demo of kubepulse on a lab cluster.",
                              epilog=DEMO_EPILOG, formatter_class=_RAW)
    from kubepulse.export.http import DEFAULT_LISTEN
    from kubepulse.lab.demo import DEMO_AGENT_CMD

    p.add_argument("--agent-cmd", default=DEMO_AGENT_CMD,
                   help="the agent; {inventory}, {alerts}, {state} and {listen} are filled in "
                        "(default: %(default)s)")
    p.add_argument("--listen", metavar="ADDR", default=DEFAULT_LISTEN,
                   help="where the agent serves its dashboard (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all faults (default 3)")
    p.add_argument("--fault-seconds", type=float, default=20.0)
    p.add_argument("--gap-seconds", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=Path("/var/tmp/kubepulse-demo"),
                   help="where alerts and ground truth are kept (default: %(default)s)")
    _state(p)
    p.set_defaults(func=_demo)


def _desc(t: str) -> str:
    from kubepulse.lab.faults import DESCRIPTIONS

    return DESCRIPTIONS[t]


def _console() -> Any:
    from rich.console import Console

    return Console()


def _lab_up(args: argparse.Namespace) -> int:
    lab = cluster.up(args.cidr, args.nodes, args.state_dir, args.traffic_seconds)
    print(f"lab up: {len(lab.plan.pods)} pods on {len(lab.plan.nodes)} nodes, "
          f"CIDR {lab.plan.cidr}, host reaches it via {topology.HOST_LINK} ({lab.plan.host_ip})")
    print(f"inventory: {lab.inventory_path}")
    return 0


def _lab_down(args: argparse.Namespace) -> int:
    removed = cluster.down(args.state_dir)
    print("lab down: removed " + ", ".join(f"{v} {k}" for k, v in removed.items()))
    return 0


def _lab_status(args: argparse.Namespace) -> int:
    st = cluster.status(args.state_dir)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0 if st["up"] else 1
    if "pods" not in st:
        print("lab: down" + (" (leftovers found: run `kubepulse lab down`)"
                             if st.get("leftovers") else ""))
        return 1
    from rich.table import Table

    table = Table(title=f"kubepulse lab ({st['cidr']}, up since {st['created_at']})")
    for col in ("pod", "node", "ip", "server", "serving", "mode", "faults"):
        table.add_column(col)
    for p in st["pods"]:
        serving = "-" if p["serving"] is None else ("yes" if p["serving"] else "NO")
        table.add_row(p["pod"], p["node"], p["ip"], f"{p['server']}:{p['port']}"
                      if p["port"] else p["server"], serving, p["mode"] or "-",
                      ", ".join(p["fault_tables"]) or "-")
    con = _console()
    con.print(table)
    dead = [n for n, ok in st["processes"].items() if not ok]
    con.print(f"inventory: {st['inventory']}")
    if st["netns_missing"] or dead:
        con.print(f"[red]unhealthy: missing netns {st['netns_missing']}, dead {dead}[/red]")
    return 0 if st["up"] else 1


def _lab_fault(args: argparse.Namespace) -> int:
    from kubepulse.lab import faults

    lab = cluster.Lab.load(args.state_dir)
    if args.type == "clear":
        print(f"undid {faults.clear(lab)} fault(s)")
        return 0
    active = faults.start(lab, args.type, args.target, args.source, percent=args.percent,
                          delay_ms=args.delay_ms, rate=args.rate,
                          max_seconds=args.duration + 10)
    print(f"{args.type} on {active.target.selector}"
          + (f" from {active.source.selector}" if not active.source.selector.is_any() else "")
          + f" for {args.duration:.0f} s (Ctrl-C ends it early)")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        label = active.stop(args.labels)
        signal.signal(signal.SIGTERM, previous)
    print(f"undone; ground truth appended to {args.labels or lab.labels_path}: "
          f"{label.model_dump_json(exclude_none=True)}")
    return 0


def _scenarios_run(args: argparse.Namespace) -> int:
    from kubepulse.lab import scenarios

    s = scenarios.suite(args.suite, fault_s=args.fault_seconds, gap_s=args.gap_seconds,
                        healthy_s=args.healthy_seconds)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("artifacts") / "scenarios" / f"{s.name}-{stamp}"
    con = _console()
    con.print(f"suite {s.name}: {len(s.steps)} faults, about "
              f"{s.estimated_seconds() / 60:.0f} minutes; output in {out}")
    t0 = time.monotonic()
    report = scenarios.run(
        s, out, agent_cmd=args.agent_cmd, cidr=args.cidr, state_dir=args.state_dir,
        keep_lab=args.keep_lab, per_node=args.per_node,
        progress=lambda msg: con.print(f"[{time.monotonic() - t0:6.0f}s] {msg}", markup=False),
    )
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    con.print(scenarios.render(report))
    con.print(f"report: {out / 'report.json'}" + (f" and {args.report}" if args.report else ""))
    if args.results:
        from kubepulse import results

        keep = ("suite", "started", "ended", "timeline", "config", "per_type", "overall",
                "false_alarms", "faults", "unmatched_alerts")
        data = {k: report[k] for k in keep if k in report}
        data["agent"] = {k: report["agent"].get(k)
                         for k in ("command", "started", "running_at_end", "error")}
        con.print(f"result: {results.write_result(args.results, data, results.command_line())}")
    return 0


def _scenarios_score(args: argparse.Namespace) -> int:
    from kubepulse.enrich import inventory
    from kubepulse.lab import scenarios, scorer

    truth = labels.load(args.labels)
    alerts, problems = scorer.load_alerts(args.alerts)
    inv = inventory.load(args.inventory) if args.inventory else None
    result = scorer.score(truth, alerts, scorer.load_healthy(args.healthy), inv)
    report = {"suite": "(scored from files)", "files": {"labels": str(args.labels),
              "alerts": str(args.alerts)}, "alert_problems": problems[:20],
              "agent": {"running_at_end": True, "error": "", "log": "-"}, **result}
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    _console().print(scenarios.render(report))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from kubepulse.lab import demo

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C does
    con = _console()
    return demo.run(agent_cmd=args.agent_cmd, out_dir=args.out, rounds=args.rounds,
                    fault_s=args.fault_seconds, gap_s=args.gap_seconds, listen=args.listen,
                    state_dir=args.state_dir, say=lambda m: con.print(m, highlight=False, markup=False))
