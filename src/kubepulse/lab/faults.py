"""Real faults, injected into the lab's kernel or processes, each recorded as ground truth.

``start()`` applies a fault and returns an :class:`ActiveFault`; its ``stop()`` undoes it and
appends the ground-truth label. Every fault also leaves a record in ``<state>/faults/`` listing
what it changed, so ``clear()`` (and ``lab down``) can undo a fault whose process died.

Where each fault lives (tables are ``kubepulse_lab_<id>``, in the named lab netns only):

| fault           | mechanism                                                                 |
|-----------------|---------------------------------------------------------------------------|
| refused         | the target's server closes its listening socket (control file)            |
| blackhole       | nft on the target's node bridge: drop SYNs to its port                    |
| loss            | nft on the target's node bridge: ``numgen random mod 100 < N drop``, both ways |
| reset           | nft in the target pod: every non-SYN segment is answered with RST        |
| policy_deny     | nft in the target pod: drop everything from the source workload's pods    |
| dns_latency     | dnsproxy in the kube-dns pod + nft redirect of port 53 to it (slow)       |
| dns_nxdomain    | same proxy answering NXDOMAIN                                             |
| dns_servfail    | same proxy answering SERVFAIL                                             |
| dns_timeout     | same proxy reading every query and answering none (a hung resolver)       |
| conn_flood      | a bounded burst of new connections from the source pod                    |
| pool_exhaustion | the source pod leaks connections until the server's capacity is used up   |
| listen_overflow | the target's server stops accepting, backlog 2: the accept queue overflows |
| partition       | nft in the router: drop forwarding between the two nodes' links          |
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubepulse.errors import ConfigError, KubepulseError
from kubepulse.lab import labels, procs, sh, topology
from kubepulse.lab.cluster import SERVER_MAX_CONNS, Lab
from kubepulse.lab.labels import GroundTruth, Selector
from kubepulse.lab.topology import NodePlan, PodPlan

log = logging.getLogger(__name__)

DNS_PROXY_PORT = 5354
DEFAULT_MAX_SECONDS = 600.0
ACK_TIMEOUT_S = 5.0

DESCRIPTIONS: dict[str, str] = {
    "refused": "the destination's listener is gone: connects are refused",
    "blackhole": "SYNs to the destination are dropped: connects time out",
    "loss": "a percentage of packets between source and destination is dropped",
    "reset": "established connections to the destination are torn down by RST",
    "policy_deny": "all traffic from the source workload to the destination is dropped",
    "dns_latency": "kube-dns answers late",
    "dns_nxdomain": "kube-dns answers NXDOMAIN",
    "dns_servfail": "kube-dns answers SERVFAIL",
    "dns_timeout": "kube-dns does not answer",
    "conn_flood": "a sudden burst of new connections from the source pod",
    "pool_exhaustion": "the source pod leaks connections until the server is full",
    "listen_overflow": "the destination stops accepting; its accept queue overflows",
    "partition": "the destination node loses its link to the source node(s)",
}

# Two different targets per fault, as (target, source); the suites inject each at least twice.
DEFAULT_TARGETS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "refused": (("shop/api/api-0", None), ("shop/cache/cache-1", None)),
    "blackhole": (("shop/db/db-0", None), ("shop/api/api-1", None)),
    "loss": (("shop/api/api-1", "shop/frontend"), ("shop/frontend/frontend-0", "shop/loadgen")),
    "reset": (("shop/db/db-0", "shop/api"), ("shop/api/api-0", "shop/frontend")),
    "policy_deny": (("shop/cache", "shop/api"), ("shop/api", "shop/frontend")),
    "dns_latency": (("kube-system/kube-dns", "shop/frontend"), ("kube-system/kube-dns", "shop/api")),
    "dns_nxdomain": (("kube-system/kube-dns", "shop/api"), ("kube-system/kube-dns", "shop/frontend")),
    "dns_servfail": (("kube-system/kube-dns", "shop/frontend"), ("kube-system/kube-dns", "shop/api")),
    "dns_timeout": (("kube-system/kube-dns", "shop/api"), ("kube-system/kube-dns", "shop/loadgen")),
    "conn_flood": (("shop/frontend", "shop/loadgen/loadgen-0"), ("shop/api", "shop/frontend/frontend-1")),
    "pool_exhaustion": (("shop/api/api-0", "shop/frontend/frontend-0"), ("shop/db", "shop/api/api-1")),
    "listen_overflow": (("shop/api/api-1", None), ("shop/cache/cache-0", None)),
    "partition": (("node:node2", "node:node1"), ("node:node1", "node:node2")),
}


@dataclass
class Target:
    """A resolved ``--target``/``--source``: some pods, or a node."""

    selector: Selector
    pods: list[PodPlan] = field(default_factory=list)
    node: NodePlan | None = None

    @property
    def ips(self) -> list[str]:
        return [p.ip for p in self.pods]


def resolve(lab: Lab, text: str | None) -> Target:
    """``NS/WORKLOAD``, ``NS/WORKLOAD/POD`` or ``node:NAME``; None or ``*`` means any."""
    plan = lab.plan
    if text is None or text in ("", "*"):
        return Target(Selector())
    if text.startswith("node:"):
        name = text[5:]
        node = next((n for n in plan.nodes if n.name == name), None)
        if node is None:
            raise ConfigError(
                f"there is no lab node {name!r}; pick one of "
                f"{', '.join('node:' + n.name for n in plan.nodes)}."
            )
        pods = [p for p in plan.pods if p.node == name]
        return Target(Selector(node=name), pods, node)
    parts = text.split("/")
    if len(parts) not in (2, 3):
        raise ConfigError(
            f"target {text!r} is not NS/WORKLOAD, NS/WORKLOAD/POD or node:NAME; "
            "e.g. --target shop/api or --target shop/api/api-0."
        )
    ns, wl = parts[0], parts[1]
    pods = [p for p in plan.pods if p.namespace == ns and p.workload == wl]
    if len(parts) == 3:
        pods = [p for p in pods if p.name == parts[2]]
    if not pods:
        known = sorted({f"{p.namespace}/{p.workload}" for p in plan.pods})
        raise ConfigError(f"target {text!r} matches no lab pod; workloads are: {', '.join(known)}.")
    service = wl if any(s.name == wl and s.namespace == ns for s in plan.services) else None
    sel = Selector(namespace=ns, workload=wl, pod=parts[2] if len(parts) == 3 else None,
                   service=service)
    return Target(sel, pods)


def callers(lab: Lab, target: Target) -> Target:
    """The workloads whose steady traffic reaches ``target`` (the default source)."""
    wl = target.selector.workload
    pods = [p for p in lab.plan.pods if any(c.service == wl for c in p.calls)]
    if not pods:
        return Target(Selector())
    first = pods[0]
    return Target(Selector(namespace=first.namespace, workload=first.workload),
                  [p for p in pods if p.workload == first.workload])


@dataclass
class ActiveFault:
    lab: Lab
    id: str
    type: str
    target: Target
    source: Target
    params: dict[str, Any]
    start_epoch: float
    record: dict[str, Any]
    stopped: GroundTruth | None = None

    def stop(self, labels_path: Path | None = None) -> GroundTruth:
        """Undo the fault and append its ground truth to ``labels_path`` (default: the lab's)."""
        if self.stopped is not None:
            return self.stopped
        _undo(self.lab, self.record)
        end = time.time()
        label = labels.make(self.id, self.type, self.source.selector, self.target.selector,
                            self.start_epoch, end, self.params)
        labels.append(labels_path or self.lab.labels_path, label)
        (self.lab.state_dir / "faults" / f"{self.id}.json").unlink(missing_ok=True)
        self.stopped = label
        return label


def start(
    lab: Lab,
    fault: str,
    target: str | None = None,
    source: str | None = None,
    *,
    percent: int = 30,
    delay_ms: int = 1000,
    rate: float = 300.0,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> ActiveFault:
    """Apply ``fault`` now. ``target``/``source`` default to the first of DEFAULT_TARGETS."""
    sh.require_root("kubepulse lab fault")
    sh.require_lab_extra()  # dns_latency's proxy speaks DNS with dnslib
    if fault not in labels.FAULT_ALERTS:
        raise ConfigError(f"unknown fault {fault!r}; choose one of {', '.join(labels.FAULT_TYPES)}.")
    if target is None:
        target, default_source = DEFAULT_TARGETS[fault][0]
        source = source if source is not None else default_source
    tgt = resolve(lab, target)
    src = resolve(lab, source)
    fid = f"{fault}-{secrets.token_hex(3)}"
    record: dict[str, Any] = {"id": fid, "type": fault, "tables": [], "controls": [],
                              "procs": []}
    (lab.state_dir / "faults").mkdir(parents=True, exist_ok=True)
    rec_path = lab.state_dir / "faults" / f"{fid}.json"
    params: dict[str, Any] = {}
    apply = _APPLY[fault]
    ctx = _Ctx(lab, fid, record, rec_path, max_seconds)
    try:
        src = apply(ctx, tgt, src, params, percent=percent, delay_ms=delay_ms, rate=rate)
    except BaseException:
        _undo(lab, record)
        rec_path.unlink(missing_ok=True)
        raise
    return ActiveFault(lab, fid, fault, tgt, src, params, ctx.started or time.time(), record)


@dataclass
class _Ctx:
    lab: Lab
    id: str
    record: dict[str, Any]
    path: Path
    max_seconds: float
    started: float = 0.0

    @property
    def table(self) -> str:
        return f"{topology.NFT_PREFIX}_{self.id.replace('-', '_')}"

    def save(self) -> None:
        self.path.write_text(json.dumps(self.record) + "\n")

    def nft(self, netns: str, body: str, family: str = "inet") -> None:
        self.record["tables"].append([netns, self.table, family])
        self.save()
        sh.nft(f"table {family} {self.table} {{\n{body}\n}}\n", netns=netns)
        self.mark()

    def control(self, pod: PodPlan, mode: str) -> None:
        path = self.lab.control_file(pod)
        self.record["controls"].append(str(path))
        self.save()
        _set_mode(path, mode)
        self.mark()

    def spawn(self, name: str, netns: str, argv: list[str], ready: Path) -> None:
        ready.unlink(missing_ok=True)
        full = f"fault-{self.id}-{name}"
        self.record["procs"].append(full)
        self.save()
        pid = procs.spawn(self.lab.state_dir, full, netns, argv)
        if not procs.wait_for(lambda: ready.exists() or not procs.alive(pid), ACK_TIMEOUT_S) \
                or not ready.exists():
            raise KubepulseError(
                f"the {name} helper of fault {self.id} did not start; see "
                f"{self.lab.state_dir / 'logs' / (full + '.log')}."
            )
        self.mark()

    def mark(self) -> None:
        """The fault is in force from the first change that took effect."""
        if not self.started:
            self.started = time.time()


def _set_mode(control: Path, mode: str) -> None:
    ack = control.with_name(control.name + ".ack")
    control.write_text(mode + "\n")
    if not procs.wait_for(
        lambda: ack.exists() and ack.read_text().strip() == mode, ACK_TIMEOUT_S
    ):
        raise KubepulseError(
            f"the lab server behind {control} did not switch to {mode!r} within "
            f"{ACK_TIMEOUT_S:.0f} s; check `kubepulse lab status`."
        )


def _undo(lab: Lab, record: dict[str, Any]) -> None:
    """Undo every change of one fault; a step that fails is logged and the rest still run."""
    for entry in reversed(record.get("tables", [])):
        netns, table = entry[0], entry[1]
        sh.nft_delete_table(entry[2] if len(entry) > 2 else "inet", table, netns=netns)
    for control in record.get("controls", []):
        path = Path(control)
        if path.parent.exists():
            try:
                _set_mode(path, "normal")
            except KubepulseError as exc:
                log.warning("undoing fault %s: %s", record.get("id"), exc)
    for name in record.get("procs", []):
        procs.stop_one(lab.state_dir, name)


def clear(lab: Lab) -> int:
    """Undo every fault still recorded as active; returns how many."""
    n = 0
    for rec_path in sorted((lab.state_dir / "faults").glob("*.json")):
        try:
            record = json.loads(rec_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        _undo(lab, record)
        rec_path.unlink(missing_ok=True)
        n += 1
    return n


# --------------------------------------------------------------------------- the faults

Apply = Callable[..., Target]


def _need_servers(tgt: Target, kinds: tuple[str, ...], fault: str) -> list[PodPlan]:
    pods = [p for p in tgt.pods if p.server in kinds]
    if not pods:
        raise ConfigError(
            f"fault {fault} needs a target served by {' or '.join(kinds)}; "
            f"{tgt.selector} is not (try shop/api, shop/db or shop/cache)."
        )
    return pods


def _saddr(src: Target) -> str:
    return f"ip saddr {{ {', '.join(src.ips)} }} " if src.ips else ""


def _daddr(src: Target) -> str:
    return f"ip daddr {{ {', '.join(src.ips)} }} " if src.ips else ""


def _chain(name: str, hook: str, rules: list[str], kind: str = "filter",
           prio: str = "filter") -> str:
    body = "\n".join(f"    {r}" for r in rules)
    return f"  chain {name} {{\n    type {kind} hook {hook} priority {prio}; policy accept;\n{body}\n  }}"


def _refused(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any], **_: Any) -> Target:
    pods = _need_servers(tgt, ("python",), "refused")
    params.update(pods=[p.name for p in pods], port=pods[0].port)
    for pod in pods:
        ctx.control(pod, "closed")
    return src


def _listen_overflow(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any],
                     **_: Any) -> Target:
    pods = _need_servers(tgt, ("python",), "listen_overflow")
    params.update(pods=[p.name for p in pods], port=pods[0].port, backlog=2)
    for pod in pods:
        ctx.control(pod, "stalled")
    return src


def _on_path(ctx: _Ctx, pods: list[PodPlan], to_pod: str, from_pod: str) -> None:
    """Rules on the wire to and from each pod: the bridge of the pod's node, which every frame
    to or from the pod crosses (bridged from a neighbour, or routed in from the other node).
    Like a faulty link or a dead peer, this is outside every pod: the pods' own kernels see
    nothing but missing packets, which is what these faults must look like."""
    for node in {p.node for p in pods}:
        mine = [p for p in pods if p.node == node]
        ips = ", ".join(p.ip for p in mine)
        rules_in = [f"ip daddr {{ {ips} }} {to_pod}"]
        rules_out = [f"ip saddr {{ {ips} }} {from_pod}"] if from_pod else []
        netns = next(n.netns for n in ctx.lab.plan.nodes if n.name == node)
        ctx.nft(netns, "\n".join((
            _chain("forward", "forward", rules_in + rules_out),
            _chain("output", "output", rules_in + rules_out),
        )), family="bridge")


def _blackhole(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any],
               **_: Any) -> Target:
    pods = _need_servers(tgt, ("python", "nginx"), "blackhole")
    params.update(pods=[p.name for p in pods], port=pods[0].port)
    _on_path(ctx, pods, f"{_saddr(src)}tcp dport {pods[0].port} tcp flags & (syn | ack) == syn "
             "drop", "")
    return src


