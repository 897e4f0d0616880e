"""Names the inventory format has no place for, which the Kubernetes cache also knows.

The :class:`~kubepulse.enrich.inventory.Inventory` names pods, their services (by endpoint)
and nodes. A live cluster adds: Service cluster IPs (a client's socket keeps the cluster IP as
its destination: kube-proxy's DNAT does not change the socket), node addresses (hostNetwork
pods and the kubelet), the cgroups of this node's containers (hostNetwork pods have no network
namespace of their own), and user-named networks for addresses outside the cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kubepulse.enrich.inventory import Pod
from kubepulse.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ServiceIP:
    """A Service's cluster IP: the service, and the one workload behind it (if only one)."""

    namespace: str
    service: str
    workload: str = ""


@dataclass(frozen=True)
class ExtraNames:
    cluster_ips: Mapping[str, ServiceIP] = field(default_factory=dict)
    node_ips: Mapping[str, str] = field(default_factory=dict)  # address -> node name
    cgroup_pods: Mapping[int, Pod] = field(default_factory=dict)  # cgroup id -> pod


def parse_networks(items: Iterable[tuple[str, str]] | Mapping[str, str]) -> tuple[
        tuple[Network, str], ...]:
    """``{name: cidr}`` (or pairs) -> networks sorted longest prefix first, for
    :meth:`Resolver.remote` to name addresses outside the cluster (``corp-vpn``, ``rds``)."""
    pairs = items.items() if isinstance(items, Mapping) else items
    out: list[tuple[Network, str]] = []
    for name, cidr in pairs:
        try:
            out.append((ipaddress.ip_network(cidr, strict=False), name))
        except ValueError:
            raise ConfigError(
                f"network {name!r}: {cidr!r} is not a CIDR (write it like 10.20.0.0/16)."
            ) from None
    out.sort(key=lambda item: -item[0].prefixlen)
    return tuple(out)
