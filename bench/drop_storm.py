#!/usr/bin/env python3
"""Drop storm: nftables drops a UDP flood; the in-kernel counts must be exact and the
user-space cost must not grow with the packet rate.

Creates two network namespaces joined by a veth (kpb-drop-tx 10.250.2.1, kpb-drop-rx
10.250.2.2); in kpb-drop-rx one nftables rule drops the flood and counts it itself:

  table inet kpb_storm { chain input { type filter hook input priority 0; policy accept;
    ip saddr 10.250.2.1 udp dport 20000-36383 counter drop } }

The drops probe (kubepulse.probes.drops.DropProbe, what the agent runs) is loaded in this
process, with the agent's DropDiffer (kubepulse.agent.aggregate) on top. bench/out/flood
(bench/flood.c) sends from kpb-drop-tx, at each level for --duration seconds:

  rates  one source port to one destination port (one key) at each of --rates packets/s
         (0: as fast as one sender thread can);
  keys   at --keys-rate packets/s, spread over N destination ports (N keys) for each of
         --keys, to show what the user-space cost does depend on.

During a level, every --tick s (the agent's tick) snapshot() and DropDiffer.samples() are
timed (wall and this thread's CPU). After it: the probe's NETFILTER_DROP packets for the
flood's keys against the nft rule's own counter (they must be equal), and, with
kernel.bpf_stats_enabled=1 (restored after), kp_drop's run time per run.

Everything is bounded (--duration <= 30 s per level, a packet count per level) and removed in
a `finally`, also on Ctrl-C. Writes bench/out/drop_storm.json and bench/out/drop_storm.md.

example:
  sudo .venv/bin/python bench/drop_storm.py --rates 10000,100000,0 --duration 5
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kpbench as kb
import numpy as np

sys.path.insert(0, str(kb.REPO / "src"))

from kubepulse.agent.aggregate import DropDiffer
from kubepulse.enrich.resolver import Resolver, Scope
from kubepulse.probes import drops as drops_mod
from kubepulse.probes.drops import DropConfig, DropProbe

TX_NS, RX_NS = "kpb-drop-tx", "kpb-drop-rx"
TX_IP, RX_IP = "10.250.2.1", "10.250.2.2"
SPORT, DPORT, MAX_SPAN = 40000, 20000, 16384
NFT_TABLE = "kpb_storm"
NFT_RULES = f"""table inet {NFT_TABLE} {{
    chain input {{
        type filter hook input priority 0; policy accept;
        ip saddr {TX_IP} udp dport {DPORT}-{DPORT + MAX_SPAN - 1} counter drop
    }}
}}
"""
MAX_COUNT = 50_000_000  # packets per level, whatever the rate
SETTLE_S = 0.3  # after the sender stops: the last packets leave the backlog
REST_S = 3.0  # before the at-rest ticks: longer than DropDiffer's "recently changed" margin
REST_TICKS = 4


def nft_counter() -> tuple[int, int]:
    """(packets, bytes) of the rule's counter."""
    data = kb.run(kb.in_netns(RX_NS, ["nft", "-j", "list", "table", "inet", NFT_TABLE]))
    for item in json.loads(data.stdout)["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return int(expr["counter"]["packets"]), int(expr["counter"]["bytes"])
    raise RuntimeError(f"no counter in nft table {NFT_TABLE}")


def ip4(addr: str) -> np.ndarray:
    return np.frombuffer(bytes(int(x) for x in addr.split(".")), np.uint8)


def ours(snap: np.ndarray, rx_ino: int) -> np.ndarray:
    """Rows of the flood's tuples (any reason)."""
    mask: np.ndarray = ((snap["netns_ino"] == rx_ino) & (snap["protocol"] == 17)
                        & (snap["saddr"][:, :4] == ip4(TX_IP)).all(axis=1)
                        & (snap["daddr"][:, :4] == ip4(RX_IP)).all(axis=1)
                        & (snap["dport"] >= DPORT) & (snap["dport"] < DPORT + MAX_SPAN))
    return mask


def by_reason(snap: np.ndarray, rx_ino: int, names: dict[int, str]) -> dict[str, int]:
    rows = snap[ours(snap, rx_ino)]
    out: dict[str, int] = {}
    for code, n in zip(rows["reason"], rows["packets"], strict=True):
        name = names.get(int(code), str(int(code)))
        out[name] = out.get(name, 0) + int(n)
    return out


def timed(f: Callable[[], Any]) -> tuple[Any, float, float]:
    """f's result, wall ms and this thread's CPU ms."""
    w, c = time.perf_counter(), time.thread_time()
    out = f()
    return out, 1e3 * (time.perf_counter() - w), 1e3 * (time.thread_time() - c)


def at_rest(args: argparse.Namespace, probe: DropProbe,
            differs: dict[str, DropDiffer]) -> dict[str, Any]:
    """After the last level, no flood: what a map full of keys that no longer change costs a
    tick (REST_S later, so that no key counts as recently changed any more)."""
    time.sleep(REST_S)
    ticks = []
    for _ in range(REST_TICKS):
        time.sleep(args.tick)
        snap, _, snap_cpu = timed(probe.snapshot)
        t = {"keys": len(snap), "snapshot_cpu_ms": snap_cpu}
        for scope, d in differs.items():
            t[f"{scope}_cpu_ms"] = timed(functools.partial(d.samples, snap))[2]
        ticks.append(t)
    return {k: round(statistics.median(t[k] for t in ticks), 3)
            for k in ("keys", "snapshot_cpu_ms", "pods_cpu_ms", "host_cpu_ms")}


def level(args: argparse.Namespace, probe: DropProbe, differs: dict[str, DropDiffer],
          prog_ids: set[int], rx_ino: int, tmp: Path, name: str, rate: float,
          span: int) -> dict[str, Any]:
    names = probe.reason_names()
    nft0 = nft_counter()
    snap0 = probe.snapshot()
    for d in differs.values():
        d.samples(snap0)  # the differ's baseline, as after an agent tick
    c0 = probe.counters()
    foreign = kb.foreign_bpf({os.getpid()})
    st0 = kb.prog_stats(prog_ids) if args.bpf_stats else {}
    count = int(rate * args.duration * 1.05) + 1 if rate else MAX_COUNT
    cmd = kb.in_netns(TX_NS, [
        str(kb.FLOOD), "--dst", RX_IP, "--port", str(DPORT), "--sport", str(SPORT),
        "--dport-span", str(span), "--threads", "1", "--sockets", "1",
        "--rate", str(rate), "--duration", str(args.duration), "--count", str(count)])
    with open(tmp / f"{name}.out", "wb") as out, open(tmp / f"{name}.err", "wb") as err:
        flood = subprocess.Popen(cmd, stdout=out, stderr=err)
    ticks = []
    try:
        end = time.monotonic() + args.duration + 10
        next_tick = time.monotonic() + args.tick
        while flood.poll() is None and time.monotonic() < end:
            time.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick += args.tick
            snap, snap_ms, snap_cpu = timed(probe.snapshot)
            t: dict[str, Any] = {"keys": len(snap),
                                 "keys_pods": int((snap["netns_ino"] == rx_ino).sum()),
                                 "snapshot_ms": snap_ms, "snapshot_cpu_ms": snap_cpu}
            for scope, d in differs.items():
                samples, ms, cpu = timed(functools.partial(d.samples, snap))
                t[f"{scope}_samples"], t[f"{scope}_ms"], t[f"{scope}_cpu_ms"] = (
                    len(samples), ms, cpu)
            ticks.append(t)
    finally:
        if flood.poll() is None:
            kb.stop_process(flood, signal.SIGINT, 10)
    fl = json.loads((tmp / f"{name}.out").read_text())
    time.sleep(SETTLE_S)
    snap1 = probe.snapshot()
    nft1 = nft_counter()
    st1 = kb.prog_stats(prog_ids) if args.bpf_stats else {}
    c1 = probe.counters()
    r0, r1 = by_reason(snap0, rx_ino, names), by_reason(snap1, rx_ino, names)
    reasons = {k: r1[k] - r0.get(k, 0) for k in r1 if r1[k] != r0.get(k, 0)}
    probe_nf = reasons.get("NETFILTER_DROP", 0)
    nft_pk = nft1[0] - nft0[0]
    kernel = kb.prog_delta(st0, st1) if args.bpf_stats else {}

    def med(key: str) -> float | None:
        return round(statistics.median(t[key] for t in ticks), 3) if ticks else None

    return {
        "name": name, "rate_target": rate, "keys_target": span, "flood": fl,
        "foreign_bpf": foreign,
        "sent": fl["sent"], "pps": round(fl["sent_per_s"]),
        "nft_packets": nft_pk, "probe_netfilter_drop": probe_nf,
        "exact": probe_nf == nft_pk, "reasons": reasons,
        "sent_minus_dropped": fl["sent"] - sum(reasons.values()),
        "counters": {k: c1[k] - c0.get(k, 0) for k in c1},
        "snapshot_keys_median": med("keys"),
        "pods_keys_median": med("keys_pods"),
        "flood_keys_in_snapshot": int(ours(snap1, rx_ino).sum()),
        "ticks": ticks,
        **{f"{k}_median": med(k) for k in (
            "snapshot_ms", "snapshot_cpu_ms", "pods_ms", "pods_cpu_ms", "host_ms",
            "host_cpu_ms")},
        # What an agent with an inventory pays per tick (its pods' namespaces), and one on a
        # plain host (every namespace): snapshot + DropDiffer, CPU ms.
        "tick_pods_cpu_ms": round(statistics.median(
            t["snapshot_cpu_ms"] + t["pods_cpu_ms"] for t in ticks), 3) if ticks else None,
        "tick_host_cpu_ms": round(statistics.median(
            t["snapshot_cpu_ms"] + t["host_cpu_ms"] for t in ticks), 3) if ticks else None,
        "kernel": kernel,
        "kp_drop_ns_per_run": kernel.get("kp_drop", {}).get("ns_per_run"),
        "kp_drop_runs": kernel.get("kp_drop", {}).get("runs"),
    }


def markdown(res: dict[str, Any]) -> str:
    env = res["environment"]
    yes = {True: "yes", False: "**no**"}
    lines = [
        (f"Machine: {env['cpus']} CPUs, kernel {env['kernel']}; one sender thread, "
         f"{res['args']['duration']} s per level; kp_drops {res['args']['max_keys']:,} keys; "
         f"every {res['args']['tick']} s during the flood, snapshot() then DropDiffer.samples() "
         "scoped to the pods' namespaces (here the receiver's, as an agent with an inventory) "
         "and to the whole host (a plain host), CPU ms of this thread, median over the level; "
         f"kernel bpf_stats {'on' if res['args']['bpf_stats'] else 'off'}."), "",
        ("| level | packets/s | sent | nft rule counter | probe NETFILTER_DROP | exact | "
         "other reasons, same tuples | keys: flood / in map | snapshot | + DropDiffer, pods "
         "| + DropDiffer, host | kp_drop ns/run |"),
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for lv in res["levels"]:
        other = {k: v for k, v in lv["reasons"].items() if k != "NETFILTER_DROP"}
        ns = lv["kp_drop_ns_per_run"]
        lines.append(
            f"| {lv['name']} | {lv['pps']:,} | {lv['sent']:,} | {lv['nft_packets']:,} | "
            f"{lv['probe_netfilter_drop']:,} | {yes[lv['exact']]} | "
            f"{', '.join(f'{k} {v:,}' for k, v in other.items()) or '-'} | "
            f"{lv['flood_keys_in_snapshot']:,} / {lv['snapshot_keys_median']:,.0f} | "
            f"{lv['snapshot_cpu_ms_median']} ms | {lv['tick_pods_cpu_ms']} ms | "
            f"{lv['tick_host_cpu_ms']} ms | {ns if ns is not None else '-'} |")
    rest = res.get("at_rest")
    if rest:
        lines += ["", (f"At rest (no flood, {REST_S:.0f} s after the last level): "
                       f"{rest['keys']:,.0f} keys in the map; snapshot {rest['snapshot_cpu_ms']} "
                       f"ms, + DropDiffer {rest['pods_cpu_ms']} ms (pods) / "
                       f"{rest['host_cpu_ms']} ms (host) CPU per tick.")]
    r = res["ratios"]
    lines += ["", (f"Rate levels: x{r['pps']} packets/s; user-space CPU per tick x{r['pods']} "
                   f"(pods' namespaces), x{r['host']} (whole host, where the map held "
                   f"x{r['keys_in_map']} keys). Exact in {res['exact_levels']} of "
                   f"{len(res['levels'])} levels.")]
    foreign: dict[str, int] = {}
    for lv in res["levels"]:
        for name, n in lv["foreign_bpf"].items():
            foreign[name] = max(foreign.get(name, 0), n)
    if foreign:
        lines += ["", ("Other BPF programs on the same hooks during the run (another agent or "
                       "test on this machine): "
                       + ", ".join(f"{n} x{c}" for n, c in sorted(foreign.items())) + ".")]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[-1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="10000,100000,0",
                   help="packets/s per rate level, comma-separated (0: as fast as possible)")
    p.add_argument("--keys", default="1,100,1000,10000",
                   help="distinct keys per keys level, comma-separated ('' to skip)")
    p.add_argument("--keys-rate", type=float, default=50000, help="packets/s in keys levels")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per level (max 30)")
    p.add_argument("--tick", type=float, default=0.5, help="seconds between snapshots")
    p.add_argument("--max-keys", type=int, default=DropConfig().max_keys,
                   help="size of the kernel's kp_drops map (default: the agent's, %(default)s)")
    p.add_argument("--no-bpf-stats", dest="bpf_stats", action="store_false",
                   help="leave kernel.bpf_stats_enabled alone (no kernel cost figures)")
    p.add_argument("--out", type=Path, default=kb.OUT)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (BPF, network namespaces); run with sudo", file=sys.stderr)
        return 2
    try:
        rates = [float(x) for x in args.rates.split(",") if x != ""]
        keys = [int(x) for x in args.keys.split(",") if x != ""]
    except ValueError:
        print("bench: --rates and --keys are comma-separated numbers", file=sys.stderr)
        return 2
    if (not 0 < args.duration <= 30 or not rates or any(r < 0 for r in rates)
            or any(not 1 <= k <= MAX_SPAN for k in keys) or not 0.1 <= args.tick <= 5):
        print(f"bench: need --duration in (0, 30], rates >= 0, keys in 1..{MAX_SPAN}, "
              "--tick in [0.1, 5]", file=sys.stderr)
        return 2
    for tool in ("nft", "bpftool", "ip", os.environ.get("CC", "cc")):
        if not shutil.which(tool):
            print(f"bench: {tool} not found", file=sys.stderr)
            return 2
    kb.build_flood()
    kb.install_signal_handlers()
    pair = kb.NetnsPair(TX_NS, RX_NS, TX_IP, RX_IP)
    tmp = Path(tempfile.mkdtemp(prefix="kpb-drop-"))
    old_stats = kb.sysctl("kernel.bpf_stats_enabled")
    probe: DropProbe | None = None
    levels = []
    rest: dict[str, Any] = {}
    try:
        pair.create()
        kb.run(kb.in_netns(RX_NS, ["nft", "-f", "-"]), input_text=NFT_RULES)
        rx_ino = pair.inode(RX_NS)
        probe = DropProbe(DropConfig(max_keys=args.max_keys))
        probe.start()
        resolver = Resolver(None, host_name="bench")
        differs = {scope: DropDiffer(resolver, sc, probe.reason_name, drops_mod.classify)
                   for scope, sc in (("pods", Scope(frozenset({rx_ino}))),
                                     ("host", resolver.scope()))}
        prog_ids = kb.bpf_ids(os.getpid(), "prog")
        if args.bpf_stats:
            kb.sysctl("kernel.bpf_stats_enabled", 1)
        plan = ([(f"rate {r:,.0f}/s" if r else "rate max", r, 1) for r in rates]
                + [(f"{k:,} keys", args.keys_rate, k) for k in keys])
        for i, (name, rate, span) in enumerate(plan):
            lv = level(args, probe, differs, prog_ids, rx_ino, tmp, f"level{i}", rate, span)
            lv["name"] = name
            levels.append(lv)
            kb.log(f"{name:<14} {lv['pps']:>9,} pkt/s  nft {lv['nft_packets']:>10,}  probe "
                   f"{lv['probe_netfilter_drop']:>10,}  {'exact' if lv['exact'] else 'OFF'}  "
                   f"tick {lv['tick_pods_cpu_ms']} ms (host {lv['tick_host_cpu_ms']} ms, "
                   f"{lv['snapshot_keys_median']:,.0f} keys)  kp_drop "
                   f"{lv['kp_drop_ns_per_run']} ns/run")
        rest = at_rest(args, probe, differs)
        kb.log(f"at rest: {rest}")
    finally:
        with kb.signals_ignored():
            kb.sysctl("kernel.bpf_stats_enabled", old_stats)
            if probe is not None:
                probe.close()
            left = pair.delete()
            shutil.rmtree(tmp, ignore_errors=True)
            if left:
                kb.log("could not remove: " + "; ".join(left))
    rate_lv = levels[:len(rates)]
    lo = min(rate_lv, key=lambda lv: lv["pps"])
    hi = max(rate_lv, key=lambda lv: lv["pps"])

    def ratio(key: str) -> float | None:
        return round(hi[key] / lo[key], 2) if lo[key] else None

    result = {"environment": kb.environment(),
              "args": vars(args) | {"out": str(args.out)},
              "exact_levels": sum(lv["exact"] for lv in levels),
              # highest rate level over lowest: packets/s, user-space CPU per tick, keys
              "ratios": {"pps": ratio("pps"), "pods": ratio("tick_pods_cpu_ms"),
                         "host": ratio("tick_host_cpu_ms"),
                         "keys_in_map": ratio("snapshot_keys_median")},
              "levels": levels, "at_rest": rest}
    kb.write_results("drop_storm", result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except kb.Interrupted as exc:
        kb.log(f"interrupted ({exc}); namespaces and processes removed")
        sys.exit(130)
