"""Who a flow's ends are: pod, workload, service and node, or a process and an address.

Sources of identity, best first:
- the local end's network namespace (inode), which names a pod on this node; for a
  hostNetwork pod (no namespace of its own), the socket's cgroup;
- an address that belongs to a pod (any node) in the inventory;
- for services, the endpoint (pod IP) and port that the service lists, or the cluster IP;
- a node's address, or a user-named network (``networks``);
- otherwise a process on the host (by comm) or an address, ``external`` unless it is the host.

An :class:`Inventory` comes from ``kubepulse lab up``, a hand-written file, or the Kubernetes
API (:mod:`kubepulse.enrich.kube`, which calls :meth:`Resolver.update` on every change); without
one every flow is named by process and address.

Thread safety: every map lives in one immutable :class:`_Maps` (with its own identity cache);
:meth:`update` builds a new one and swaps the reference, so a reader on the agent's thread
sees either the old maps or the new ones, never a mix, and never caches an identity computed
from old maps into the new cache.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kubepulse.enrich.inventory import Inventory, Pod
from kubepulse.enrich.names import ExtraNames, Network, parse_networks
from kubepulse.model import Identity


@dataclass(frozen=True)
class Scope:
    """Which network namespaces this agent speaks for (None: every one, a plain host)."""

    netns: frozenset[int] | None

    def covers(self, inode: int) -> bool:
        return self.netns is None or inode in self.netns


@dataclass(frozen=True)
class _Maps:
    inventory: Inventory | None
    pod_by_ip: dict[str, Pod]
    pod_by_netns: dict[int, Pod]
    service: dict[tuple[str, int], str]
    service_any_port: dict[str, str]
    extra: ExtraNames
    cache: dict[tuple[object, ...], Identity] = field(default_factory=dict)

    @classmethod
    def build(cls, inventory: Inventory | None, extra: ExtraNames | None) -> _Maps:
        pod_by_ip: dict[str, Pod] = {}
        pod_by_netns: dict[int, Pod] = {}
        service: dict[tuple[str, int], str] = {}
        service_any_port: dict[str, str] = {}
        if inventory is not None:
            pod_by_ip = inventory.pod_by_ip()
            pod_by_netns = {p.netns_inode: p for p in inventory.pods if p.netns_inode}
            for svc in inventory.services:
                for ip in svc.endpoints:
                    service_any_port.setdefault(ip, svc.name)
                    for port in svc.ports:
                        service[(ip, port.port)] = svc.name
        return cls(inventory, pod_by_ip, pod_by_netns, service, service_any_port,
                   extra or ExtraNames())


class Resolver:
    """Address/netns -> Identity. Lookups are dictionary hits; results are cached (bounded)."""

    MAX_CACHE = 65536

    def __init__(self, inventory: Inventory | None = None, node: str = "",
                 host_name: str = "",
                 networks: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        self.node = node
        self.host_name = host_name or node or "host"
        self.networks: tuple[tuple[Network, str], ...] = parse_networks(networks)
        self.generation = 0  # bumped by every update(); the agent re-reads scope() on change
        # True on a real node (--kubernetes): the kernel is this node's alone, so the agent
        # speaks for every network namespace on it; False scopes to the inventory's pods of
        # ``node`` (the lab's nodes share one kernel).
        self.whole_kernel = False
        self._lock = threading.Lock()  # serialises writers only; readers never wait
        self._maps = _Maps.build(inventory, None)

    @property
    def inventory(self) -> Inventory | None:
        return self._maps.inventory

    def update(self, inventory: Inventory | None, extra: ExtraNames | None = None) -> None:
        """Replace everything the resolver knows, atomically; the identity cache starts empty.
        Safe to call from any thread while another thread resolves."""
        maps = _Maps.build(inventory, extra)
        with self._lock:
            self._maps = maps
            self.generation += 1

    def scope(self) -> Scope:
        """Namespaces of this node's pods (or of every pod without --node); a plain host
        without an inventory covers everything."""
        inventory = self._maps.inventory
        if inventory is None or self.whole_kernel:
            return Scope(None)
        pods = [p for p in inventory.pods
                if p.netns_inode and (not self.node or p.node == self.node)]
        return Scope(frozenset(p.netns_inode for p in pods if p.netns_inode))

    def serves(self, addr: str, port: int) -> bool:
        """True when a service lists ``addr:port`` as an endpoint (a server's side)."""
        return (addr, port) in self._maps.service

    def pod_at(self, addr: str) -> Pod | None:
        return self._maps.pod_by_ip.get(addr)

    def is_pod_ip(self, addr: str) -> bool:
        return addr in self._maps.pod_by_ip

    def _cached(self, maps: _Maps, key: tuple[object, ...],
                make: Callable[[_Maps], Identity]) -> Identity:
        hit = maps.cache.get(key)
        if hit is None:
            if len(maps.cache) >= self.MAX_CACHE:
                maps.cache.clear()  # identities are cheap to rebuild; memory stays bounded
            hit = make(maps)
            maps.cache[key] = hit
        return hit

    @staticmethod
    def _pod(maps: _Maps, pod: Pod, addr: str, port: int = 0) -> Identity:
        service = maps.service.get((pod.ip, port)) or (
            maps.service_any_port.get(pod.ip, "") if port == 0 else "")
        return Identity(address=addr or pod.ip, namespace=pod.namespace,
                        workload=pod.workload or pod.name, pod=pod.name, node=pod.node,
                        service=service, labels=dict(pod.labels), kind="pod")

    def local(self, netns: int, addr: str, comm: str, cgroup_id: int = 0) -> Identity:
        """The end that lives on this node: its namespace first, then its cgroup (hostNetwork
        pods share the host's namespace), then its address."""

        def make(maps: _Maps) -> Identity:
            pod = (maps.pod_by_netns.get(netns)
                   or (maps.extra.cgroup_pods.get(cgroup_id) if cgroup_id else None)
                   or maps.pod_by_ip.get(addr))
            if pod is not None:
                return self._pod(maps, pod, addr)
            return Identity(address=addr, workload=comm or "unknown", node=self.host_name,
                            kind="host")

        return self._cached(self._maps, ("l", netns, addr, comm, cgroup_id), make)

    def remote(self, addr: str, port: int = 0) -> Identity:
        """The other end, by address (and port, for the service name)."""

        def make(maps: _Maps) -> Identity:
            pod = maps.pod_by_ip.get(addr)
            if pod is not None:
                return self._pod(maps, pod, addr, port)
            svc = maps.extra.cluster_ips.get(addr)
            if svc is not None:  # a Service's cluster IP, before kube-proxy's DNAT
                return Identity(address=addr, namespace=svc.namespace,
                                workload=svc.workload or svc.service, service=svc.service,
                                kind="pod")
            node = maps.extra.node_ips.get(addr)
            if node is not None:
                return Identity(address=addr, workload=node, node=node, kind="host")
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                return Identity(address=addr, kind="unknown")
            if ip.is_loopback:
                return Identity(address=addr, node=self.host_name, kind="host")
            for net, name in self.networks:
                if ip.version == net.version and ip in net:
                    return Identity(address=addr, workload=name, kind="external")
            return Identity(address=addr, kind="external")

        return self._cached(self._maps, ("r", addr, port), make)