def _loss(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any], *, percent: int,
          **_: Any) -> Target:
    if not 1 <= percent <= 100:
        raise ConfigError(f"--percent must be 1 to 100, not {percent}.")
    params.update(pods=[p.name for p in tgt.pods], percent=percent)
    _on_path(ctx, tgt.pods, f"{_saddr(src)}numgen random mod 100 < {percent} drop",
             f"{_daddr(src)}numgen random mod 100 < {percent} drop")
    return src


def _reset(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any], **_: Any) -> Target:
    # The server itself resets, as one that crashes mid-request or closes with SO_LINGER 0
    # does: no packet filter, so the only evidence is the RSTs (a filter's reject would also
    # leave netfilter drops on the server's node, the evidence of a policy).
    pods = _need_servers(tgt, ("python",), "reset")
    params.update(pods=[p.name for p in pods], port=pods[0].port)
    for pod in pods:
        ctx.control(pod, " ".join(["resetting", *src.ips]))
    return src


def _policy_deny(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any],
                 **_: Any) -> Target:
    if not src.ips:
        src = callers(ctx.lab, tgt)
    if not src.ips:
        raise ConfigError("fault policy_deny needs --source (the workload to deny).")
    params.update(pods=[p.name for p in tgt.pods], denied=src.ips)
    for pod in tgt.pods:
        ctx.nft(pod.netns, _chain("input", "input", [f"{_saddr(src)}drop"]))
    return src


