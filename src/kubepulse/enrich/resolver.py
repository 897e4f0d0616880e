"""Who a flow's ends are: pod, workload, service and node, or a process and an address.

Sources of identity, best first:
- the local end's network namespace (inode), which names a pod on this node;
- an address that belongs to a pod (any node) in the inventory;
- for services, the endpoint (pod IP) and port that the service lists;
- otherwise a process on the host (by comm) or an address, ``external`` unless it is the host.

An :class:`Inventory` comes from ``kubepulse lab up``, a hand-written file, or (later) the
Kubernetes API; without one every flow is named by process and address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kubepulse.enrich.inventory import Inventory, Pod
from kubepulse.model import Identity


@dataclass(frozen=True)
class Scope:
    """Which network namespaces this agent speaks for (None: every one, a plain host)."""

    netns: frozenset[int] | None

    def covers(self, inode: int) -> bool:
        return self.netns is None or inode in self.netns


class Resolver:
    """Address/netns -> Identity. Lookups are dictionary hits; results are cached (bounded)."""

    MAX_CACHE = 65536

    def __init__(self, inventory: Inventory | None = None, node: str = "",
                 host_name: str = "") -> None:
        self.inventory = inventory
        self.node = node
        self.host_name = host_name or node or "host"
        self._pod_by_ip: dict[str, Pod] = {}
        self._pod_by_netns: dict[int, Pod] = {}
        self._service: dict[tuple[str, int], str] = {}
        self._service_any_port: dict[str, str] = {}
        self._cache: dict[tuple[object, ...], Identity] = {}
        if inventory is not None:
            self._pod_by_ip = inventory.pod_by_ip()
            self._pod_by_netns = {p.netns_inode: p for p in inventory.pods if p.netns_inode}
            for svc in inventory.services:
                for ip in svc.endpoints:
                    self._service_any_port.setdefault(ip, svc.name)
                    for port in svc.ports:
                        self._service[(ip, port.port)] = svc.name

    def scope(self) -> Scope:
        """Namespaces of this node's pods (or of every pod without --node); a plain host
        without an inventory covers everything."""
        if self.inventory is None:
            return Scope(None)
        pods = [p for p in self.inventory.pods
                if p.netns_inode and (not self.node or p.node == self.node)]
        return Scope(frozenset(p.netns_inode for p in pods if p.netns_inode))

    def serves(self, addr: str, port: int) -> bool:
        """True when a service lists ``addr:port`` as an endpoint (a server's side)."""
        return (addr, port) in self._service

    def pod_at(self, addr: str) -> Pod | None:
        return self._pod_by_ip.get(addr)

    def is_pod_ip(self, addr: str) -> bool:
        return addr in self._pod_by_ip

    def _cached(self, key: tuple[object, ...], make: object) -> Identity:
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= self.MAX_CACHE:
                self._cache.clear()  # identities are cheap to rebuild; memory stays bounded
            hit = make()  # type: ignore[operator]
            self._cache[key] = hit
        return hit

    def _pod(self, pod: Pod, addr: str, port: int = 0) -> Identity:
        service = self._service.get((pod.ip, port)) or (
            self._service_any_port.get(pod.ip, "") if port == 0 else "")
        return Identity(address=addr or pod.ip, namespace=pod.namespace,
                        workload=pod.workload or pod.name, pod=pod.name, node=pod.node,
                        service=service, labels=dict(pod.labels), kind="pod")

    def local(self, netns: int, addr: str, comm: str) -> Identity:
        """The end that lives on this node: its namespace first, then its address."""

        def make() -> Identity:
            pod = self._pod_by_netns.get(netns) or self._pod_by_ip.get(addr)
            if pod is not None:
                return self._pod(pod, addr)
            return Identity(address=addr, workload=comm or "unknown", node=self.host_name,
                            kind="host")

        return self._cached(("l", netns, addr, comm), make)

    def remote(self, addr: str, port: int = 0) -> Identity:
        """The other end, by address (and port, for the service name)."""

        def make() -> Identity:
            pod = self._pod_by_ip.get(addr)
            if pod is not None:
                return self._pod(pod, addr, port)
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                return Identity(address=addr, kind="unknown")
            if ip.is_loopback:
                return Identity(address=addr, node=self.host_name, kind="host")
            return Identity(address=addr, kind="external")

        return self._cached(("r", addr, port), make)
