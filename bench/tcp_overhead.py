#!/usr/bin/env python3
"""What the tcp_conn probe costs a connection-churning workload, side by side with bpftrace.

Runs bench/out/churn (built here from bench/churn.c) under each tracer in interleaved rounds:

  baseline         no tracer of ours
  agent            kubepulse events --summary --port <churn port>   (accounting is checked)
  agent_all        kubepulse events --summary                        (no filter: every record)
  bpftrace_print   one printf line per sock:inet_sock_set_state event, to /dev/null
  bpftrace_count   @[args->newstate] = count(), in the kernel only

then one run with a deliberately undersized ring buffer, where lost records must be counted
exactly. Writes bench/out/tcp_overhead.json and bench/out/tcp_overhead.md.

Needs root, bpftrace and bpftool. Every load is bounded: --duration seconds per run,
--rounds rounds, and the undersized run by --lossy-count connections.

example:
  sudo .venv/bin/python bench/tcp_overhead.py --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
CHURN_SRC = BENCH / "churn.c"
CHURN = OUT / "churn"

MODES = ("baseline", "agent", "agent_all", "bpftrace_print", "bpftrace_count")
BPFTRACE_PRINT = ('tracepoint:sock:inet_sock_set_state { printf("%d %d %d %d\\n", '
                  'args->oldstate, args->newstate, args->sport, args->dport); }')
BPFTRACE_COUNT = "tracepoint:sock:inet_sock_set_state { @[args->newstate] = count(); }"
OUR_TRACEPOINTS = {"inet_sock_set_state", "tcp_retransmit_skb", "tcp_receive_reset",
                   "tcp_send_reset", "sys_enter_connect", "sys_exit_connect"}
# A TIME_WAIT socket per connection for 60 s: at ~25k connections/s the default 131072
# buckets overflow after ~5 s, and an overflowed FIN_WAIT2 is answered with an RST
# (docs/benchmarks.md, "Workload"). Raised for the run, restored after.
TW_BUCKETS = 1 << 21
ATTACH_TIMEOUT_S = 20.0
DRAIN_S = 0.5  # after the workload: > 2 agent poll intervals (50 ms) for the last records


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def build_churn() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if CHURN.exists() and CHURN.stat().st_mtime >= CHURN_SRC.stat().st_mtime:
        return
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-pthread", "-o", str(CHURN), str(CHURN_SRC)]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)


def free_port() -> int:
    """A free 127.0.0.1 port below the ephemeral range (a port inside it may be held by a
    client-side TIME_WAIT socket, which blocks bind even with SO_REUSEADDR)."""
    lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(20000, min(lo, 32768))
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000..ephemeral range")


def sysctl(name: str, value: int | None = None) -> int:
    path = Path("/proc/sys") / name.replace(".", "/")
    if value is not None:
        path.write_text(f"{value}\n")
    return int(path.read_text().split()[0])


def snmp() -> dict[str, int]:
    """TCP counters from /proc/net/{snmp,netstat} (global: background traffic included)."""
    out: dict[str, int] = {}
    for f in ("/proc/net/snmp", "/proc/net/netstat"):
        lines = Path(f).read_text().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            proto, names = head.split(":", 1)
            for n, v in zip(names.split(), vals.split(":", 1)[1].split()):
                out[f"{proto}{n}"] = int(v)
    return out


SNMP_KEYS = ("TcpActiveOpens", "TcpOutRsts", "TcpEstabResets", "TcpExtTCPTimeWaitOverflow",
             "TcpExtTCPAbortOnData", "TcpExtTCPAbortOnClose", "TcpExtListenDrops")


def snmp_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in SNMP_KEYS}


def foreign_attachments(ours: set[int]) -> list[str]:
    """BPF programs of other processes on the tracepoints the workload exercises."""
    try:
        res = subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True, text=True,
                             timeout=10, check=False)
        rows = json.loads(res.stdout or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return ["bpftool perf list failed"]
    return sorted({f"pid {r['pid']} {r.get('tracepoint')}" for r in rows
                   if r.get("tracepoint") in OUR_TRACEPOINTS and r["pid"] not in ours})


def attached_by(pid: int, tracepoint: str) -> bool:
    res = subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True, text=True,
                         timeout=10, check=False)
    return any(r["pid"] == pid and r.get("tracepoint") == tracepoint
               for r in json.loads(res.stdout or "[]"))


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    return 0


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Tracer:
    """One tracer process: started, waited on until attached, stopped with SIGINT."""

    def __init__(self, mode: str, port: int, ring_kib: int | None, tmp: Path) -> None:
        self.mode = mode
        self.stdout_path = tmp / f"{mode}.stdout"
        self.stderr_path = tmp / f"{mode}.stderr"
        env = dict(os.environ)
        stdout_path: Path | str = self.stdout_path
        if mode.startswith("agent"):
            env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
            cmd = [sys.executable, "-m", "kubepulse.cli", "events", "--summary"]
            if mode == "agent":
                cmd += ["--port", str(port)]
            if ring_kib:
                cmd += ["--ring-kib", str(ring_kib)]
        elif mode == "bpftrace_print":
            cmd = ["bpftrace", "-e", BPFTRACE_PRINT]
            stdout_path = os.devnull
        else:
            cmd = ["bpftrace", "-e", BPFTRACE_COUNT]
        self.cmd = cmd
        self.t0 = time.monotonic()
        with open(stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        self.attach_wall_s: float | None = None
        self.attach_self_ms: float | None = None
        self.cpu_at_attach_s = 0.0

    def wait_attached(self) -> None:
        deadline = self.t0 + ATTACH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.mode} exited early ({self.proc.returncode}): "
                                   f"{self.stderr_path.read_text(errors='replace')[-2000:]}")
            if self.mode.startswith("agent"):
                m = re.search(r"attached in (\d+) ms", self.stderr_path.read_text())
                if m:
                    self.attach_self_ms = float(m.group(1))
                    self.attach_wall_s = time.monotonic() - self.t0
                    self.cpu_at_attach_s = proc_cpu_s(self.proc.pid)
                    return
                time.sleep(0.01)
            else:
                if attached_by(self.proc.pid, "inet_sock_set_state"):
                    self.attach_wall_s = time.monotonic() - self.t0
                    self.cpu_at_attach_s = proc_cpu_s(self.proc.pid)
                    return
                time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"{self.mode} did not attach within {ATTACH_TIMEOUT_S} s")

    def stop(self) -> dict[str, Any]:
        res: dict[str, Any] = {"attach_wall_s": self.attach_wall_s,
                               "attach_self_ms": self.attach_self_ms}
        if self.mode.startswith("agent"):
            res["vmhwm_kib"] = proc_status(self.proc.pid, "VmHWM")
        # CPU spent by the tracer's process while the workload ran (start-up excluded).
        res["cpu_s"] = proc_cpu_s(self.proc.pid) - self.cpu_at_attach_s
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{self.mode} did not stop on SIGINT") from None
        res["rc"] = self.proc.returncode
        if self.mode.startswith("agent"):
            lines = [ln for ln in self.stdout_path.read_text().splitlines() if ln.startswith("{")]
            if not lines:
                raise RuntimeError(f"{self.mode} printed no summary: "
                                   f"{self.stderr_path.read_text(errors='replace')[-2000:]}")
            res["summary"] = json.loads(lines[-1])
        return res


def prog_stats(pid: int) -> dict[str, dict[str, int]]:
    """run_cnt and run_time_ns of the BPF programs a process holds (needs bpf_stats_enabled)."""
    perf = subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True, text=True,
                          timeout=10, check=False)
    ids = {r["prog_id"] for r in json.loads(perf.stdout or "[]") if r["pid"] == pid}
    res = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                         timeout=10, check=False)
    out = {}
    for prog in json.loads(res.stdout or "[]"):
        if prog["id"] in ids:
            out[prog.get("name", str(prog["id"]))] = {
                "run_cnt": int(prog.get("run_cnt", 0)),
                "run_time_ns": int(prog.get("run_time_ns", 0))}
    return out


def bpf_stats_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One agent run with kernel.bpf_stats_enabled=1: the kernel-side cost per program.

    Kept out of the throughput rounds: the stats themselves add two clock reads per program
    run, to every BPF program on the host."""
    port = free_port()
    tracer = Tracer("agent_all", port, None, tmp)
    old = sysctl("kernel.bpf_stats_enabled")
    try:
        tracer.wait_attached()
        sysctl("kernel.bpf_stats_enabled", 1)
        before = prog_stats(tracer.proc.pid)
        churn = run_churn(port, args)
        after = prog_stats(tracer.proc.pid)
        sysctl("kernel.bpf_stats_enabled", old)
        time.sleep(DRAIN_S)
        tr = tracer.stop()
    finally:
        sysctl("kernel.bpf_stats_enabled", old)
        if tracer.proc.poll() is None:
            tracer.proc.kill()
            tracer.proc.wait()
    progs: dict[str, dict[str, Any]] = {}
    for name, a in after.items():
        b = before.get(name, {"run_cnt": 0, "run_time_ns": 0})
        cnt = a["run_cnt"] - b["run_cnt"]
        ns = a["run_time_ns"] - b["run_time_ns"]
        progs[name] = {"runs": cnt, "ns_total": ns, "ns_per_run": round(ns / cnt, 1) if cnt
                       else None}
    total_ns = sum(p["ns_total"] for p in progs.values())
    conns = churn["completed"]
    return {"churn": churn, "programs": progs,
            "kernel_ns_per_connection": round(total_ns / conns, 1) if conns else None,
            "kernel_cpu_pct_of_one_core": round(100 * total_ns / 1e9 / churn["elapsed_s"], 2),
            "agent_cpu_s": tr["cpu_s"],
            "agent_cpu_pct_of_one_core": round(100 * tr["cpu_s"] / churn["elapsed_s"], 1),
            "agent_ns_per_record": round(tr["cpu_s"] * 1e9 / (2 * conns), 1) if conns else None}