def _dns_pods(tgt: Target, fault: str) -> list[PodPlan]:
    return _need_servers(tgt, ("dnsmasq",), fault)


def _dns_proxy(mode: str, fault: str | None = None) -> Apply:
    def apply(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any], *, delay_ms: int,
              **_: Any) -> Target:
        pods = _dns_pods(tgt, fault or f"dns_{mode}")
        params.update(pods=[p.name for p in pods], mode=mode)
        if mode == "latency":
            params["delay_ms"] = delay_ms
        for pod in pods:
            ready = ctx.lab.state_dir / "faults" / f"{ctx.id}-{pod.name}.ready"
            argv = procs.python_argv(
                "dnsproxy", "--port", str(DNS_PROXY_PORT), "--mode", mode,
                "--delay-ms", str(delay_ms), "--max-seconds", str(ctx.max_seconds),
                "--ready", str(ready),
            )
            ctx.spawn(f"dnsproxy-{pod.name}", pod.netns, argv, ready)
            rule = f"{_saddr(src)}udp dport 53 redirect to :{DNS_PROXY_PORT}"
            ctx.nft(pod.netns, _chain("pre", "prerouting", [rule], "nat", "dstnat"))
        return src

    return apply


def _one_source(ctx: _Ctx, tgt: Target, src: Target, fault: str) -> Target:
    if not src.pods:
        src = callers(ctx.lab, tgt)
    if not src.pods:
        raise ConfigError(f"fault {fault} needs --source NS/WORKLOAD/POD (the client pod).")
    pod = src.pods[0]
    return Target(Selector(namespace=pod.namespace, workload=pod.workload, pod=pod.name), [pod])


