"""The lab's shape, computed before anything is created: nodes, pods, services and addresses.

Pure: no I/O. ``plan()`` turns a CIDR and a node count into every name and address the lab
will use, so ``lab up``, ``lab down`` and the faults agree on them without asking the kernel.

Addressing inside the lab CIDR (a /16 to /22), one /24 per use:
  - subnet 0: point-to-point /30 links: host<->router, then router<->node N;
  - subnet N (1..nodes): the pod subnet of node N; ``.1`` is the node's bridge (the pods' gateway).
Every route in the lab covers the lab CIDR only. There is no default route anywhere, so nothing
in the lab can reach an outside network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from kubepulse.errors import ConfigError

PREFIX = "kpl-"  # every netns and link the lab creates starts with this
NFT_PREFIX = "kubepulse_lab"  # every nftables table the lab creates starts with this
DEFAULT_CIDR = "10.244.0.0/16"
DEFAULT_NODES = 2
ROUTER_NETNS = f"{PREFIX}router"
HOST_LINK = f"{PREFIX}host"  # the one veth end in the host namespace
ROUTER_HOST_LINK = f"{PREFIX}rhost"
NODE_UPLINK = f"{PREFIX}up"  # inside each node netns
BRIDGE = f"{PREFIX}br"  # inside each node netns
CLUSTER_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class Call:
    """One kind of steady traffic a client pod sends to a service."""

    service: str
    namespace: str
    port: int
    pattern: str  # "pool": keep-alive connections; "short": one request per connection


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    namespace: str
    replicas: int
    server: str  # "nginx", "python" (switchable), "dnsmasq" or "" (client only)
    port: int = 0
    calls: tuple[Call, ...] = ()


# A small shop: loadgen -> frontend -> api -> db, cache; every client also resolves names.
DEFAULT_WORKLOADS: tuple[WorkloadSpec, ...] = (
    WorkloadSpec("kube-dns", "kube-system", 1, "dnsmasq", 53),
    WorkloadSpec("db", "shop", 1, "python", 5432),
    WorkloadSpec("cache", "shop", 2, "python", 6379),
    WorkloadSpec(
        "api",
        "shop",
        2,
        "python",
        8080,
        (Call("db", "shop", 5432, "pool"), Call("db", "shop", 5432, "short"),
         Call("cache", "shop", 6379, "short")),
    ),
    WorkloadSpec(
        "frontend",
        "shop",
        2,
        "nginx",
        80,
        (Call("api", "shop", 8080, "pool"), Call("api", "shop", 8080, "short")),
    ),
    WorkloadSpec(
        "loadgen",
        "shop",
        1,
        "",
        0,
        (Call("frontend", "shop", 80, "short"), Call("frontend", "shop", 80, "pool")),
    ),
)


@dataclass(frozen=True)
class NodePlan:
    name: str  # "node1"
    index: int  # 1-based
    netns: str
    pod_cidr: str
    gateway: str  # the bridge address, the pods' next hop
    uplink_ip: str  # node end of the node<->router /30
    router_ip: str  # router end of the node<->router /30
    router_link: str  # interface name inside the router netns


@dataclass(frozen=True)
class PodPlan:
    name: str
    namespace: str
    workload: str
    node: str
    ip: str
    netns: str
    node_link: str  # the veth end attached to the node's bridge
    server: str
    port: int
    calls: tuple[Call, ...]
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class ServicePlan:
    name: str
    namespace: str
    port: int
    endpoints: tuple[str, ...]  # pod IPs (headless: no cluster IP)

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"


@dataclass(frozen=True)
class Plan:
    cidr: str
    host_ip: str
    router_host_ip: str
    nodes: tuple[NodePlan, ...]
    pods: tuple[PodPlan, ...]
    services: tuple[ServicePlan, ...]

    @property
    def dns_ip(self) -> str:
        return next(p.ip for p in self.pods if p.server == "dnsmasq")

    def netns_names(self) -> list[str]:
        return [ROUTER_NETNS, *(n.netns for n in self.nodes), *(p.netns for p in self.pods)]

    def pod(self, name: str) -> PodPlan:
        return next(p for p in self.pods if p.name == name)


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise ConfigError(
            f"lab CIDR {cidr!r} is not a network address ({exc}); pass e.g. --cidr 10.244.0.0/16."
        ) from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.is_private:
        raise ConfigError(
            f"lab CIDR {cidr} must be a private IPv4 network; pass e.g. --cidr 10.244.0.0/16."
        )
    if not 16 <= net.prefixlen <= 22:
        raise ConfigError(
            f"lab CIDR {cidr} must be a /16 to /22 (one /24 per node plus one for links); "
            "pass e.g. --cidr 10.244.0.0/16."
        )
    return net


def plan(
    cidr: str = DEFAULT_CIDR,
    nodes: int = DEFAULT_NODES,
    workloads: tuple[WorkloadSpec, ...] = DEFAULT_WORKLOADS,
) -> Plan:
    net = parse_cidr(cidr)
    subnets = list(net.subnets(new_prefix=24))
    if not 1 <= nodes <= min(len(subnets) - 1, 60):
        raise ConfigError(
            f"the lab needs 1 to {min(len(subnets) - 1, 60)} nodes in {cidr}, not {nodes}; "
            "pass a smaller --nodes or a larger --cidr."
        )
    links = subnets[0]
    host_ip, router_host_ip = str(links[1]), str(links[2])
    node_plans: list[NodePlan] = []
    for i in range(1, nodes + 1):
        sub = subnets[i]
        node_plans.append(
            NodePlan(
                name=f"node{i}",
                index=i,
                netns=f"{PREFIX}node{i}",
                pod_cidr=str(sub),
                gateway=str(sub[1]),
                uplink_ip=str(links[4 * i + 2]),
                router_ip=str(links[4 * i + 1]),
                router_link=f"{PREFIX}r{i}",
            )
        )
    pods: list[PodPlan] = []
    next_host = {n.name: 10 for n in node_plans}
    spread = 0  # round-robin over nodes across all replicas, so workloads span nodes
    for wl in workloads:
        for r in range(wl.replicas):
            node = node_plans[spread % nodes]
            spread += 1
            host = next_host[node.name]
            next_host[node.name] += 1
            name = f"{wl.name}-{r}"
            pods.append(
                PodPlan(
                    name=name,
                    namespace=wl.namespace,
                    workload=wl.name,
                    node=node.name,
                    ip=str(ipaddress.ip_network(node.pod_cidr)[host]),
                    netns=f"{PREFIX}{wl.namespace}-{name}",
                    node_link=f"{PREFIX}p{len(pods)}",
                    server=wl.server,
                    port=wl.port,
                    calls=wl.calls,
                    labels={"app": wl.name, "kubepulse.io/lab": "true"},
                )
            )
    services = tuple(
        ServicePlan(
            wl.name,
            wl.namespace,
            wl.port,
            tuple(p.ip for p in pods if p.workload == wl.name and p.namespace == wl.namespace),
        )
        for wl in workloads
        if wl.server
    )
    return Plan(cidr, host_ip, router_host_ip, tuple(node_plans), tuple(pods), services)