def run_churn(port: int, args: argparse.Namespace, count: int = 0) -> dict[str, Any]:
    cmd = [str(CHURN), "--port", str(port), "--threads", str(args.threads),
           "--servers", str(args.servers), "--duration", str(args.duration)]
    if count:
        cmd += ["--count", str(count)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60,
                         check=False)
    if res.returncode:
        raise RuntimeError(f"churn failed: {res.stderr.strip()}")
    result: dict[str, Any] = json.loads(res.stdout)
    return result


def one_run(mode: str, args: argparse.Namespace, tmp: Path, ring_kib: int | None = None,
            count: int = 0) -> dict[str, Any]:
    port = free_port()
    tracer = None if mode == "baseline" else Tracer(mode, port, ring_kib, tmp)
    try:
        if tracer:
            tracer.wait_attached()
        ours = {os.getpid()} | ({tracer.proc.pid} if tracer else set())
        foreign = foreign_attachments(ours)
        before = snmp()
        churn = run_churn(port, args, count)
        net = snmp_delta(before, snmp())
        time.sleep(DRAIN_S if tracer else 0)
        tr = tracer.stop() if tracer else {}
        tracer = None
    finally:
        if tracer:
            tracer.proc.kill()
            tracer.proc.wait()
    run = {"mode": mode, "port": port, "churn": churn, "net": net, "foreign_bpf": foreign,
           **tr}
    if mode == "agent" or ring_kib:
        run["accounting"] = accounting(run)
    if mode == "agent_all":
        summ = run["summary"]
        received = sum(summ["outcomes"].values())
        # Every record the kernel submitted since load was decoded by user space.
        run["userspace_complete"] = {"received": received,
                                     "kernel_submitted": summ["counters"].get("records"),
                                     "equal": received == summ["counters"].get("records")}
    return run


