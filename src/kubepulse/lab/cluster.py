"""``lab up``, ``lab down`` and ``lab status``: build, remove and inspect the lab cluster.

Everything created here is named with ``topology.PREFIX`` (netns, links) or
``topology.NFT_PREFIX`` (nftables tables), and ``down()`` finds leftovers by those prefixes as
well as through the state directory, so it cleans up after a crash too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubepulse.enrich.inventory import Host, Inventory, Node, Pod, Service, ServicePort
from kubepulse.errors import ConfigError, KubepulseError
from kubepulse.lab import procs, sh, topology
from kubepulse.lab.programs.common import dns_lookup
from kubepulse.lab.topology import PREFIX, Plan, PodPlan

DEFAULT_STATE_DIR = Path(os.environ.get("KUBEPULSE_LAB_STATE", "/run/kubepulse-lab"))
DEFAULT_TRAFFIC_SECONDS = 4 * 3600.0
READY_TIMEOUT_S = 30.0
SERVER_MAX_CONNS = 64
KEEP_ON_DOWN = ("labels.jsonl",)  # ground truth outlives the lab


@dataclass
class Lab:
    """A lab that is up: its plan and where its state lives."""

    state_dir: Path
    plan: Plan
    created_at: str = ""
    traffic_seconds: float = DEFAULT_TRAFFIC_SECONDS

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.json"

    @property
    def labels_path(self) -> Path:
        return self.state_dir / "labels.jsonl"

    def pod_dir(self, pod: PodPlan) -> Path:
        return self.state_dir / "pods" / f"{pod.namespace}-{pod.name}"

    def control_file(self, pod: PodPlan) -> Path:
        return self.pod_dir(pod) / "mode"

    def inventory(self) -> Inventory:
        from kubepulse.enrich import inventory

        return inventory.load(self.inventory_path)

    @classmethod
    def load(cls, state_dir: Path = DEFAULT_STATE_DIR) -> Lab:
        try:
            meta = json.loads((state_dir / "lab.json").read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"no lab is up (no {state_dir / 'lab.json'}); run `kubepulse lab up` first."
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"the lab state {state_dir / 'lab.json'} is unreadable ({exc}); "
                "run `kubepulse lab down` and `kubepulse lab up` again."
            ) from None
        p = topology.plan(meta["cidr"], int(meta["nodes"]))
        return cls(state_dir, p, meta.get("created_at", ""), float(meta["traffic_seconds"]))


# --------------------------------------------------------------------------- inspection


def lab_netns() -> list[str]:
    """Every network namespace named with the lab prefix, whoever made it."""
    names = set()
    out = sh.ip("netns", "list", check=False)
    for line in out.splitlines():
        if line.split() and line.split()[0].startswith(PREFIX):
            names.add(line.split()[0])
    run_netns = Path("/run/netns")
    if run_netns.is_dir():
        names.update(p.name for p in run_netns.iterdir() if p.name.startswith(PREFIX))
    return sorted(names)


def host_links() -> list[str]:
    out = sh.ip("-j", "link", "show", check=False)
    try:
        links = json.loads(out or "[]")
    except json.JSONDecodeError:
        return []
    return [str(link["ifname"]) for link in links if str(link["ifname"]).startswith(PREFIX)]


def host_nft_tables() -> list[tuple[str, str]]:
    return [(f, t) for f, t in sh.nft_tables() if t.startswith(topology.NFT_PREFIX)]


def check_cidr_free(cidr: str) -> None:
    """Refuse a lab CIDR that overlaps any route of the host (other than the lab's own)."""
    net = ipaddress.ip_network(cidr)
    out = sh.ip("-4", "-j", "route", "show", "table", "all", check=False)
    try:
        routes = json.loads(out or "[]")
    except json.JSONDecodeError:
        routes = []
    for route in routes:
        dst, dev = str(route.get("dst", "")), str(route.get("dev", ""))
        if not dst or dst == "default" or dev.startswith(PREFIX):
            continue
        try:
            other = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if isinstance(other, ipaddress.IPv4Network) and net.overlaps(other):
            raise ConfigError(
                f"the lab CIDR {cidr} overlaps the host route {dst} on {dev or '?'}, so lab "
                "traffic could leave this machine; pick a free private range with --cidr "
                "(e.g. --cidr 10.251.0.0/16)."
            )


def is_up(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    try:
        lab = Lab.load(state_dir)
    except ConfigError:
        return False
    present = set(lab_netns())
    if any(ns not in present for ns in lab.plan.netns_names()):
        return False
    return all(procs.alive(pid) for pid in procs.recorded(state_dir).values())


# --------------------------------------------------------------------------- up


def up(
    cidr: str = topology.DEFAULT_CIDR,
    nodes: int = topology.DEFAULT_NODES,
    state_dir: Path = DEFAULT_STATE_DIR,
    traffic_seconds: float = DEFAULT_TRAFFIC_SECONDS,
) -> Lab:
    """Build the lab, or return the one already up. Safe to run twice."""
    sh.require_root()
    sh.require_tools()
    plan = topology.plan(cidr, nodes)
    if is_up(state_dir):
        lab = Lab.load(state_dir)
        if (lab.plan.cidr, len(lab.plan.nodes)) != (plan.cidr, nodes):
            raise ConfigError(
                f"a lab with CIDR {lab.plan.cidr} and {len(lab.plan.nodes)} nodes is already up; "
                "run `kubepulse lab down` first to build a different one."
            )
        return lab
    down(state_dir)  # leftovers of a crashed or half-built lab
    check_cidr_free(plan.cidr)
    state_dir.mkdir(parents=True, exist_ok=True)
    lab = Lab(state_dir, plan, datetime.now(UTC).isoformat(timespec="seconds"), traffic_seconds)
    (state_dir / "lab.json").write_text(
        json.dumps(
            {
                "cidr": plan.cidr,
                "nodes": len(plan.nodes),
                "created_at": lab.created_at,
                "traffic_seconds": traffic_seconds,
            }
        )
        + "\n"
    )
    try:
        _build_network(plan)
        _start_servers(lab)
        _start_clients(lab)
        lab.inventory_path.write_text(build_inventory(lab).to_json())
    except BaseException:
        down(state_dir)
        raise
    return lab


def _build_network(plan: Plan) -> None:
    for ns in plan.netns_names():
        sh.ip("netns", "add", ns)
        sh.ip("link", "set", "lo", "up", netns=ns)
    router = topology.ROUTER_NETNS
    sh.sysctl(router, "net.ipv4.ip_forward", "1")
    # The host's one way in, for the agent and for readiness checks. No forwarding on the host.
    sh.ip("link", "add", topology.HOST_LINK, "type", "veth", "peer", "name",
          topology.ROUTER_HOST_LINK, "netns", router)
    sh.ip("addr", "add", f"{plan.host_ip}/30", "dev", topology.HOST_LINK)
    sh.ip("link", "set", topology.HOST_LINK, "up")
    sh.ip("addr", "add", f"{plan.router_host_ip}/30", "dev", topology.ROUTER_HOST_LINK,
          netns=router)
    sh.ip("link", "set", topology.ROUTER_HOST_LINK, "up", netns=router)
    for node in plan.nodes:
        sh.ip("link", "add", node.router_link, "type", "veth", "peer", "name",
              topology.NODE_UPLINK, "netns", node.netns, netns=router)
        sh.ip("addr", "add", f"{node.router_ip}/30", "dev", node.router_link, netns=router)
        sh.ip("link", "set", node.router_link, "up", netns=router)
        sh.ip("route", "add", node.pod_cidr, "via", node.uplink_ip, netns=router)
        sh.ip("addr", "add", f"{node.uplink_ip}/30", "dev", topology.NODE_UPLINK,
              netns=node.netns)
        sh.ip("link", "set", topology.NODE_UPLINK, "up", netns=node.netns)
        sh.ip("link", "add", topology.BRIDGE, "type", "bridge", netns=node.netns)
        prefixlen = ipaddress.ip_network(node.pod_cidr).prefixlen
        sh.ip("addr", "add", f"{node.gateway}/{prefixlen}", "dev", topology.BRIDGE,
              netns=node.netns)
        sh.ip("link", "set", topology.BRIDGE, "up", netns=node.netns)
        sh.ip("route", "add", plan.cidr, "via", node.router_ip, netns=node.netns)
        sh.sysctl(node.netns, "net.ipv4.ip_forward", "1")
    by_name = {n.name: n for n in plan.nodes}
    for pod in plan.pods:
        node = by_name[pod.node]
        sh.ip("link", "add", pod.node_link, "type", "veth", "peer", "name", "eth0",
              "netns", pod.netns, netns=node.netns)
        sh.ip("link", "set", pod.node_link, "master", topology.BRIDGE, "up", netns=node.netns)
        prefixlen = ipaddress.ip_network(node.pod_cidr).prefixlen
        sh.ip("addr", "add", f"{pod.ip}/{prefixlen}", "dev", "eth0", netns=pod.netns)
        sh.ip("link", "set", "eth0", "up", netns=pod.netns)
        sh.ip("route", "add", plan.cidr, "via", node.gateway, netns=pod.netns)
    sh.ip("route", "add", plan.cidr, "via", plan.router_host_ip, "dev", topology.HOST_LINK)


def _nginx_conf(pod: PodPlan, d: Path) -> str:
    return f"""\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {{
        listen {pod.ip}:{pod.port} backlog=128;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def _start_servers(lab: Lab) -> None:
    plan = lab.plan
    for pod in plan.pods:
        if not pod.server:
            continue
        d = lab.pod_dir(pod)
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        name = f"srv-{pod.namespace}-{pod.name}"
        if pod.server == "python":
            lab.control_file(pod).write_text("normal\n")
            argv = procs.python_argv(
                "server", "--listen", f"{pod.ip}:{pod.port}", "--control",
                str(lab.control_file(pod)), "--max-conns", str(SERVER_MAX_CONNS),
                "--ready", str(d / "ready"),
            )
        elif pod.server == "nginx":
            (d / "nginx.conf").write_text(_nginx_conf(pod, d))
            argv = [sh.tool("nginx"), "-p", str(d), "-e", str(d / "nginx-error.log"),
                    "-c", str(d / "nginx.conf"), "-g", "daemon off;"]
        else:  # dnsmasq: the real kube-dns
            hosts = "".join(
                f"{ip} {svc.fqdn}\n" for svc in plan.services for ip in svc.endpoints
            )
            (d / "hosts").write_text(hosts)
            argv = [
                sh.tool("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null",
                "--no-resolv", "--no-hosts", f"--addn-hosts={d / 'hosts'}",
                "--local=/cluster.local/", "--domain-needed", "--bind-interfaces",
                f"--listen-address={pod.ip}", "--listen-address=127.0.0.1", "--port=53",
                f"--pid-file={d / 'dnsmasq.pid'}", "--user=root", "--group=root",
                "--log-facility=-", "--cache-size=1000",
            ]
        procs.spawn(lab.state_dir, name, pod.netns, argv)
    for pod in plan.pods:
        if pod.server:
            _wait_ready(lab, pod)


def _tcp_ok(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def _dns_ok(server: str, name: str) -> bool:
    try:
        rcode, addrs, _ = dns_lookup(name, server, 0.5)
    except OSError:
        return False
    return rcode == "NOERROR" and bool(addrs)


def _wait_ready(lab: Lab, pod: PodPlan) -> None:
    name = f"srv-{pod.namespace}-{pod.name}"
    pid = procs.recorded(lab.state_dir)[name]
    if pod.server == "dnsmasq":
        probe_name = lab.plan.services[0].fqdn
        ok = procs.wait_for(lambda: _dns_ok(pod.ip, probe_name) or not procs.alive(pid),
                            READY_TIMEOUT_S)
        ok = ok and _dns_ok(pod.ip, probe_name)
    else:
        ok = procs.wait_for(lambda: _tcp_ok(pod.ip, pod.port) or not procs.alive(pid),
                            READY_TIMEOUT_S)
        ok = ok and procs.alive(pid)
    if not ok:
        log = lab.state_dir / "logs" / f"{name}.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise KubepulseError(
            f"the {pod.server} server of pod {pod.namespace}/{pod.name} did not become ready "
            f"at {pod.ip}:{pod.port} within {READY_TIMEOUT_S:.0f} s "
            f"({tail[0] if tail else 'no log output'}); see {log}."
        )


def _start_clients(lab: Lab) -> None:
    plan = lab.plan
    started = []
    for pod in plan.pods:
        if not pod.calls:
            continue
        ready = lab.pod_dir(pod) / "client-ready"
        lab.pod_dir(pod).mkdir(parents=True, exist_ok=True)
        ready.unlink(missing_ok=True)
        calls = []
        for call in pod.calls:
            fqdn = f"{call.service}.{call.namespace}.{topology.CLUSTER_DOMAIN}"
            calls += ["--call", f"{fqdn}:{call.port}:{call.pattern}"]
        argv = procs.python_argv(
            "client", "--dns", plan.dns_ip, *calls, "--max-seconds",
            str(lab.traffic_seconds), "--ready", str(ready),
        )
        procs.spawn(lab.state_dir, f"cli-{pod.namespace}-{pod.name}", pod.netns, argv)
        started.append(ready)
    if not procs.wait_for(lambda: all(r.exists() for r in started), READY_TIMEOUT_S):
        raise KubepulseError(
            f"the lab's traffic clients did not start within {READY_TIMEOUT_S:.0f} s; "
            f"see the logs in {lab.state_dir / 'logs'}."
        )


def build_inventory(lab: Lab) -> Inventory:
    plan = lab.plan
    return Inventory(
        cidr=plan.cidr,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        host=Host(link=topology.HOST_LINK, ip=plan.host_ip),
        nodes=[
            Node(
                name=n.name,
                netns=f"/run/netns/{n.netns}",
                netns_inode=procs.netns_inode(f"/run/netns/{n.netns}"),
                pod_cidr=n.pod_cidr,
            )
            for n in plan.nodes
        ],
        pods=[
            Pod(
                name=p.name,
                namespace=p.namespace,
                workload=p.workload,
                node=p.node,
                ip=p.ip,
                netns=f"/run/netns/{p.netns}",
                netns_inode=procs.netns_inode(f"/run/netns/{p.netns}"),
                labels=p.labels,
            )
            for p in plan.pods
        ],
        services=[
            Service(
                name=s.name,
                namespace=s.namespace,
                endpoints=list(s.endpoints),
                ports=[ServicePort(name="dns" if s.port == 53 else "tcp", port=s.port,
                                   protocol="UDP" if s.port == 53 else "TCP")],
            )
            for s in plan.services
        ],
    )


# --------------------------------------------------------------------------- down


def down(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, int]:
    """Remove everything the lab made; also what a crashed run left. Returns what it removed."""
    sh.require_root()
    names = lab_netns()
    inodes = []
    for ns in names:
        try:
            inodes.append(procs.netns_inode(f"/run/netns/{ns}"))
        except OSError:
            continue
    pids = set(procs.recorded(state_dir).values()) if state_dir.exists() else set()
    pids = {p for p in pids if _in_lab(p, inodes)} | set(procs.pids_in_netns(inodes))
    procs.stop(pids)
    for ns in names:
        sh.ip("netns", "del", ns, check=False)
    links = host_links()
    for link in links:
        sh.ip("link", "del", link, check=False)
    tables = host_nft_tables()
    for family, table in tables:
        sh.nft_delete_table(family, table)
    if state_dir.exists():
        for entry in state_dir.iterdir():
            if entry.name in KEEP_ON_DOWN:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return {"processes": len(pids), "netns": len(names), "links": len(links),
            "nft_tables": len(tables)}


def _in_lab(pid: int, inodes: list[int]) -> bool:
    """A recorded PID is ours only while it still lives in a lab netns (PIDs get reused)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino in inodes
    except OSError:
        return False


# --------------------------------------------------------------------------- status


def status(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any]:
    present = lab_netns()
    out: dict[str, Any] = {"state_dir": str(state_dir), "netns_present": present}
    try:
        lab = Lab.load(state_dir)
    except ConfigError:
        out["up"] = False
        out["leftovers"] = bool(present or host_links() or host_nft_tables())
        return out
    expected = lab.plan.netns_names()
    out["netns_missing"] = [ns for ns in expected if ns not in present]
    proc_state = {name: procs.alive(pid) for name, pid in procs.recorded(state_dir).items()}
    out["processes"] = proc_state
    pods = []
    for pod in lab.plan.pods:
        healthy: bool | None = None
        if pod.server == "dnsmasq":
            healthy = _dns_ok(pod.ip, lab.plan.services[0].fqdn)
        elif pod.server:
            healthy = _tcp_ok(pod.ip, pod.port)
        faults = [t for _, t in sh.nft_tables(netns=pod.netns) if t.startswith(topology.NFT_PREFIX)]
        mode = ""
        if pod.server == "python" and lab.control_file(pod).exists():
            mode = lab.control_file(pod).read_text().strip()
        pods.append({"pod": f"{pod.namespace}/{pod.name}", "node": pod.node, "ip": pod.ip,
                     "server": pod.server or "-", "port": pod.port, "serving": healthy,
                     "mode": mode, "fault_tables": faults})
    out["pods"] = pods
    out["up"] = not out["netns_missing"] and all(proc_state.values())
    out["inventory"] = str(lab.inventory_path)
    out["created_at"] = lab.created_at
    out["cidr"] = lab.plan.cidr
    out["checked_at"] = time.time()
    return out
