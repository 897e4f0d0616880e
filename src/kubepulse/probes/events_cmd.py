"""`kubepulse events`: stream every TCP connection on this host, classified by the kernel."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import datetime
from types import FrameType
from typing import TextIO

import numpy as np

from kubepulse.errors import ConfigError
from kubepulse.kernel.doctor import require_ready
from kubepulse.model import KINDS, OUTCOMES, ConnEvent
from kubepulse.probes.tcp_conn import (
    TcpConnConfig,
    TcpConnProbe,
    addr_str,
    outcome_counts,
    to_events,
)

EPILOG = """\
examples:
  sudo kubepulse events                                  everything, as a table
  sudo kubepulse events --outcome refused,timeout        only failed connects
  sudo kubepulse events --port 5432 --duration 60        one service for a minute
  sudo kubepulse events --netns 4026532296 --json        one pod's network namespace, JSONL
  sudo kubepulse events --summary --duration 10 >/dev/null   counts per outcome only
  sudo kubepulse events --dns --json                     every DNS query: latency, rcode, timeouts
  sudo kubepulse events --drops --duration 5             kernel drops by reason and tuple

outcomes: established_closed (a normal close, not an anomaly), refused, timeout, unreachable,
reset_sent, reset_received, local_error, aborted_other; plus the early warning syn_retransmit
(a SYN unanswered for ~1 s, before the connect times out).
"""

HEADER = (f"{'TIME':<12} {'PID':>7} {'COMM':<15} {'DIR':<4} {'SOURCE':<22} {'DESTINATION':<22} "
          f"{'OUTCOME':<18} {'CONN_MS':>8} {'DUR_MS':>9} {'RETX':>4} {'TX':>8} {'RX':>8} ERR")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {value!r}"
                                         ) from exc


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def format_row(e: ConnEvent) -> str:
    ts = datetime.fromtimestamp(e.ts).strftime("%H:%M:%S.%f")[:12]
    what = e.outcome or e.kind
    lat = f"{e.connect_latency_s * 1e3:.2f}" if e.connect_latency_s is not None else "-"
    dur = f"{e.duration_s * 1e3:.1f}" if e.duration_s is not None else "-"
    direction = {"outbound": "out", "inbound": "in"}.get(e.direction, "?")
    return (f"{ts:<12} {e.pid or '-':>7} {e.comm or '-':<15.15} {direction:<4} "
            f"{_endpoint(e.saddr, e.sport):<22} {_endpoint(e.daddr, e.dport):<22} "
            f"{what:<18} {lat:>8} {dur:>9} {e.retransmits:>4} {e.bytes_sent:>8} "
            f"{e.bytes_received:>8} {e.error}")


class Filter:
    """Vectorised record filter: applied to the numpy batch before any decoding."""

    def __init__(self, args: argparse.Namespace, probe: TcpConnProbe) -> None:
        self.ports = np.array(args.port or [], dtype=np.uint16)
        self.pids = np.array(args.pid or [], dtype=np.uint32)
        self.netns = np.array(args.netns or [], dtype=np.uint32)
        self.outcomes: list[int] = []
        self.kinds: list[int] = []
        for name in args.outcome or []:
            if name in OUTCOMES:
                self.outcomes.append(probe.enums.outcome_code(name))
            elif name in KINDS and name != "close":
                self.kinds.append(probe.enums.kind_code(name))
            else:
                raise ConfigError(f"--outcome {name!r} is not an outcome; choose from "
                                  f"{', '.join(OUTCOMES)}, syn_retransmit")

    def __call__(self, b: np.ndarray) -> np.ndarray:
        keep = np.ones(len(b), dtype=bool)
        if self.ports.size:
            keep &= np.isin(b["sport"], self.ports) | np.isin(b["dport"], self.ports)
        if self.pids.size:
            keep &= np.isin(b["tgid"], self.pids)
        if self.netns.size:
            keep &= np.isin(b["netns_ino"], self.netns)
        if self.outcomes or self.kinds:
            sel = np.zeros(len(b), dtype=bool)
            if self.outcomes:
                close = b["kind"] != self.kinds_code_syn
                sel |= close & np.isin(b["outcome"], self.outcomes)
            if self.kinds:
                sel |= np.isin(b["kind"], self.kinds)
            keep &= sel
        return b[keep]

    kinds_code_syn = 2  # replaced in run() from BTF


def _stream(args: argparse.Namespace, out: TextIO) -> int:
    """`--dns`: one line per query; `--drops`: the in-kernel drop counters, every second."""
    from kubepulse.probes.dns import DnsProbe, dns_decode
    from kubepulse.probes.drops import DropProbe, classify

    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        probe: DnsProbe | DropProbe = DnsProbe() if args.dns else DropProbe()
        with probe:
            probe.start()
            print(f"kubepulse: watching {'DNS queries' if args.dns else 'kernel drops'}; "
                  "Ctrl-C to stop", file=sys.stderr)
            while not stop and (deadline is None or time.monotonic() < deadline):
                if isinstance(probe, DnsProbe):
                    probe.wait(0.1)
                    for e in dns_decode(probe.read(), probe.enums, probe.wall_offset):
                        if args.json:
                            out.write(json.dumps(e.to_dict()) + "\n")
                        else:
                            lat = f"{e.latency_s * 1e3:.2f}" if e.latency_s is not None else "-"
                            out.write(f"{e.netns:>10} {e.comm:<15.15} "
                                      f"{_endpoint(e.server, e.server_port):<22} {e.qtype:<6} "
                                      f"{e.rcode or e.kind:<9} {lat:>8} {e.qname}\n")
                    out.flush()
                    continue
                time.sleep(1.0)
                for r in probe.snapshot():
                    reason = probe.reason_name(int(r["reason"]))
                    row = {"netns": int(r["netns_ino"]), "reason": reason,
                           "class": classify(reason), "protocol": int(r["protocol"]),
                           "src": f"{addr_str(r['saddr'], int(r['family']))}:{int(r['sport'])}"
                           if r["family"] else "", "dst":
                           f"{addr_str(r['daddr'], int(r['family']))}:{int(r['dport'])}"
                           if r["family"] else "", "packets": int(r["packets"])}
                    out.write(json.dumps(row) + "\n")
                out.flush()
            print(f"kubepulse: counters {probe.counters()}", file=sys.stderr)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 0


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    require_ready()
    if getattr(args, "dns", False) or getattr(args, "drops", False):
        return _stream(args, out)
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    cfg = TcpConnConfig(ring_bytes=args.ring_kib * 1024)
    totals: dict[str, int] = {}
    shown = received = 0
    try:
        with TcpConnProbe(cfg) as probe:
            took = probe.start()
            flt = Filter(args, probe)
            flt.kinds_code_syn = probe.enums.kind_code("syn_retransmit")
            status = probe.attach_status
            attached = sum(status.values())
            print(f"kubepulse: watching TCP connections ({attached}/{len(status)} tracepoints "
                  f"attached in {took * 1e3:.0f} ms); Ctrl-C to stop", file=sys.stderr)
            for tp, ok in status.items():
                if not ok:
                    print(f"kubepulse: warning: {tp} is not attached; that signal is missing",
                          file=sys.stderr)
            if not args.json and not args.summary:
                print(HEADER, file=out, flush=True)
            deadline = time.monotonic() + args.duration if args.duration else None

            def handle(raw: np.ndarray) -> None:
                nonlocal shown, received
                received += len(raw)
                batch = flt(raw)
                if not batch.size:
                    return
                for k, v in outcome_counts(batch, probe.enums).items():
                    totals[k] = totals.get(k, 0) + v
                syn = int((batch["kind"] == flt.kinds_code_syn).sum())
                if syn:
                    totals["syn_retransmit"] = totals.get("syn_retransmit", 0) + syn
                if args.summary:
                    return
                events = to_events(batch, probe.enums, probe._wall_offset)
                if args.json:
                    out.write("".join(json.dumps(e.to_dict()) + "\n" for e in events))
                else:
                    out.write("".join(format_row(e) + "\n" for e in events))
                out.flush()
                shown += len(events)

            while not stop:
                timeout = cfg.poll_interval_s
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    timeout = min(timeout, left)
                probe.wait(timeout)
                handle(probe.read())
            # Detach first, then report whatever the kernel queued before that: every
            # submitted record is either shown (or filtered) or counted as lost.
            probe.stop()
            while (batch := probe.read()).size:
                handle(batch)
            counters = probe.counters()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    lost = counters.get("ringbuf_full", 0)
    lost_user = max(0, counters.get("records", 0) - received)
    if args.summary:
        summary = {"outcomes": totals, "received": received, "lost_kernel": lost,
                   "lost_user": lost_user, "counters": counters}
        print(json.dumps(summary), file=out, flush=True)
    print(f"kubepulse: {sum(totals.values())} records "
          f"({', '.join(f'{k} {v}' for k, v in sorted(totals.items())) or 'none'}); "
          f"{lost} lost in the kernel, {lost_user} in user space", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "events", help="stream classified TCP connection records",
        description="Attach the TCP probes and print one record per connection as it ends: "
                    "who (pid, comm, netns), where (addresses, ports, direction), how long, "
                    "how many bytes and retransmits, and how it ended.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="JSON Lines instead of a table")
    p.add_argument("--duration", type=float, default=0, metavar="S",
                   help="stop after S seconds (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--port", type=_ints, metavar="P[,P]",
                   help="only connections with this source or destination port")
    p.add_argument("--pid", type=_ints, metavar="PID[,PID]", help="only these processes")
    p.add_argument("--netns", type=_ints, metavar="INODE[,INODE]",
                   help="only these network namespaces (inode, as in `ls -L -i /proc/PID/ns/net`"
                        " or `lsns -t net`)")
    p.add_argument("--outcome", type=_csv, metavar="NAME[,NAME]",
                   help="only these outcomes (see below)")
    p.add_argument("--summary", action="store_true",
                   help="print no records; at the end print counts per outcome as JSON")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dns", action="store_true",
                      help="DNS queries instead: one line per answer or timeout")
    mode.add_argument("--drops", action="store_true",
                      help="kernel packet drops instead: the in-kernel counters every second "
                           "(JSON, cumulative)")
    p.add_argument("--ring-kib", type=int, default=8192, metavar="KIB",
                   help="ring buffer size in KiB, a power of two (default 8192)")
    p.set_defaults(func=run)