def accounting(run: dict[str, Any]) -> dict[str, Any]:
    """The agent's records for the churn port against the workload's own counts."""
    churn, summ = run["churn"], run["summary"]
    outcomes = summ["outcomes"]
    received = sum(outcomes.values())
    expected = 2 * churn["completed"]  # one record per side: client and server, on loopback
    lost = summ["lost_kernel"]
    return {
        "expected_records": expected,
        "expected_established_closed": expected,
        "received": received,
        "outcomes": outcomes,
        "lost_kernel": lost,
        "kernel_records_submitted": summ["counters"].get("records"),
        "exact": outcomes.get("established_closed", 0) == expected and received == expected,
        "received_plus_lost_minus_expected": received + lost - expected,
    }


def summarise(runs: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    by = {m: [r for r in runs if r["mode"] == m] for m in modes}
    base = by["baseline"]
    rounds = len(base)
    table = {}
    for m in modes:
        rate = [r["churn"]["conn_per_s"] for r in by[m]]
        # Paired with the baseline run of the same round: drift between rounds cancels.
        ratio = [r["churn"]["conn_per_s"] / b["churn"]["conn_per_s"] for r, b in zip(by[m], base)]
        row: dict[str, Any] = {
            "conn_per_s_median": statistics.median(rate),
            "conn_per_s_runs": rate,
            "cost_pct_median_paired": round(100 * (1 - statistics.median(ratio)), 1),
            "cost_pct_of_medians": round(
                100 * (1 - statistics.median(rate) /
                       statistics.median(b["churn"]["conn_per_s"] for b in base)), 1),
            "failed_connects": sum(r["churn"]["failed_total"] for r in by[m]),
        }
        if m != "baseline":
            row["attach_wall_s_max"] = max(r["attach_wall_s"] for r in by[m])
            row["tracer_cpu_s_per_run"] = [round(r["cpu_s"], 2) for r in by[m]]
        if m.startswith("agent"):
            row["vmhwm_mib_max"] = round(max(r["vmhwm_kib"] for r in by[m]) / 1024, 1)
            row["attach_self_ms_max"] = max(r["attach_self_ms"] for r in by[m])
            row["lost_kernel_total"] = sum(r["summary"]["lost_kernel"] for r in by[m])
        if m == "agent_all":
            row["userspace_complete_runs"] = sum(
                1 for r in by[m] if r["userspace_complete"]["equal"])
        if m == "agent":
            row["accounting_exact_runs"] = sum(r["accounting"]["exact"] for r in by[m])
            row["accounting_runs"] = len(by[m])
        table[m] = row
    return {"rounds": rounds, "modes": table}


def mode_cells(mode: str, r: dict[str, Any]) -> list[str]:
    """One mode's row of the summary table: here and in docs/benchmarks.md
    (scripts/render_docs.py)."""
    attach = "-"
    if mode.startswith("agent"):
        attach = f"{r['attach_self_ms_max']:.0f} ms ({r['attach_wall_s_max']:.2f} s from exec)"
    elif mode != "baseline":
        attach = f"{r['attach_wall_s_max']:.2f} s from exec"
    return [mode, f"{r['conn_per_s_median']:,.0f}",
            "-" if mode == "baseline" else f"{-r['cost_pct_median_paired']:+.1f}%", attach,
            f"{r['vmhwm_mib_max']} MiB" if "vmhwm_mib_max" in r else "-",
            str(r["lost_kernel_total"]) if "lost_kernel_total" in r else "-",
            ", ".join(str(c) for c in r.get("tracer_cpu_s_per_run", [])) or "-"]


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]["modes"]
    env = result["environment"]
    lines = [
        (f"Machine: {env['cpus']} CPUs, kernel {env['kernel']}; churn {env['threads']} client + "
         f"{env['servers']} server threads, {env['duration_s']} s per run, "
         f"{result['summary']['rounds']} interleaved rounds (median)."),
        "",
        ("| mode | connections/s (median) | cost vs baseline (paired median) | attach | "
         "peak RSS | lost in kernel | tracer CPU s per run |"),
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for m, r in s.items():
        lines.append("| " + " | ".join(mode_cells(m, r)) + " |")
    lines += ["", "Accounting (agent, --port <churn port>), per run:", "",
              ("| round | completed connections | expected records (2 per connection) | "
               "received | outcomes | lost | exact |"), "|---|---:|---:|---:|---|---:|---|"]
    agent_runs = [r for r in result["runs"] if r["mode"] == "agent"]
    for i, r in enumerate(agent_runs, 1):
        a = r["accounting"]
        lines.append(f"| {i} | {r['churn']['completed']:,} | {a['expected_records']:,} | "
                     f"{a['received']:,} | {json.dumps(a['outcomes'])} | {a['lost_kernel']} | "
                     f"{'yes' if a['exact'] else 'NO'} |")
    allr = [r for r in result["runs"] if r["mode"] == "agent_all"]
    if allr:
        lines += ["", "User space read everything the kernel submitted (agent_all, no filter): "
                  + ", ".join(f"{r['userspace_complete']['received']:,}/"
                              f"{r['userspace_complete']['kernel_submitted']:,}" for r in allr)
                  + (" (all equal)" if all(r["userspace_complete"]["equal"] for r in allr)
                     else " (NOT all equal)")]
    lossy = result.get("lossy")
    if lossy:
        a = lossy["accounting"]
        bg_received = a["kernel_records_submitted"] - a["received"]
        lines += ["", (f"Undersized ring (--ring-kib {lossy['ring_kib']}): "
                       f"{lossy['churn']['completed']:,} connections, expected "
                       f"{a['expected_records']:,} records; received {a['received']:,} + lost "
                       f"{a['lost_kernel']:,} = {a['received'] + a['lost_kernel']:,} "
                       f"(difference {a['received_plus_lost_minus_expected']:+d}). The kernel "
                       f"submitted {a['kernel_records_submitted']:,}, so {bg_received} "
                       "background records (other ports, filtered out) were received in that "
                       "window; the lost counter is per host, not per port, so the difference "
                       "is background records that were lost too.")]
    st = result.get("bpf_stats")
    if st:
        lines += ["", (f"Cost per part, separate run with kernel.bpf_stats_enabled=1 "
                       f"({st['churn']['conn_per_s']:,.0f} connections/s): BPF programs "
                       f"{st['kernel_ns_per_connection']:,} ns per connection "
                       f"({st['kernel_cpu_pct_of_one_core']}% of one core); agent process "
                       f"{st['agent_ns_per_record']:,} ns CPU per record "
                       f"({st['agent_cpu_pct_of_one_core']}% of one core)."), "",
                  "| program | runs | ns per run |", "|---|---:|---:|"]
        for name, pr in sorted(st["programs"].items()):
            lines.append(f"| {name} | {pr['runs']:,} | {pr['ns_per_run']} |")
    foreign = sorted({f for r in result["runs"] for f in r["foreign_bpf"]})
    if foreign:
        lines += ["", "Other BPF programs attached to these tracepoints during some runs "
                  "(not ours; they tax every mode, baseline included): " + "; ".join(foreign)]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per run (max 60)")
    p.add_argument("--threads", type=int, default=4, help="churn client threads")
    p.add_argument("--servers", type=int, default=2, help="churn server threads")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    p.add_argument("--lossy-ring-kib", type=int, default=4,
                   help="ring size for the lost-records run (0 to skip)")
    p.add_argument("--lossy-count", type=int, default=50000,
                   help="connections in the lost-records run")
    p.add_argument("--no-bpf-stats", dest="bpf_stats", action="store_false",
                   help="skip the run with kernel.bpf_stats_enabled=1 (per-program cost)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (BPF); run with sudo", file=sys.stderr)
        return 2
    if not 0 < args.duration <= 60 or not 1 <= args.rounds <= 10:
        print("bench: --duration must be in (0, 60] and --rounds in 1..10", file=sys.stderr)
        return 2
    modes = [m for m in args.modes.split(",") if m]
    if "baseline" not in modes or any(m not in MODES for m in modes):
        print(f"bench: --modes must include baseline and come from {MODES}", file=sys.stderr)
        return 2
    for tool in ("bpftrace", "bpftool"):
        if any(m.startswith("bpftrace") for m in modes) and not shutil.which(tool):
            print(f"bench: {tool} not found", file=sys.stderr)
            return 2
    build_churn()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "tmp"
    tmp.mkdir(exist_ok=True)

    old_tw = sysctl("net.ipv4.tcp_max_tw_buckets")
    runs: list[dict[str, Any]] = []
    lossy = None
    try:
        sysctl("net.ipv4.tcp_max_tw_buckets", max(old_tw, TW_BUCKETS))
        for rnd in range(args.rounds):
            # Rotate the order each round so no mode always runs first or last.
            order = modes[rnd % len(modes):] + modes[:rnd % len(modes)]
            for mode in order:
                r = one_run(mode, args, tmp)
                r["round"] = rnd
                runs.append(r)
                acc = r.get("accounting")
                log(f"round {rnd + 1} {mode:<15} {r['churn']['conn_per_s']:>9,.0f} conn/s"
                    + (f"  accounting {'exact' if acc['exact'] else 'OFF'} "
                       f"{acc['received']}/{acc['expected_records']} lost {acc['lost_kernel']}"
                       if acc else ""))
        if args.lossy_ring_kib:
            lossy = one_run("agent", args, tmp, ring_kib=args.lossy_ring_kib,
                            count=args.lossy_count)
            lossy["ring_kib"] = args.lossy_ring_kib
            a = lossy["accounting"]
            log(f"undersized ring: received {a['received']} + lost {a['lost_kernel']} vs "
                f"expected {a['expected_records']}")
        stats = bpf_stats_run(args, tmp) if args.bpf_stats else None
        if stats:
            log(f"bpf stats: {stats['kernel_ns_per_connection']} ns of BPF per connection, "
                f"agent {stats['agent_ns_per_record']} ns CPU per record")
    finally:
        sysctl("net.ipv4.tcp_max_tw_buckets", old_tw)

    runs.sort(key=lambda r: (r["round"], MODES.index(r["mode"])))
    result = {
        "environment": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "threads": args.threads, "servers": args.servers,
                        "duration_s": args.duration, "tcp_max_tw_buckets": TW_BUCKETS,
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "command": " ".join([sys.executable] + sys.argv)},
        "summary": summarise(runs, modes),
        "runs": runs,
        "lossy": lossy,
        "bpf_stats": stats,
    }
    (args.out / "tcp_overhead.json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    (args.out / "tcp_overhead.md").write_text(md)
    print(md)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from kubepulse.results import command_line, write_result

    log(f"wrote {write_result('tcp_overhead', result, command_line([sys.executable, *sys.argv]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
