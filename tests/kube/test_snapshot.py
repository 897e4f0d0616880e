"""API objects -> records -> an Inventory snapshot -> the Resolver (pure: no server)."""

from __future__ import annotations

import threading

from kubepulse.enrich.kubeobjects import (
    OwnerRec,
    PodRec,
    Snapshot,
    Tombstone,
    build_snapshot,
    reduce_node,
    reduce_pod,
    reduce_replicaset,
    reduce_service,
    reduce_slice,
    workload,
)
from kubepulse.enrich.resolver import Resolver
from tests.kube import objects as o


def _snap(pods: list[PodRec], tombstones: list[Tombstone] | None = None, now: float = 0.0,
          netns: dict[str, int] | None = None, cgroups: dict[str, int] | None = None,
          replicasets: dict[str, OwnerRec] | None = None) -> Snapshot:
    return build_snapshot(
        cluster="test", pods=pods,
        services=[reduce_service(o.service("shop", "api", [("http", 80, 8080)], "10.96.0.20"))],
        slices=[reduce_slice(o.endpointslice("shop", "api", [("http", 8080)],
                                             [("10.244.1.12", "api-a", "node1")]))],
        replicasets=replicasets or {}, nodes=[reduce_node(o.node("node1", "192.168.50.11",
                                                                 "10.244.1.0/24"))],
        tombstones=tombstones or [], netns_by_container=netns or {},
        cgroup_by_container=cgroups or {}, local_node="node1", now=now)


def _pod(name: str, ip: str, **kw: object) -> PodRec:
    return reduce_pod(o.pod("shop", name, ip, "node1", **kw))  # type: ignore[arg-type]


def test_reduce_pod_reads_the_real_fields() -> None:
    raw = o.pod("shop", "api-7d9f8b6c5-x2x4z", "10.244.1.12", "node1",
                labels={"app": "api", "pod-template-hash": "7d9f8b6c5"},
                owners=[o.owner("ReplicaSet", "api-7d9f8b6c5")], containers=("app", "sidecar"))
    p = reduce_pod(raw)
    assert (p.namespace, p.name, p.node, p.ip, p.ips) == (
        "shop", "api-7d9f8b6c5-x2x4z", "node1", "10.244.1.12", ("10.244.1.12",))
    assert (p.owner_kind, p.owner_name) == ("ReplicaSet", "api-7d9f8b6c5")
    assert len(p.containers) == 2 and all(len(c) == 64 for c in p.containers)
    assert not p.host_network and not p.finished


def test_owner_chain() -> None:
    rs = {"shop/api-7d9f8b6c5": reduce_replicaset(o.replicaset("shop", "api-7d9f8b6c5", "web")),
          "shop/bare-rs": reduce_replicaset(o.replicaset("shop", "bare-rs", None))}
    via_rs = _pod("x", "10.0.0.1", owners=[o.owner("ReplicaSet", "api-7d9f8b6c5")],
                  labels={"pod-template-hash": "7d9f8b6c5"})
    assert workload(via_rs, rs) == "web"  # the Deployment that owns the ReplicaSet
    assert workload(via_rs, {}) == "api"  # ReplicaSet not known yet: name minus the hash
    assert workload(_pod("y", "10.0.0.2", owners=[o.owner("ReplicaSet", "bare-rs")]), rs) \
        == "bare-rs"
    for kind in ("StatefulSet", "DaemonSet", "Job"):
        assert workload(_pod("z-0", "10.0.0.3", owners=[o.owner(kind, "z")]), {}) == "z"
    assert workload(_pod("lonely", "10.0.0.4"), {}) == "lonely"