def _conn_flood(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any], *, rate: float,
                **_: Any) -> Target:
    pods = _need_servers(tgt, ("python", "nginx"), "conn_flood")
    src = _one_source(ctx, tgt, src, "conn_flood")
    max_count = int(rate * ctx.max_seconds)
    params.update(pods=[p.name for p in pods], rate=rate, max_count=max_count)
    ready = ctx.lab.state_dir / "faults" / f"{ctx.id}.ready"
    argv = procs.python_argv(
        "burst", "flood", *(a for p in pods for a in ("--to", f"{p.ip}:{p.port}")),
        "--rate", str(rate), "--max-count", str(max_count),
        "--max-seconds", str(ctx.max_seconds), "--ready", str(ready),
    )
    ctx.spawn("flood", src.pods[0].netns, argv, ready)
    return src


def _pool_exhaustion(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any],
                     **_: Any) -> Target:
    pods = _need_servers(tgt, ("python",), "pool_exhaustion")
    src = _one_source(ctx, tgt, src, "pool_exhaustion")
    max_count = (SERVER_MAX_CONNS + 16) * len(pods)
    params.update(pods=[p.name for p in pods], max_count=max_count,
                  server_max_conns=SERVER_MAX_CONNS)
    ready = ctx.lab.state_dir / "faults" / f"{ctx.id}.ready"
    argv = procs.python_argv(
        "burst", "leak", *(a for p in pods for a in ("--to", f"{p.ip}:{p.port}")),
        "--rate", "80", "--max-count", str(max_count),
        "--max-seconds", str(ctx.max_seconds), "--ready", str(ready),
    )
    ctx.spawn("leak", src.pods[0].netns, argv, ready)
    return src


