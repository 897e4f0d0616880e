"""Lab traffic named through the API stand-in gives the same identities as through the lab's
inventory.

There is no API server on this machine: the lab's pods, services and nodes are converted to
API objects (Pods with ownerReferences, ReplicaSets owned by Deployments, StatefulSets,
headless Services, EndpointSlices, Nodes) and served by :mod:`tests.kube.apiserver`, which
stands in for the API server. One Kubernetes cache per lab node follows it.

Container -> network namespace: the lab's pods are network namespaces, not containers, so
each pod's container id (from its ``status.containerStatuses``) is given a containerd-style
cgroup path in a small /proc tree whose ``ns`` entry links to a real process of that pod
(``/proc/PID/ns``): the namespace inode the cache reads is the kernel's own.

Then real records from the lab's traffic (the tcp_conn probe) are named by both resolvers
and compared, as are every pod's address, namespace and service port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubepulse.enrich.inventory import Inventory
from kubepulse.enrich.kube import KubeCache, KubeConfig
from kubepulse.enrich.resolver import Resolver
from kubepulse.lab import cluster, procs
from kubepulse.model import Identity
from tests.conftest import require_bpf
from tests.kube import objects as o
from tests.kube.apiserver import StandInApiServer
from tests.kube.conftest import FAST, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.live]

DEPLOYMENTS = {"frontend", "api"}  # served as Deployment -> ReplicaSet -> Pod; others StatefulSet


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab builds network namespaces: run the lab tests as root")
    state = tmp_path_factory.mktemp("lab-state")
    built = cluster.up(state_dir=state, traffic_seconds=300)
    try:
        yield built
    finally:
        cluster.down(state)


def serve_inventory(inv: Inventory, server: StandInApiServer, proc_root: Path) -> None:
    """The lab as API objects, and a /proc tree mapping each pod's container to its netns."""
    st = server.state
    for i, n in enumerate(inv.nodes):
        gw = n.pod_cidr.rsplit(".", 1)[0] + ".1" if n.pod_cidr else f"192.168.50.{10 + i}"
        st.put(o.node(n.name, gw, n.pod_cidr or "10.244.0.0/24"))
    for wl in sorted({p.workload for p in inv.pods if p.workload in DEPLOYMENTS}):
        ns = next(p.namespace for p in inv.pods if p.workload == wl)
        st.put(o.replicaset(ns, f"{wl}-6d5f7c8b9", wl))
    for p in inv.pods:
        owners = [o.owner("ReplicaSet", f"{p.workload}-6d5f7c8b9")] \
            if p.workload in DEPLOYMENTS else [o.owner("StatefulSet", p.workload)]
        obj = st.put(o.pod(p.namespace, p.name, p.ip, p.node, labels=dict(p.labels),
                           owners=owners))
        cid = obj["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
        uid = obj["metadata"]["uid"].replace("-", "_")
        assert p.netns_inode is not None
        pids = procs.pids_in_netns([p.netns_inode])
        assert pids, f"no process runs in pod {p.namespace}/{p.name}"
        d = proc_root / str(pids[0])
        d.mkdir(parents=True)
        (d / "cgroup").write_text(
            f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/"
            f"cri-containerd-{cid}.scope\n")
        os.symlink(f"/proc/{pids[0]}/ns", d / "ns")  # the kernel's own namespace links
    for s in inv.services:
        ports = [(sp.name, sp.port) for sp in s.ports]
        st.put(o.service(s.namespace, s.name, [(n, port, port) for n, port in ports]))
        by_ip = inv.pod_by_ip()
        st.put(o.endpointslice(s.namespace, s.name, ports,
                               [(ip, by_ip[ip].name, by_ip[ip].node) for ip in s.endpoints]))


def same(a: Identity, b: Identity) -> bool:
    return a == b and a.labels == b.labels


@pytest.fixture(scope="module")
def resolvers(lab: cluster.Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, tuple[Resolver, Resolver]]]:
    """node -> (from the inventory, from the API stand-in)."""
    inv = lab.inventory()
    tmp = tmp_path_factory.mktemp("kube-lab")
    server = StandInApiServer()
    serve_inventory(inv, server, tmp / "proc")
    server.start()
    caches: list[KubeCache] = []
    out: dict[str, tuple[Resolver, Resolver]] = {}
    try:
        for n in inv.nodes:
            api = Resolver(node=n.name, host_name=n.name)
            conf = KubeConfig(server=server.url, tuning=FAST, whole_kernel=False,
                              proc_root=str(tmp / "proc"), cgroup_root=str(tmp / "no-cgroup"),
                              cluster_name=inv.cluster)
            caches.append(KubeCache(n.name, api, conf).start())
            out[n.name] = (Resolver(inv, node=n.name, host_name=n.name), api)
        for c in caches:
            wait_for(c.synced, 20, f"the cache of {c.node_name}")
        yield out
    finally:
        for c in caches:
            c.stop()
        server.stop()


def test_every_pod_address_netns_and_service_port(lab: cluster.Lab,
                                                  resolvers: dict[str, tuple[Resolver,
                                                                             Resolver]]) -> None:
    inv = lab.inventory()
    ports = sorted({sp.port for s in inv.services for sp in s.ports} | {0})
    checked = 0
    for node, (by_inv, by_api) in resolvers.items():
        assert by_api.scope() == by_inv.scope(), f"{node}: not the same namespaces in scope"
        for p in inv.pods:
            assert p.netns_inode is not None
            for port in ports:
                assert same(by_api.remote(p.ip, port), by_inv.remote(p.ip, port)), (node, p.ip)
            assert same(by_api.local(p.netns_inode, p.ip, "x"),
                        by_inv.local(p.netns_inode, p.ip, "x")), (node, p.name)
            if p.node == node:  # the namespace alone names this node's pods
                got = by_api.local(p.netns_inode, "", "x")
                assert same(got, by_inv.local(p.netns_inode, "", "x")), (node, p.name)
                assert got.pod == p.name
            checked += 1
    assert checked == len(inv.pods) * len(resolvers)


def test_lab_traffic_is_named_the_same(lab: cluster.Lab,
                                       resolvers: dict[str, tuple[Resolver, Resolver]]) -> None:
    require_bpf()
    from kubepulse.probes.tcp_conn import TcpConnProbe
    from tests.live.conftest import Collector

    inv = lab.inventory()
    node_of_netns = {p.netns_inode: p.node for p in inv.pods}
    with TcpConnProbe() as probe:
        probe.start()
        col = Collector(probe)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            col.poll()
            if len([e for e in col.events if e.netns in node_of_netns]) >= 40:
                break
    events = [e for e in col.events if e.netns in node_of_netns]
    assert len(events) >= 10, f"only {len(events)} lab records in 30 s"
    pods_named = services_named = 0
    for e in events:
        by_inv, by_api = resolvers[node_of_netns[e.netns]]
        a, b = by_api.local(e.netns, e.saddr, e.comm), by_inv.local(e.netns, e.saddr, e.comm)
        assert same(a, b), (e, a, b)
        a, b = by_api.remote(e.daddr, e.dport), by_inv.remote(e.daddr, e.dport)
        assert same(a, b), (e, a, b)
        pods_named += a.kind == "pod"
        services_named += bool(a.service)
    print(f"{len(events)} lab records named alike; {pods_named} with a pod peer, "
          f"{services_named} with a service")
    assert services_named, "some records should reach a service"
    assert pods_named >= len(events) // 2, "most lab records should name a pod at both ends"