def test_snapshot_names_pods_services_cluster_ips_nodes_and_netns() -> None:
    api = _pod("api-a", "10.244.1.12", owners=[o.owner("StatefulSet", "api")])
    snap = _snap([api], netns={api.containers[0]: 4026532459})
    r = Resolver(node="node1")
    r.update(snap.inventory, snap.extra)
    got = r.remote("10.244.1.12", 8080)
    assert (got.kind, got.namespace, got.workload, got.pod, got.service, got.node) == (
        "pod", "shop", "api", "api-a", "api", "node1")
    assert r.local(4026532459, "", "nginx").pod == "api-a"  # by netns alone
    assert r.scope().netns == frozenset({4026532459})
    vip = r.remote("10.96.0.20", 80)
    assert (vip.service, vip.workload, vip.namespace) == ("api", "api", "shop")
    assert r.remote("192.168.50.11").node == "node1"
    assert r.remote("8.8.8.8").kind == "external"


def test_host_network_pod_is_named_by_cgroup() -> None:
    kp = _pod("kube-proxy-x", "192.168.50.11", host_network=True,
              owners=[o.owner("DaemonSet", "kube-proxy")])
    snap = _snap([kp], cgroups={kp.containers[0]: 777})
    r = Resolver(node="node1")
    r.update(snap.inventory, snap.extra)
    assert r.pod_at("192.168.50.11") is None  # a node IP is not one pod's
    ident = r.local(4026531840, "192.168.50.11", "kube-proxy", cgroup_id=777)
    assert (ident.pod, ident.workload, ident.kind) == ("kube-proxy-x", "kube-proxy", "pod")
    assert r.local(4026531840, "192.168.50.11", "sshd", cgroup_id=778).kind == "host"


def test_ip_reuse_new_pod_wins_and_old_one_keeps_its_grace() -> None:
    old = _pod("old", "10.244.1.50", created="2026-11-25T20:00:00Z")
    new = _pod("new", "10.244.1.50", created="2026-11-25T21:00:00Z")
    # deleted, within grace, IP not reused: still the old pod
    s = _snap([], [Tombstone(old, expires=10.0)], now=5.0)
    assert s.inventory.pod_by_ip()["10.244.1.50"].name == "old"
    assert s.next_expiry == 10.0
    # grace over: unknown
    s = _snap([], [Tombstone(old, expires=10.0)], now=10.0)
    assert "10.244.1.50" not in s.inventory.pod_by_ip()
    # reused: the new pod wins at once, grace or not
    s = _snap([new], [Tombstone(old, expires=10.0)], now=5.0)
    assert s.inventory.pod_by_ip()["10.244.1.50"].name == "new"
    # both live (the old one still Terminating): the newer one
    assert _snap([old, new]).inventory.pod_by_ip()["10.244.1.50"].name == "new"
    # a finished pod does not hold its IP
    done = _pod("done", "10.244.1.51", phase="Succeeded")
    assert "10.244.1.51" not in _snap([done]).inventory.pod_by_ip()


def test_named_networks() -> None:
    r = Resolver(networks={"corp": "10.0.0.0/8", "vpn": "10.8.0.0/16", "v6": "fd00::/8"})
    assert r.remote("10.8.1.1").workload == "vpn"  # longest prefix
    assert r.remote("10.1.1.1").workload == "corp"
    assert r.remote("fd00::1").workload == "v6"
    assert (r.remote("1.1.1.1").workload, r.remote("1.1.1.1").kind) == ("", "external")


def test_update_is_atomic_under_concurrent_reads() -> None:
    """A reader never sees a mix of two snapshots, and never keeps a stale identity."""
    a = _snap([_pod("a", "10.244.1.12")])
    b = _snap([_pod("b", "10.244.1.12")])
    r = Resolver(node="node1")
    stop = threading.Event()
    seen: set[str] = set()

    def read() -> None:
        for _ in range(200_000):
            if stop.is_set():
                return
            seen.add(r.remote("10.244.1.12", 8080).pod)

    t = threading.Thread(target=read)
    t.start()
    try:
        for i in range(300):
            r.update((a if i % 2 else b).inventory, (a if i % 2 else b).extra)
    finally:
        stop.set()
        t.join(10)
    r.update(a.inventory, a.extra)
    assert r.remote("10.244.1.12", 8080).pod == "a"
    assert seen <= {"a", "b", ""}
    assert r.generation == 301
