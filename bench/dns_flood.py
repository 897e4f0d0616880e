#!/usr/bin/env python3
"""DNS flood: a real dnsmasq answers >= 20,000 queries/s while the real agent watches.

Creates two network namespaces joined by a veth (kpb-dns-cli 10.250.1.1, kpb-dns-srv
10.250.1.2), runs dnsmasq in kpb-dns-srv (answers every name under flood.kpb itself) and
bench/out/flood (built from bench/flood.c) in kpb-dns-cli: --rate queries/s for --duration
seconds, distinct (socket, port, transaction id) per query.

Phase 1, the agent: `kubepulse run --quiet --listen 127.0.0.1:PORT --state-dir TMP` watches
the whole flood. Measured: offered and answered rates (the generator's own counts), the
kernel's DNS counters and the pending (LRU) map of the agent's own BPF objects (read with
bpftool from the agent's file descriptors), what the agent read and exported (/metrics,
scraped every --sample-every s), its peak RSS (VmHWM) and CPU, and whether it stayed up and
stopped cleanly on SIGTERM.

Phase 2, losses (skipped with --lossy-ring-kib 0): the same flood watched by a DnsProbe in
this process with a ring buffer of --lossy-ring-kib KiB, too small for the rate: every
answered query must be either read by user space or counted as lost in the kernel.

Everything is bounded (--duration <= 60 s, a query count, the drain) and removed in a
`finally`, also on Ctrl-C. Writes bench/out/dns_flood.json and bench/out/dns_flood.md.

example:
  sudo .venv/bin/python bench/dns_flood.py --rate 25000 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kpbench as kb

sys.path.insert(0, str(kb.REPO / "src"))  # the probes of this tree, as the agent runs them

CLIENT_NS, SERVER_NS = "kpb-dns-cli", "kpb-dns-srv"
CLIENT_IP, SERVER_IP = "10.250.1.1", "10.250.1.2"
ZONE, ANSWER_IP = "flood.kpb", "10.250.1.99"
QNAME = f"q.{ZONE}"
FLOOD_COMM = "flood"  # the generator's comm: its client name in the agent's metrics
ATTACH_TIMEOUT_S = 30.0
MAX_QUERIES = 30_000_000  # per phase at --rate 0 (as fast as possible): > 60 s at 400k/s
SETTLE_S = 3.5  # after the flood: the agent's DNS deadline (1.5 s) + a sweep + two ticks
LAG_S = 1.2  # between reading the kernel's counters and /metrics: two ticks and a poll
DNS_COUNTERS = ("ringbuf_full", "queries", "answers", "malformed", "unmatched", "retries",
                "not_query", "records")  # enum kp_dns_counter order (events.h)


def query_count(rate: float, duration: float) -> int:
    """The generator's count bound: the rate's worth and 5 % more, or MAX_QUERIES at max."""
    return int(rate * duration * 1.05) + 1 if rate else MAX_QUERIES


def start_dnsmasq(tmp: Path) -> subprocess.Popen[bytes]:
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--bind-interfaces", f"--listen-address={SERVER_IP}", "--port=53",
            f"--address=/{ZONE}/{ANSWER_IP}", f"--pid-file={tmp / 'dnsmasq.pid'}",
            "--user=root", "--group=root", "--log-facility=-"]
    with open(tmp / "dnsmasq.log", "wb") as logf:
        return subprocess.Popen(kb.in_netns(SERVER_NS, argv), stdout=logf, stderr=logf)


def flood_cmd(args: argparse.Namespace, rate: float, duration: float, count: int,
              drain: float = 1.0) -> list[str]:
    return kb.in_netns(CLIENT_NS, [
        str(kb.FLOOD), "--dst", SERVER_IP, "--port", "53", "--dns", QNAME,
        "--rate", str(rate), "--duration", str(duration), "--count", str(count),
        "--threads", str(args.threads), "--sockets", str(args.sockets), "--drain", str(drain)])


def wait_dns_ready(args: argparse.Namespace, dnsmasq: subprocess.Popen[bytes],
                   tmp: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if dnsmasq.poll() is not None:
            raise RuntimeError("dnsmasq exited: "
                               + (tmp / "dnsmasq.log").read_text(errors="replace")[-1000:])
        res = kb.run(flood_cmd(args, 0, 1, 1, drain=0.5), check=False)
        if res.returncode == 0 and json.loads(res.stdout).get("answers") == 1:
            return
        time.sleep(0.2)
    raise RuntimeError("dnsmasq did not answer within 10 s")


def start_flood(cmd: list[str], tmp: Path, name: str) -> subprocess.Popen[bytes]:
    with open(tmp / f"{name}.out", "wb") as out, open(tmp / f"{name}.err", "wb") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err)


def flood_result(proc: subprocess.Popen[bytes], tmp: Path, name: str,
                 timeout: float) -> dict[str, Any]:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kb.stop_process(proc, signal.SIGINT, 5)
    text = (tmp / f"{name}.out").read_text()
    if proc.returncode or not text.strip():
        raise RuntimeError(f"flood failed ({proc.returncode}): "
                           + (tmp / f"{name}.err").read_text(errors="replace")[-1000:])
    result: dict[str, Any] = json.loads(text)
    return result


class AgentProc:
    """`kubepulse run` as a subprocess, with its DNS maps found through its fds."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(kb.REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
        self.cmd = [sys.executable, "-m", "kubepulse.cli", "run", "--quiet",
                    "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp / "agent-state")]
        self.stderr_path = tmp / "agent.stderr"
        self.t0 = time.monotonic()
        with open(tmp / "agent.stdout", "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=err, env=env,
                                         cwd=kb.REPO)
        self.maps: dict[str, int] = {}
        self.ready_s = 0.0

    def wait_ready(self) -> None:
        deadline = self.t0 + ATTACH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited ({self.proc.returncode}): "
                                   + self.stderr_path.read_text(errors="replace")[-2000:])
            if "agent running" in self.stderr_path.read_text(errors="replace"):
                self.ready_s = time.monotonic() - self.t0
                self.maps = kb.maps_by_name(self.proc.pid)
                missing = {"kp_dns_counters", "kp_dns_pending"} - set(self.maps)
                if missing:
                    raise RuntimeError(f"the agent holds no {', '.join(sorted(missing))}: "
                                       "is the dns probe attached? "
                                       + self.stderr_path.read_text(errors="replace")[-2000:])
                return
            time.sleep(0.05)
        raise RuntimeError(f"the agent did not attach within {ATTACH_TIMEOUT_S} s")

    def counters(self) -> dict[str, int]:
        by_index = kb.percpu_array_sums(self.maps["kp_dns_counters"])
        return {name: by_index.get(i, 0) for i, name in enumerate(DNS_COUNTERS)}

    def pending(self) -> int:
        return kb.map_entries(self.maps["kp_dns_pending"])

    def sample(self, with_pending: bool, lag_s: float = 0.0) -> dict[str, Any]:
        """One reading: the kernel's counters first, then (``lag_s`` later, enough for the
        agent to tick over what the kernel had counted) the process and its /metrics."""
        s: dict[str, Any] = {"t": time.monotonic(), "alive": self.proc.poll() is None}
        if not s["alive"]:
            return s
        s["kernel"] = self.counters()
        if with_pending:
            s["pending"] = self.pending()
        time.sleep(lag_s)
        pid = self.proc.pid
        s["rss_kib"] = kb.proc_status_kib(pid, "VmRSS")
        s["cpu_s"], s["cpu_t"] = kb.proc_cpu_s(pid), time.monotonic()
        try:
            status, body, took = kb.http_get(self.url + "/metrics")
        except OSError as exc:
            status, body, took = 0, "", float("nan")
            s["scrape_error"] = str(exc)
        s["scrape_status"], s["scrape_s"] = status, round(took, 4)
        if status == 200:
            s["dns_processed"] = kb.metric_sum(body, "kubepulse_records_processed_total",
                                               probe="dns")
            s["tcp_processed"] = kb.metric_sum(body, "kubepulse_records_processed_total",
                                               probe="tcp_conn")
            s["dns_requests"] = kb.metric_sum(body, "kubepulse_dns_requests_total")
            s["dns_timeouts"] = kb.metric_sum(body, "kubepulse_dns_timeouts_total")
            # The generator's own series (a plain host names a client by its command).
            s["flood_requests"] = kb.metric_sum(body, "kubepulse_dns_requests_total",
                                                workload=FLOOD_COMM)
            s["flood_timeouts"] = kb.metric_sum(body, "kubepulse_dns_timeouts_total",
                                                workload=FLOOD_COMM)
            s["lost_kernel_exported"] = kb.metric_sum(body, "kubepulse_records_lost_total",
                                                      stage="kernel")
            # The DNS probe's own counters, as the agent exports them (docs/metrics.md).
            s["dns_ringbuf_full_exported"] = kb.metric_sum(
                body, "kubepulse_kernel_events_total", counter="dns_ringbuf_full")
            s["dns_pending_evicted_exported"] = kb.metric_sum(
                body, "kubepulse_kernel_events_total", counter="dns_pending_evicted")
            s["ticks"] = kb.metric_sum(body, "kubepulse_ticks_total")
            s["last_tick_age_s"] = kb.metric_sum(body, "kubepulse_last_tick_age_seconds")
            s["dns_attached"] = kb.metric_sum(body, "kubepulse_probe_attached",
                                              probe="cgroup_skb/ingress")
        s["alive"] = self.proc.poll() is None
        return s