def _partition(ctx: _Ctx, tgt: Target, src: Target, params: dict[str, Any],
               **_: Any) -> Target:
    if tgt.node is None:
        raise ConfigError("fault partition needs --target node:NAME (e.g. node:node2).")
    others = [src.node] if src.node is not None else [
        n for n in ctx.lab.plan.nodes if n.name != tgt.node.name
    ]
    if not others or tgt.node in others:
        raise ConfigError("fault partition needs two different nodes (--source node:NAME).")
    rules = []
    for other in others:
        a, b = tgt.node.router_link, other.router_link
        rules += [f'iifname "{a}" oifname "{b}" drop', f'iifname "{b}" oifname "{a}" drop']
    params.update(nodes=[tgt.node.name, *(o.name for o in others)])
    ctx.nft(topology.ROUTER_NETNS, _chain("forward", "forward", rules))
    if src.node is None and len(others) == 1:
        src = Target(Selector(node=others[0].name), [], others[0])
    return src


_APPLY: dict[str, Apply] = {
    "refused": _refused,
    "blackhole": _blackhole,
    "loss": _loss,
    "reset": _reset,
    "policy_deny": _policy_deny,
    "dns_latency": _dns_proxy("latency"),
    "dns_nxdomain": _dns_proxy("nxdomain"),
    "dns_servfail": _dns_proxy("servfail"),
    "dns_timeout": _dns_proxy("silent", "dns_timeout"),
    "conn_flood": _conn_flood,
    "pool_exhaustion": _pool_exhaustion,
    "listen_overflow": _listen_overflow,
    "partition": _partition,
}
