"""`kubepulse run`: the node agent."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from kubepulse.errors import ConfigError

log = logging.getLogger("kubepulse.agent")

EPILOG = """\
examples:
  sudo kubepulse run                                    a plain host: flows named by process
  sudo kubepulse run --inventory /run/kubepulse-lab/inventory.json --alerts-jsonl alerts.jsonl
  sudo kubepulse run --inventory inv.json --node node1  only node1's pods (one agent per node)
  sudo kubepulse run --config my.yaml --webhook http://127.0.0.1:9000/hook
  sudo kubepulse run --alertmanager http://am-0:9093 --alertmanager http://am-1:9093

The config file (YAML) holds every threshold and window; deploy/config/kubepulse.yaml lists
them all with their defaults. Alerts go to stdout, to --alerts-jsonl (one line per state
change, docs/alerts.md), to --webhook, and to SQLite in --state-dir, so a restart neither
re-fires nor forgets open alerts. SIGTERM or Ctrl-C: probes detached, state saved, files flushed.
"""


def _run(args: argparse.Namespace) -> int:
    from kubepulse.agent.loop import Agent
    from kubepulse.alerts import ConsoleSink, JsonlSink, Sinks, SqliteStore, WebhookSink
    from kubepulse.detect import load_config
    from kubepulse.enrich import inventory as inventory_mod
    from kubepulse.enrich.resolver import Resolver
    from kubepulse.kernel.doctor import require_ready

    config = load_config(args.config)
    inv = inventory_mod.load(args.inventory) if args.inventory else None
    if args.node and inv is not None and inv.node(args.node) is None and not any(
            p.node == args.node for p in inv.pods):
        raise ConfigError(f"--node {args.node!r}: the inventory {args.inventory} has no such "
                          f"node; choose one of: {', '.join(n.name for n in inv.nodes)}")
    require_ready()
    state_dir = Path(args.state_dir)
    try:
        store = SqliteStore(state_dir / "alerts.db")
    except OSError as exc:
        raise ConfigError(f"--state-dir {state_dir}: cannot write there ({exc}); choose a "
                          "writable directory") from None
    sinks: list[object] = [store]
    if args.alerts_jsonl:
        try:
            sinks.append(JsonlSink(args.alerts_jsonl))
        except OSError as exc:
            raise ConfigError(f"--alerts-jsonl {args.alerts_jsonl}: {exc.strerror}") from None
    if not args.quiet:
        sinks.append(ConsoleSink(sys.stdout))
    if args.webhook:
        sinks.append(WebhookSink(args.webhook, config.alerts.webhook))
    from kubepulse.alerts.alertmanager import AlertmanagerSink
    from kubepulse.export import AgentMetrics, HttpListener, serve_agent_routes

    metrics, listener = AgentMetrics(config.metrics), None
    if args.listen:
        listener = HttpListener(args.listen)
        serve_agent_routes(listener, metrics)
        listener.start()  # before attaching: /healthz answers while the probes load
    am = config.alertmanager
    am_urls = list(dict.fromkeys([*am.urls, *args.alertmanager]))
    if am_urls:
        if not am.dashboard_url and listener is not None:
            am = am.model_copy(update={"dashboard_url": listener.url})
        sinks.append(AlertmanagerSink(am_urls, am))
    resolver = Resolver(inv, node=args.node or "", host_name=args.node or socket.gethostname())
    scope = resolver.scope()

    def ready(agent: Agent) -> None:
        st = agent.stats.attach_status
        where = (f"{len(scope.netns)} pod network namespaces" if scope.netns is not None
                 else "every network namespace on this host")
        print(f"kubepulse: agent running on {args.node or socket.gethostname()}: "
              f"{sum(st.values())}/{len(st)} hooks attached in "
              f"{agent.stats.attach_seconds * 1e3:.0f} ms, watching {where}; "
              f"alerts in {args.alerts_jsonl or 'stdout'}"
              f"{'; metrics on ' + listener.url + '/metrics' if listener else ''}; "
              "Ctrl-C to stop",
              file=sys.stderr, flush=True)
        for tp, ok in st.items():
            if not ok:
                print(f"kubepulse: warning: {tp} not attached; that signal is missing",
                      file=sys.stderr)

    agent = Agent(config, resolver, Sinks(sinks), store,  # type: ignore[arg-type]
                  on_tick=metrics.observe_tick)
    try:
        rc = agent.run(duration=args.duration or None, ready=ready)
    finally:
        if listener is not None:
            listener.close()
    s = agent.stats
    print(f"kubepulse: stopped after {s.ticks} ticks: {s.records_received} records, "
          f"{s.alerts_emitted} alert changes, {s.lost_kernel} records lost in the kernel, "
          f"{s.lost_user} in user space; open alerts saved to {store.path}",
          file=sys.stderr)
    return rc


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run", help="the node agent: detect anomalies and manage alerts",
        description="Attach the probes, name every flow (by pod from an inventory, else by "
                    "process and address), detect anomalies per edge and manage their alerts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inventory", metavar="FILE",
                   help="pods/services/nodes (from `kubepulse lab up` or written by hand, "
                        "docs/inventory.md)")
    p.add_argument("--node", metavar="NAME", help="speak only for this node's pods")
    p.add_argument("--config", metavar="FILE", help="YAML thresholds and windows")
    p.add_argument("--alerts-jsonl", metavar="FILE", help="append alert state changes here")
    p.add_argument("--webhook", metavar="URL", help="POST each alert state change as JSON")
    p.add_argument("--state-dir", metavar="DIR", default="/var/lib/kubepulse",
                   help="alert history and open-alert state, SQLite (default %(default)s)")
    p.add_argument("--duration", type=float, default=0, metavar="S",
                   help="stop after S seconds (default: until SIGTERM/Ctrl-C)")
    p.add_argument("--quiet", action="store_true", help="no alerts on stdout")
    p.add_argument("--listen", metavar="ADDR", default="127.0.0.1:9810",
                   help="serve /metrics, /healthz and /readyz here (default %(default)s; "
                        "'' to disable)")
    p.add_argument("--alertmanager", metavar="URL", action="append", default=[],
                   help="send alerts to this Alertmanager (repeat for each of an HA pair)")
    p.set_defaults(func=_run)