def baseline_phase(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The same flood with no agent: what dnsmasq answers on this machine by itself."""
    snmp0 = kb.udp_snmp(SERVER_NS)
    foreign = kb.foreign_bpf({os.getpid()})
    count = query_count(args.rate, args.duration)
    flood = start_flood(flood_cmd(args, args.rate, args.duration, count), tmp, "baseline")
    try:
        fl = flood_result(flood, tmp, "baseline", timeout=args.duration + 15)
    finally:
        if flood.poll() is None:
            kb.stop_process(flood, signal.SIGINT, 5)
    return {"flood": fl, "server_udp": kb.delta(snmp0, kb.udp_snmp(SERVER_NS)),
            "foreign_bpf": foreign}


def agent_phase(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    agent = AgentProc(tmp, kb.free_port())
    flood: subprocess.Popen[bytes] | None = None
    try:
        agent.wait_ready()
        kb.log(f"agent ready in {agent.ready_s:.2f} s (pid {agent.proc.pid}); "
               f"flooding {f'{args.rate:,.0f} q/s' if args.rate else 'at max rate'} for "
               f"{args.duration} s")
        time.sleep(1.0)  # a couple of ticks before the load
        idle = agent.sample(with_pending=False)
        time.sleep(args.idle)  # the agent's own cost without the flood, for comparison
        snmp0 = {ns: kb.udp_snmp(ns) for ns in (CLIENT_NS, SERVER_NS)}
        prog_ids = kb.bpf_ids(agent.proc.pid, "prog")
        foreign = kb.foreign_bpf({os.getpid(), agent.proc.pid})
        st0 = kb.prog_stats(prog_ids) if args.bpf_stats else {}
        before = agent.sample(with_pending=True, lag_s=LAG_S)
        count = query_count(args.rate, args.duration)
        flood = start_flood(flood_cmd(args, args.rate, args.duration, count), tmp, "flood")
        samples = []
        end = time.monotonic() + args.duration + 15  # bound: the flood stops itself earlier
        n = 0
        while flood.poll() is None and time.monotonic() < end:
            time.sleep(args.sample_every)
            n += 1
            samples.append(agent.sample(with_pending=n % 2 == 0))
        fl = flood_result(flood, tmp, "flood", timeout=15)
        snmp = {ns: kb.delta(snmp0[ns], kb.udp_snmp(ns)) for ns in (CLIENT_NS, SERVER_NS)}
        settle_end = time.monotonic() + SETTLE_S
        while time.monotonic() < settle_end:
            time.sleep(min(args.sample_every, max(0.0, settle_end - time.monotonic())))
            samples.append(agent.sample(with_pending=False))
        after = agent.sample(with_pending=True, lag_s=LAG_S)
        samples.append(after)
        progs = kb.prog_delta(st0, kb.prog_stats(prog_ids)) if args.bpf_stats else {}
        hwm_kib = kb.proc_status_kib(agent.proc.pid, "VmHWM") if after["alive"] else None
        capacity = kb.bpftool("map", "show", "id", str(agent.maps["kp_dns_pending"]))
        rc = kb.stop_process(agent.proc, signal.SIGTERM, 30)
        stderr = agent.stderr_path.read_text(errors="replace")
    finally:
        if flood is not None and flood.poll() is None:
            kb.stop_process(flood, signal.SIGINT, 5)
        if agent.proc.poll() is None:
            kb.stop_process(agent.proc, signal.SIGTERM, 30)
    stopped_line = next((ln for ln in stderr.splitlines() if "stopped after" in ln), "")
    return {"flood": fl, "idle": idle, "before": before, "after": after, "samples": samples,
            "bpf_programs": progs, "foreign_bpf": foreign,
            "udp_snmp": snmp, "agent": {"cmd": " ".join(agent.cmd), "ready_s": agent.ready_s,
                                        "vmhwm_kib": hwm_kib, "rc": rc,
                                        "stopped_line": stopped_line,
                                        "pending_capacity": capacity["max_entries"]}}


def summarise_agent(ph: dict[str, Any]) -> dict[str, Any]:
    fl, i, b, a, samples = ph["flood"], ph["idle"], ph["before"], ph["after"], ph["samples"]
    k = {name: a["kernel"][name] - b["kernel"][name] for name in DNS_COUNTERS}
    timeouts = int(a["dns_timeouts"] - b["dns_timeouts"])
    processed = int(a["dns_processed"] - b["dns_processed"])
    flood_records = int(a["flood_requests"] - b["flood_requests"])
    flood_timeouts = int(a["flood_timeouts"] - b["flood_timeouts"])
    matched = k["answers"] + k["ringbuf_full"]
    pend = [s["pending"] for s in samples if "pending" in s]
    scrapes = [s for s in samples if s.get("scrape_status")]
    during = [s for s in samples if s["t"] < a["t"]]
    idle_rate = (b["cpu_s"] - i["cpu_s"]) / (b["cpu_t"] - i["cpu_t"])
    cpu, wall = a["cpu_s"] - b["cpu_s"], a["cpu_t"] - b["cpu_t"]
    extra_cpu = cpu - idle_rate * wall
    cli, srv = ph["udp_snmp"][CLIENT_NS], ph["udp_snmp"][SERVER_NS]
    hwm = ph["agent"]["vmhwm_kib"]
    return {
        "offered_qps": round(fl["sent_per_s"]),
        "answered_qps": round(fl["answers_per_s"]),
        "sent": fl["sent"],
        "answered": fl["answers"],
        "answered_pct": round(100 * fl["answers"] / fl["sent"], 2) if fl["sent"] else None,
        "rcodes": fl["rcodes"],
        "server_udp_rcvbuf_errors": srv.get("RcvbufErrors", 0),
        "client_udp_rcvbuf_errors": cli.get("RcvbufErrors", 0),
        "kernel": k,
        "kernel_matched": matched,
        "sweep_timeouts": timeouts,
        "userspace_processed": processed,
        # Host-wide: + means DNS of other processes arrived between the two readings.
        "processed_minus_records_and_timeouts": processed - k["records"] - timeouts,
        # The generator's queries, as the agent counted them: one record each, answered or
        # timed out; short of `sent` by what was lost in the kernel or evicted.
        "flood_records": flood_records,
        "flood_timeouts": flood_timeouts,
        "flood_records_minus_sent": flood_records - fl["sent"],
        "exported_lost_kernel": a["lost_kernel_exported"] - b["lost_kernel_exported"],
        "pending_max_seen": max(pend) if pend else None,
        "pending_end": a["pending"],
        "pending_capacity": ph["agent"]["pending_capacity"],
        "evicted_derived": k["queries"] - matched - timeouts - a["pending"] + b["pending"],
        "exported_dns_ringbuf_full": a.get("dns_ringbuf_full_exported", 0)
        - b.get("dns_ringbuf_full_exported", 0),
        "exported_dns_pending_evicted": a.get("dns_pending_evicted_exported", 0)
        - b.get("dns_pending_evicted_exported", 0),
        "agent_alive_throughout": all(s["alive"] for s in samples),
        "agent_rc": ph["agent"]["rc"],
        "agent_stopped_line": ph["agent"]["stopped_line"],
        "agent_vmhwm_mib": round(hwm / 1024, 1) if hwm else None,
        "agent_rss_before_mib": round(b["rss_kib"] / 1024, 1),
        "agent_rss_max_mib": round(max(s.get("rss_kib", 0) for s in samples) / 1024, 1),
        "agent_rss_end_mib": round(a["rss_kib"] / 1024, 1),
        "agent_idle_cpu_pct_one_core": round(100 * idle_rate, 1),
        "agent_cpu_s": round(cpu, 2),
        "agent_cpu_pct_one_core": round(100 * cpu / wall, 1) if wall else None,
        # Above the idle share; None when the idle share was noisier than the difference.
        "agent_cpu_us_per_record": round(1e6 * extra_cpu / processed, 1)
        if processed and extra_cpu > 0 else None,
        "agent_ready_s": round(ph["agent"]["ready_s"], 2),
        # Other work of the same agent in that window: TCP records of whatever else runs here.
        "agent_tcp_records": int(a["tcp_processed"] - b["tcp_processed"]),
        "scrapes_ok": sum(1 for s in scrapes if s["scrape_status"] == 200),
        "scrapes": len(samples),
        "scrape_s_max": max((s["scrape_s"] for s in scrapes), default=None),
        "bpf_ns_per_run": {name: p["ns_per_run"] for name, p in ph["bpf_programs"].items()
                           if name.startswith("kp_dns") and p["runs"]},
        "bpf_runs": {name: p["runs"] for name, p in ph["bpf_programs"].items()
                     if name.startswith("kp_dns")},
        "ticks": int(a["ticks"] - b["ticks"]),
        "ticks_expected": round((a["cpu_t"] - b["cpu_t"]) / 0.5),
        "last_tick_age_s_max": round(max((s.get("last_tick_age_s", 0) for s in during),
                                         default=0), 3),
    }


def lossy_phase(args: argparse.Namespace, tmp: Path, client_ino: int) -> dict[str, Any]:
    from kubepulse.probes.dns import DnsConfig, DnsProbe

    ring = args.lossy_ring_kib * 1024
    probe = DnsProbe(DnsConfig(timeout_s=1.5, ring_bytes=ring))
    flood: subprocess.Popen[bytes] | None = None
    try:
        probe.start()
        c0 = probe.counters()
        foreign = kb.foreign_bpf({os.getpid()})
        mine = other = answers = timeouts = 0
        timeout_kind = probe.enums.kind_code("timeout")
        count = query_count(args.rate, args.lossy_duration)
        snmp0 = kb.udp_snmp(CLIENT_NS)
        flood = start_flood(flood_cmd(args, args.rate, args.lossy_duration, count), tmp,
                            "flood-lossy")
        end = time.monotonic() + args.lossy_duration + 15 + SETTLE_S
        settle_end: float | None = None
        while time.monotonic() < end:
            if settle_end is None and flood.poll() is not None:
                settle_end = time.monotonic() + SETTLE_S
            if settle_end is not None and time.monotonic() >= settle_end:
                break
            probe.wait(0.05)
            batch = probe.read()
            if not batch.size:
                continue
            ours = batch["netns_ino"] == client_ino
            mine += int(ours.sum())
            other += int((~ours).sum())
            answers += int((ours & (batch["kind"] != timeout_kind)).sum())
            timeouts += int((ours & (batch["kind"] == timeout_kind)).sum())
        fl = flood_result(flood, tmp, "flood-lossy", timeout=15)
        c1 = probe.counters()
        snmp = kb.delta(snmp0, kb.udp_snmp(CLIENT_NS))
    finally:
        if flood is not None and flood.poll() is None:
            kb.stop_process(flood, signal.SIGINT, 5)
        probe.close()
    k = {n: c1.get(n, 0) - c0.get(n, 0) for n in (*DNS_COUNTERS, "timeouts", "foreign")}
    rcvbuf = snmp.get("RcvbufErrors", 0)
    return {
        "ring_kib": args.lossy_ring_kib,
        "flood": fl,
        "foreign_bpf": foreign,
        "kernel": k,
        "received_client_netns": mine,
        "received_answers_client_netns": answers,
        "received_timeouts_client_netns": timeouts,
        "received_other_netns": other,
        "client_udp_rcvbuf_errors": rcvbuf,
        # Nothing read is lost in user space: every record submitted (answers) or made by the
        # sweep (timeouts) was read.
        "userspace_read_every_record": k["records"] + k["timeouts"] == mine + other,
        # Every answer that reached a client socket is either a record read by user space or
        # counted as lost in the kernel (host-wide counters: other namespaces' DNS included).
        "answered_minus_accounted": fl["answers"] + rcvbuf
        - (answers + k["ringbuf_full"]),
    }


def wakeup_phase(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """What forced ring-buffer wake-ups cost kp_dns_ingress: a DnsProbe read every 50 ms
    without waiting on its descriptor (the agent's cadence for the DNS ring), with the default
    wakeup_bytes and with wake-ups disabled, alternated --wakeup-rounds times."""
    from kubepulse.probes.dns import DnsConfig, DnsProbe

    out = []
    for rnd in range(args.wakeup_rounds):
        for wake in (DnsConfig().wakeup_bytes, 1 << 30):
            probe = DnsProbe(DnsConfig(timeout_s=1.5, wakeup_bytes=wake))
            flood: subprocess.Popen[bytes] | None = None
            try:
                probe.start()
                ids = kb.bpf_ids(os.getpid(), "prog")
                st0 = kb.prog_stats(ids)
                count = query_count(args.rate, args.lossy_duration)
                flood = start_flood(flood_cmd(args, args.rate, args.lossy_duration, count), tmp,
                                    "flood-wakeup")
                read = 0
                end = time.monotonic() + args.lossy_duration + 15
                while flood.poll() is None and time.monotonic() < end:
                    time.sleep(0.05)
                    read += len(probe.read())
                st = kb.prog_delta(st0, kb.prog_stats(ids))
                read += len(probe.read())
                fl = flood_result(flood, tmp, "flood-wakeup", timeout=15)
            finally:
                if flood is not None and flood.poll() is None:
                    kb.stop_process(flood, signal.SIGINT, 5)
                probe.close()
            answers = max(1, fl["answers"])
            out.append({"round": rnd, "wakeup_bytes": wake, "answers": fl["answers"],
                        "records_read": read, "programs": st,
                        "ingress_ns_per_answer": round(
                            st.get("kp_dns_ingress", {}).get("ns_total", 0) / answers, 1),
                        "egress_ns_per_answer": round(
                            st.get("kp_dns_egress", {}).get("ns_total", 0) / answers, 1)})
            kb.log(f"wake-ups: wakeup_bytes {wake}: kp_dns_ingress "
                   f"{out[-1]['ingress_ns_per_answer']} ns per answer")
    return out


def markdown(res: dict[str, Any]) -> str:
    s = res["summary"]
    k = s["kernel"]
    env = res["environment"]
    yes = {True: "yes", False: "**no**"}

    def diff(n: int) -> str:
        return "(exact)" if n == 0 else f"(**{n:+,}**)"

    rows = []
    base = res.get("baseline")
    if base:
        bf = base["flood"]
        pct = 100 * bf["answers"] / max(1, bf["sent"])
        rows.append(("without the agent: offered / answered per second",
                     f"{bf['sent_per_s']:,.0f} / {bf['answers_per_s']:,.0f} ({pct:.1f} %)"))
    rows += [
        ("offered (queries sent per second)", f"{s['offered_qps']:,}"),
        ("answered per second (the generator received)",
         f"{s['answered_qps']:,} ({s['answered_pct']} %)"),
        ("queries sent / answered", f"{s['sent']:,} / {s['answered']:,}"),
        ("queries dnsmasq's socket dropped (server UDP RcvbufErrors)",
         f"{s['server_udp_rcvbuf_errors']:,}"),
        ("kernel: queries seen / answers matched",
         f"{k['queries']:,} / {s['kernel_matched']:,}"),
        ("kernel: records submitted / lost (ring full)",
         f"{k['records']:,} / {k['ringbuf_full']:,}"),
        ("kernel: malformed / unmatched / retries",
         f"{k['malformed']:,} / {k['unmatched']:,} / {k['retries']:,}"),
        ("user space: DNS records processed = answers + sweep timeouts",
         (f"{s['userspace_processed']:,} = {k['records']:,} + {s['sweep_timeouts']:,} "
          f"{diff(s['processed_minus_records_and_timeouts'])}")),
        ("the generator's queries in the agent's records (answered + timed out) vs sent",
         (f"{s['flood_records']:,} ({s['flood_records'] - s['flood_timeouts']:,} + "
          f"{s['flood_timeouts']:,}) vs {s['sent']:,} "
          f"{diff(s['flood_records_minus_sent'])}")),
        ("kubepulse_records_lost_total{stage=\"kernel\"} (exported)",
         f"{s['exported_lost_kernel']:,.0f}"),
        ("pending map: max seen / at the end / capacity",
         f"{s['pending_max_seen']:,} / {s['pending_end']:,} / {s['pending_capacity']:,}"),
        ("queries evicted from the pending map (derived)", f"{s['evicted_derived']:,}"),
        ("agent RSS before / max during / peak (VmHWM)",
         (f"{s['agent_rss_before_mib']} / {s['agent_rss_max_mib']} / "
          f"{s['agent_vmhwm_mib']} MiB")),
        (f"agent CPU, flood + {SETTLE_S} s",
         (f"{s['agent_cpu_s']} s ({s['agent_cpu_pct_one_core']} % of one core, idle "
          f"{s['agent_idle_cpu_pct_one_core']} %; "
          + (f"{s['agent_cpu_us_per_record']} µs per DNS record above idle)"
             if s["agent_cpu_us_per_record"] is not None else "idle share too noisy)"))),
        ("TCP records the agent processed meanwhile (other work on this machine)",
         f"{s['agent_tcp_records']:,}"),
        ("agent up at every sample / /metrics answered",
         (f"{yes[s['agent_alive_throughout']]} / {s['scrapes_ok']} of {s['scrapes']} "
          f"(slowest {s['scrape_s_max']} s)")),
        ("ticks run / expected; oldest tick seen",
         f"{s['ticks']} / {s['ticks_expected']}; {s['last_tick_age_s_max']} s"),
        ("agent exit on SIGTERM", f"rc {s['agent_rc']}: {s['agent_stopped_line']}"),
    ]
    if s["bpf_ns_per_run"]:
        rows.append(("BPF run time (bpf_stats), ns per run",
                     ", ".join(f"{n} {v} ({s['bpf_runs'][n]:,} runs)"
                               for n, v in s["bpf_ns_per_run"].items())))
    lines = [
        (f"Machine: {env['cpus']} CPUs, kernel {env['kernel']}; dnsmasq {res['dnsmasq']}; "
         f"flood {res['args']['threads']} threads x {res['args']['sockets']} sockets, "
         f"{res['args']['duration']} s; agent `kubepulse run` (default config)."),
        "", "| measure | value |", "|---|---:|",
        *(f"| {m} | {v} |" for m, v in rows),
    ]
    lo = res.get("lossy")
    if lo:
        lk = lo["kernel"]
        fl = lo["flood"]
        read = lo["received_client_netns"] + lo["received_other_netns"]
        lines += ["", (f"Undersized ring ({lo['ring_kib']} KiB, DnsProbe in the benchmark "
                       f"process): {fl['sent']:,} queries at {fl['sent_per_s']:,.0f}/s, "
                       f"{fl['answers']:,} answered; kernel matched "
                       f"{lk['answers'] + lk['ringbuf_full']:,} = {lk['records']:,} submitted "
                       f"+ {lk['ringbuf_full']:,} lost (ring full); user space read {read:,} "
                       f"records ({lk['records']:,} answers + {lk['timeouts']:,} sweep "
                       f"timeouts: {yes[lo['userspace_read_every_record']]}), of which "
                       f"{lo['received_other_netns']} from other namespaces. Answers the "
                       f"generator received minus (answers read + lost): "
                       f"{lo['answered_minus_accounted']:+d}.")]
    wk = res.get("wakeups")
    if wk:
        head = ("| round | wakeup_bytes | answers | kp_dns_ingress ns per answer | "
                "kp_dns_egress ns per answer |")
        lines += ["", "Forced wake-ups (DnsProbe read every 50 ms, not waiting on its ring):", "",
                  head, "|---:|---:|---:|---:|---:|"]
        lines += [f"| {w['round'] + 1} | {w['wakeup_bytes']:,} | {w['answers']:,} | "
                  f"{w['ingress_ns_per_answer']:,} | {w['egress_ns_per_answer']:,} |"
                  for w in wk]
    foreign: dict[str, int] = {}
    for part in (res.get("baseline"), res["agent_phase"], res.get("lossy")):
        for name, n in ((part or {}).get("foreign_bpf") or {}).items():
            foreign[name] = max(foreign.get(name, 0), n)
    if foreign:
        lines += ["", ("Other BPF programs on the same hooks during the run (another agent or "
                       "test on this machine; they run on every packet here too): "
                       + ", ".join(f"{n} x{c}" for n, c in sorted(foreign.items())) + ".")]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[-1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=25000, help="queries/s offered (0: max)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of flood (max 60)")
    p.add_argument("--threads", type=int, default=1, help="generator threads (each + a reader)")
    p.add_argument("--sockets", type=int, default=16, help="UDP sockets per generator thread")
    p.add_argument("--idle", type=float, default=3.0,
                   help="seconds of the agent without flood (its idle CPU, for comparison)")
    p.add_argument("--sample-every", type=float, default=1.0,
                   help="seconds between readings of the agent")
    p.add_argument("--lossy-ring-kib", type=int, default=64,
                   help="ring size for the losses phase (0 to skip)")
    p.add_argument("--lossy-duration", type=float, default=3.0)
    p.add_argument("--wakeup-rounds", type=int, default=0,
                   help="rounds of the forced wake-up comparison (needs bpf_stats; 0 to skip)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the same flood without the agent (dnsmasq's own rate)")
    p.add_argument("--no-bpf-stats", dest="bpf_stats", action="store_false",
                   help="leave kernel.bpf_stats_enabled alone (no BPF run-time figures)")
    p.add_argument("--out", type=Path, default=kb.OUT)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (BPF, network namespaces); run with sudo", file=sys.stderr)
        return 2
    if (not 0 < args.duration <= 60 or not 0 < args.lossy_duration <= 60 or args.rate < 0
            or not 0 <= args.wakeup_rounds <= 5):
        print("bench: --duration and --lossy-duration must be in (0, 60], --wakeup-rounds "
              "in 0..5", file=sys.stderr)
        return 2
    if args.lossy_ring_kib and (args.lossy_ring_kib & (args.lossy_ring_kib - 1)
                                or args.lossy_ring_kib < 4):
        print("bench: --lossy-ring-kib must be a power of two >= 4", file=sys.stderr)
        return 2
    for tool in ("dnsmasq", "bpftool", "ip", os.environ.get("CC", "cc")):
        if not shutil.which(tool):
            print(f"bench: {tool} not found (apt install dnsmasq-base bpftool iproute2 gcc)",
                  file=sys.stderr)
            return 2
    kb.build_flood()
    kb.install_signal_handlers()
    pair = kb.NetnsPair(CLIENT_NS, SERVER_NS, CLIENT_IP, SERVER_IP)
    tmp = Path(tempfile.mkdtemp(prefix="kpb-dns-"))
    dnsmasq: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {}
    old_stats = kb.sysctl("kernel.bpf_stats_enabled")
    try:
        if args.bpf_stats:
            # Two clock reads more per BPF program run, host-wide; restored below.
            kb.sysctl("kernel.bpf_stats_enabled", 1)
        pair.create()
        dnsmasq = start_dnsmasq(tmp)
        wait_dns_ready(args, dnsmasq, tmp)
        version = kb.run(["dnsmasq", "--version"]).stdout.split("\n", 1)[0]
        base = None
        if args.baseline:
            base = baseline_phase(args, tmp)
            kb.log(f"baseline (no agent): offered {base['flood']['sent_per_s']:,.0f} q/s, "
                   f"answered {base['flood']['answers_per_s']:,.0f} q/s")
        ph = agent_phase(args, tmp)
        summary = summarise_agent(ph)
        kb.log(f"agent phase: offered {summary['offered_qps']:,} q/s, answered "
               f"{summary['answered_qps']:,} q/s, lost {summary['kernel']['ringbuf_full']}, "
               f"agent up {summary['agent_alive_throughout']}, VmHWM "
               f"{summary['agent_vmhwm_mib']} MiB")
        lossy = None
        if args.lossy_ring_kib:
            lossy = lossy_phase(args, tmp, pair.inode(CLIENT_NS))
            kb.log(f"lossy phase: received {lossy['received_answers_client_netns']:,}, lost "
                   f"{lossy['kernel']['ringbuf_full']:,}")
        wakeups = wakeup_phase(args, tmp) if args.wakeup_rounds and args.bpf_stats else None
        result = {"environment": kb.environment(), "args": vars(args) | {"out": str(args.out)},
                  "dnsmasq": version.replace("Dnsmasq version ", "").split()[0],
                  "summary": summary, "baseline": base, "agent_phase": ph, "lossy": lossy,
                  "wakeups": wakeups}
    finally:
        with kb.signals_ignored():
            kb.sysctl("kernel.bpf_stats_enabled", old_stats)
            if dnsmasq is not None:
                kb.stop_process(dnsmasq, signal.SIGTERM, 5)
            left = pair.delete()
            shutil.rmtree(tmp, ignore_errors=True)
            if left:
                kb.log("could not remove: " + "; ".join(left))
    kb.write_results("dns_flood", result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except kb.Interrupted as exc:
        kb.log(f"interrupted ({exc}); namespaces and processes removed")
        sys.exit(130)
