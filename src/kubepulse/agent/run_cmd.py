"""`kubepulse run`: the node agent."""

from __future__ import annotations

import argparse
import logging
import os
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
  sudo kubepulse run --kubernetes --kubeconfig ~/.kube/config --node node-1   names from the API
  sudo KUBEPULSE_TOKEN=s3cret kubepulse run --listen 0.0.0.0:9810   dashboard for the LAN

The config file (YAML) holds every threshold and window; deploy/config/kubepulse.yaml lists
them all with their defaults. Alerts go to stdout, to --alerts-jsonl (one line per state
change, docs/alerts.md), to --webhook, and to SQLite in --state-dir, so a restart neither
re-fires nor forgets open alerts. SIGTERM or Ctrl-C: probes detached, state saved, files flushed.
The dashboard (docs/dashboard.md) is at http://127.0.0.1:9810/ on the same listener; any
address but loopback needs --token (or KUBEPULSE_TOKEN) unless --insecure is given.
"""


def _run(args: argparse.Namespace) -> int:
    from kubepulse.agent.loop import Agent
    from kubepulse.alerts import ConsoleSink, JsonlSink, Sinks, SqliteStore, WebhookSink
    from kubepulse.detect import load_config
    from kubepulse.enrich import inventory as inventory_mod
    from kubepulse.enrich.resolver import Resolver
    from kubepulse.kernel.doctor import require_ready

    config = load_config(args.config)
    token = args.token or os.environ.get("KUBEPULSE_TOKEN", "")
    if args.listen:
        _check_exposure(args.listen, token, args.insecure)
    if args.kubernetes and args.inventory:
        raise ConfigError("--kubernetes and --inventory both name the pods; give one of them")
    node = args.node or (os.environ.get("NODE_NAME", "") if args.kubernetes else "")
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
    from kubepulse.dashboard import Dashboard, DashboardStore, TokenGuard, chain
    from kubepulse.export import AgentMetrics, HttpListener, serve_agent_routes

    metrics, listener = AgentMetrics(config.metrics), None
    dashboard = Dashboard(DashboardStore(node=args.node or socket.gethostname()))
    if args.listen:
        listener = HttpListener(args.listen)
        serve_agent_routes(listener, metrics)
        dashboard.install(listener, guard=TokenGuard(token) if token else None)
        listener.start()  # before attaching: /healthz answers while the probes load
    am = config.alertmanager
    am_urls = list(dict.fromkeys([*am.urls, *args.alertmanager]))
    if am_urls:
        if not am.dashboard_url and listener is not None:
            am = am.model_copy(update={"dashboard_url": listener.url})
        sinks.append(AlertmanagerSink(am_urls, am))
    networks: dict[str, str] = {}
    for n in args.network:
        name, eq, cidr = n.partition("=")
        if not eq or not name or not cidr:
            raise ConfigError(f"--network {n!r}: give NAME=CIDR, e.g. --network corp=10.0.0.0/8")
        networks[name] = cidr
    resolver = Resolver(inv, node=node, host_name=node or socket.gethostname(),
                        networks=networks)
    kube = None
    if args.kubernetes:
        from kubepulse.enrich.kube import KubeConfig, start_kubernetes_inventory

        # The agent starts either way: until the first snapshot, flows are named by process
        # and address (and /readyz says so through the dashboard's health).
        kube = start_kubernetes_inventory(node, resolver, KubeConfig(kubeconfig=args.kubeconfig),
                                          sync_timeout_s=10.0)
    scope = resolver.scope()

    def ready(agent: Agent) -> None:
        st = agent.stats.attach_status
        where = (f"{len(scope.netns)} pod network namespaces" if scope.netns is not None
                 else "every network namespace on this host")
        print(f"kubepulse: agent running on {args.node or socket.gethostname()}: "
              f"{sum(st.values())}/{len(st)} hooks attached in "
              f"{agent.stats.attach_seconds * 1e3:.0f} ms, watching {where}; "
              f"alerts in {args.alerts_jsonl or 'stdout'}"
              f"{'; metrics on ' + listener.url + '/metrics' if listener else ''}"
              f"{'; dashboard on ' + listener.url + '/' if listener else ''}; "
              "Ctrl-C to stop",
              file=sys.stderr, flush=True)
        for tp, ok in st.items():
            if not ok:
                print(f"kubepulse: warning: {tp} not attached; that signal is missing",
                      file=sys.stderr)

    agent = Agent(config, resolver, Sinks(sinks), store,  # type: ignore[arg-type]
                  on_tick=chain(metrics.observe_tick, dashboard.on_tick))
    for sink in sinks:  # restored alerts: Alertmanager must go on hearing that they fire
        if isinstance(sink, AlertmanagerSink):
            for restored in agent.alerts.open_alerts():
                sink.emit(restored)
    try:
        rc = agent.run(duration=args.duration or None, ready=ready)
    finally:
        if kube is not None:
            kube.stop()
        if listener is not None:
            listener.close()
    s = agent.stats
    print(f"kubepulse: stopped after {s.ticks} ticks: {s.records_received} records, "
          f"{s.alerts_emitted} alert changes, {s.lost_kernel} records lost in the kernel, "
          f"{s.lost_user} in user space; open alerts saved to {store.path}",
          file=sys.stderr)
    return rc


def _check_exposure(listen: str, token: str, insecure: bool) -> None:
    """Beyond loopback the dashboard and API need a token, unless --insecure says otherwise."""
    from kubepulse.dashboard import is_loopback_host
    from kubepulse.export.http import parse_listen

    host, _ = parse_listen(listen)
    if is_loopback_host(host) or token:
        return
    if not insecure:
        raise ConfigError(f"--listen {listen}: not a loopback address, so the dashboard and "
                          "API need a token: give --token or set KUBEPULSE_TOKEN (or "
                          "--insecure to serve without one)")
    print(f"kubepulse: warning: --insecure: serving the dashboard and API on {listen} "
          "without a token; anyone who can reach it sees every flow and alert",
          file=sys.stderr, flush=True)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run", help="the node agent: detect anomalies and manage alerts",
        description="Attach the probes, name every flow (by pod from an inventory, else by "
                    "process and address), detect anomalies per edge and manage their alerts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inventory", metavar="FILE",
                   help="pods/services/nodes (from `kubepulse lab up` or written by hand, "
                        "docs/inventory.md)")
    p.add_argument("--node", metavar="NAME", help="speak only for this node's pods "
                   "(with --kubernetes: default $NODE_NAME, from the downward API)")
    p.add_argument("--kubernetes", action="store_true",
                   help="name pods, workloads and services from the API server (list+watch; "
                        "in a pod: its service account; else --kubeconfig or $KUBECONFIG)")
    p.add_argument("--kubeconfig", metavar="FILE", help="with --kubernetes: this kubeconfig")
    p.add_argument("--network", metavar="NAME=CIDR", action="append", default=[],
                   help="name addresses outside the cluster (repeatable), else 'external'")
    p.add_argument("--config", metavar="FILE", help="YAML thresholds and windows")
    p.add_argument("--alerts-jsonl", metavar="FILE", help="append alert state changes here")
    p.add_argument("--webhook", metavar="URL", help="POST each alert state change as JSON")
    p.add_argument("--state-dir", metavar="DIR", default="/var/lib/kubepulse",
                   help="alert history and open-alert state, SQLite (default %(default)s)")
    p.add_argument("--duration", type=float, default=0, metavar="S",
                   help="stop after S seconds (default: until SIGTERM/Ctrl-C)")
    p.add_argument("--quiet", action="store_true", help="no alerts on stdout")
    p.add_argument("--listen", metavar="ADDR", default="127.0.0.1:9810",
                   help="serve the dashboard (/), its API (/api/v1), /metrics, /healthz and "
                        "/readyz here (default %(default)s; '' to disable)")
    p.add_argument("--token", metavar="TOKEN", default="",
                   help="require this token (bearer header, or a cookie from /login) on the "
                        "listener; default $KUBEPULSE_TOKEN. Needed beyond loopback")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --listen without a token (prints a warning)")
    p.add_argument("--alertmanager", metavar="URL", action="append", default=[],
                   help="send alerts to this Alertmanager (repeat for each of an HA pair)")
    p.set_defaults(func=_run)
