"""Identity from the Kubernetes API server: a list-then-watch cache that keeps a Resolver live.

``kubepulse run --kubernetes`` calls :func:`start_kubernetes_inventory` with this node's name
(``NODE_NAME``, from the downward API). It watches:

===========================  ==============================  ====================================
collection                   scope                           for
===========================  ==============================  ====================================
pods                         this node (``spec.nodeName``)   local pods: container ids -> netns
pods                         cluster-wide (optional)         naming remote peers by IP
services                     cluster-wide                    cluster IPs, service ports
endpointslices               cluster-wide                    service backends (IP:port)
replicasets                  cluster-wide                    the owner chain ReplicaSet -> Deployment
nodes                        cluster-wide                    node names, addresses, pod CIDRs
===========================  ==============================  ====================================

Each collection has its own :class:`~kubepulse.enrich.reflector.Reflector` thread. On any
change a builder thread (at most every ``min_rebuild_s``) rescans this node's containers
(``/proc``: container id -> netns inode; ``/sys/fs/cgroup``: cgroup id -> container id, for
hostNetwork pods), builds an Inventory snapshot and calls ``resolver.update()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubepulse.enrich.cgroup import cgroup_ids_of_containers, netns_of_containers
from kubepulse.enrich.kubeapi import Api, HttpApi
from kubepulse.enrich.kubeobjects import (
    NodeRec,
    OwnerRec,
    PodRec,
    ServiceRec,
    SliceRec,
    Snapshot,
    Tombstone,
    build_snapshot,
    reduce_node,
    reduce_pod,
    reduce_replicaset,
    reduce_service,
    reduce_slice,
)
from kubepulse.enrich.reflector import Reflector, ReflectorStats, Resource, WatchTuning
from kubepulse.enrich.resolver import Resolver
from kubepulse.errors import ConfigError

log = logging.getLogger("kubepulse.kube")


@dataclass(frozen=True)
class KubeConfig:
    """How the agent follows the cluster (``kubernetes:`` in the agent's config)."""

    server: str | None = None  # override the API server URL (tests, kubectl proxy)
    kubeconfig: str | None = None  # else in-cluster, then $KUBECONFIG, then ~/.kube/config
    context: str | None = None
    cluster_name: str = "kubernetes"
    watch_all_pods: bool = True  # off: only this node's pods (big clusters); remote peers are
    #                              then named by service (EndpointSlices) and node only
    whole_kernel: bool = True  # this kernel is this node's alone: speak for every netns on
    #                            it (Resolver.whole_kernel); False only where nodes share a kernel
    ip_reuse_grace_s: float = 30.0  # a deleted pod's IP keeps naming it this long, unless reused
    min_rebuild_s: float = 0.5  # snapshots are rebuilt at most this often (5,000 pods: ~50 ms)
    rescan_s: float = 30.0  # /proc and cgroup rescans for container -> netns, at least this often
    max_tombstones: int = 50_000
    proc_root: str = "/proc"
    cgroup_root: str = "/sys/fs/cgroup"
    tuning: WatchTuning = field(default_factory=WatchTuning)


# Without these no snapshot is made; replicasets and nodes only refine names (a ReplicaSet's
# Deployment, a node's addresses), so an API server that refuses them (RBAC) does not stop the
# agent: their reflectors keep retrying with backoff and the names improve when they answer.
_REQUIRED = ("local-pods", "pods", "services", "endpointslices")

_RESOURCES: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {
    "pods": ("/api/v1/pods", reduce_pod),
    "services": ("/api/v1/services", reduce_service),
    "endpointslices": ("/apis/discovery.k8s.io/v1/endpointslices", reduce_slice),
    "replicasets": ("/apis/apps/v1/replicasets", reduce_replicaset),
    "nodes": ("/api/v1/nodes", reduce_node),
}


class KubeCache:
    """The reflectors, the builder, and the latest snapshot. Start with :meth:`start`."""

    def __init__(self, node_name: str, resolver: Resolver, config: KubeConfig | None = None,
                 api: Api | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if not node_name:
            raise ConfigError(
                "--kubernetes needs this node's name: set NODE_NAME (the DaemonSet sets it from "
                "the downward API, spec.nodeName) or pass --node."
            )
        self.node_name = node_name
        self.resolver = resolver
        self.config = config or KubeConfig()
        resolver.whole_kernel = self.config.whole_kernel
        self.api: Api = api or HttpApi(self.config.server, self.config.kubeconfig,
                                       self.config.context)
        self.clock = clock
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._lock = threading.Lock()
        self._tombstones: dict[str, Tombstone] = {}  # pod uid -> tombstone
        self._finished_at: dict[str, float] = {}  # uid of a finished pod -> when first seen
        self._netns: dict[str, int] = {}
        self._cgroups: dict[str, int] = {}
        self._scanned_for: frozenset[str] = frozenset()
        self._last_scan = -1e18
        self._pending_scan = False
        self.snapshot: Snapshot | None = None
        self.builds = 0
        self._threads: list[threading.Thread] = []
        self.reflectors: dict[str, Reflector[Any]] = {}
        tuning = self.config.tuning
        self.reflectors["local-pods"] = Reflector(
            api=self.api, resource=Resource("local-pods", "/api/v1/pods",
                                            field_selector=f"spec.nodeName={node_name}"),
            reduce=reduce_pod, on_change=self._changed, tuning=tuning)
        for name, (path, reduce) in _RESOURCES.items():
            if name == "pods" and not self.config.watch_all_pods:
                continue
            self.reflectors[name] = Reflector(api=self.api, resource=Resource(name, path),
                                              reduce=reduce, on_change=self._changed,
                                              tuning=tuning)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> KubeCache:
        for name, r in self.reflectors.items():
            t = threading.Thread(target=r.run, args=(self._stop,), name=f"kube-{name}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._builder, name="kube-builder", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ends every watch and thread; returns within about ``timeout_s``."""
        self._stop.set()
        self._dirty.set()
        self.api.close()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _required_synced(self) -> bool:
        return all(r.synced.is_set() for name, r in self.reflectors.items()
                   if name in _REQUIRED)

    def synced(self) -> bool:
        """Pods, services and EndpointSlices have been listed and a snapshot built from them
        (for /readyz)."""
        return self.snapshot is not None and self._required_synced()

    def wait_synced(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.synced():
                return True
            self._stop.wait(0.05)
        return self.synced()

    def stats(self) -> dict[str, ReflectorStats]:
        return {name: r.stats for name, r in self.reflectors.items()}

    # -- changes ---------------------------------------------------------------------------------
    def _changed(self, resource: str, gone: list[Any]) -> None:
        if resource in ("pods", "local-pods") and gone:
            expires = self.clock() + self.config.ip_reuse_grace_s
            with self._lock:
                for rec in gone:
                    if isinstance(rec, PodRec) and rec.ips and not rec.host_network:
                        self._tombstones[rec.uid] = Tombstone(rec, expires)
                while len(self._tombstones) > self.config.max_tombstones:
                    self._tombstones.pop(next(iter(self._tombstones)))
        self._dirty.set()

    def _builder(self) -> None:
        last = -1e18
        while not self._stop.is_set():
            timeout = None
            snap = self.snapshot
            if snap is not None and snap.next_expiry is not None:
                timeout = max(0.0, snap.next_expiry - self.clock())
            rescan = min(2.0, self.config.rescan_s) if self._pending_scan else self.config.rescan_s
            timeout = min(timeout if timeout is not None else rescan, rescan)
            self._dirty.wait(timeout)
            if self._stop.is_set():
                return
            wait = self.config.min_rebuild_s - (time.monotonic() - last)
            if wait > 0:
                self._stop.wait(wait)  # debounce: a burst of events is one rebuild
            self._dirty.clear()
            last = time.monotonic()
            if not self._required_synced():
                continue
            try:
                self.rebuild()
            except Exception:  # keep the last good snapshot; log and go on
                log.exception("kubernetes: building the inventory snapshot failed")

    def _pods(self) -> list[PodRec]:
        local: list[PodRec] = self.reflectors["local-pods"].snapshot()
        if "pods" not in self.reflectors:
            return local
        by_uid = {p.uid: p for p in self.reflectors["pods"].snapshot()}
        by_uid.update((p.uid, p) for p in local)  # this node's own watch is the fresher view
        return list(by_uid.values())

    def _scan(self, local: list[PodRec], now: float) -> None:
        """Refresh container -> netns (``/proc``) and container -> cgroup id (cgroupfs) for
        this node's containers: when the set of containers changed, every ``rescan_s``, and
        every 2 s while some pod's containers were found in neither (just started)."""
        wanted = frozenset(c for p in local if not p.host_network for c in p.containers)
        every = frozenset(c for p in local for c in p.containers)
        interval = min(2.0, self.config.rescan_s) if self._pending_scan else self.config.rescan_s
        if every == self._scanned_for and now - self._last_scan < interval:
            return
        self._netns = netns_of_containers(wanted, Path(self.config.proc_root))
        self._cgroups = {cid: cg for cg, cid in cgroup_ids_of_containers(
            every, Path(self.config.cgroup_root)).items()}
        self._scanned_for = every
        self._last_scan = now
        self._pending_scan = any(
            p.containers and not any(c in self._netns or c in self._cgroups
                                     for c in p.containers) for p in local)

    def rebuild(self) -> Snapshot:
        """Build a snapshot from the current stores and hand it to the resolver."""
        now = self.clock()
        pods = self._pods()
        with self._lock:
            for p in pods:  # a finished pod's IP is free: it keeps naming it for the grace only
                if p.finished:
                    self._finished_at.setdefault(p.uid, now)
            live = {p.uid for p in pods}
            for uid in [u for u in self._finished_at if u not in live]:
                del self._finished_at[uid]
            for uid in [u for u, t in self._tombstones.items() if t.expires <= now]:
                del self._tombstones[uid]
            tombstones = list(self._tombstones.values()) + [
                Tombstone(p, self._finished_at[p.uid] + self.config.ip_reuse_grace_s)
                for p in pods if p.finished and p.uid in self._finished_at]
        local = [p for p in pods if p.node == self.node_name]
        self._scan(local, now)
        replicasets: dict[str, OwnerRec] = {}
        if "replicasets" in self.reflectors:
            with self.reflectors["replicasets"].lock:
                replicasets = dict(self.reflectors["replicasets"].store)
        services: list[ServiceRec] = self.reflectors["services"].snapshot()
        slices: list[SliceRec] = self.reflectors["endpointslices"].snapshot()
        nodes: list[NodeRec] = self.reflectors["nodes"].snapshot()
        snap = build_snapshot(cluster=self.config.cluster_name, pods=pods, services=services,
                              slices=slices, replicasets=replicasets, nodes=nodes,
                              tombstones=tombstones, netns_by_container=self._netns,
                              cgroup_by_container=self._cgroups, local_node=self.node_name,
                              now=now)
        self.resolver.update(snap.inventory, snap.extra)
        self.snapshot = snap
        self.builds += 1
        return snap


def start_kubernetes_inventory(node_name: str, resolver: Resolver,
                               config: KubeConfig | None = None, api: Api | None = None,
                               sync_timeout_s: float = 0.0) -> KubeCache:
    """Start following the cluster; ``resolver`` is updated on every change until ``.stop()``.

    With ``sync_timeout_s`` > 0, waits that long for the first complete snapshot (the agent
    can start without one: until then flows are named by process and address). Raises
    :class:`ConfigError` when there is no node name or no API server configuration.
    """
    cache = KubeCache(node_name, resolver, config, api).start()
    if sync_timeout_s > 0 and not cache.wait_synced(sync_timeout_s):
        log.warning("kubernetes: no complete list from the API server after %.0f s; naming "
                    "flows by process and address until it answers", sync_timeout_s)
    return cache


def config_from_mapping(data: Mapping[str, Any] | None) -> KubeConfig:
    """``kubernetes:`` section of the agent's YAML -> :class:`KubeConfig` (unknown keys are
    errors, as everywhere in the config)."""
    if not data:
        return KubeConfig()
    allowed = {f for f in KubeConfig.__dataclass_fields__ if f != "tuning"}
    tuning_keys = set(WatchTuning.__dataclass_fields__)
    unknown = set(data) - allowed - {"watch"}
    if unknown:
        raise ConfigError(f"kubernetes.{min(unknown)}: unknown key; the keys are "
                          f"{', '.join(sorted(allowed | {'watch'}))}.")
    watch = dict(data.get("watch") or {})
    bad = set(watch) - tuning_keys
    if bad:
        raise ConfigError(f"kubernetes.watch.{min(bad)}: unknown key; the keys are "
                          f"{', '.join(sorted(tuning_keys))}.")
    kwargs = {k: v for k, v in data.items() if k != "watch"}
    try:
        return KubeConfig(**kwargs, tuning=WatchTuning(**watch))
    except TypeError as exc:
        raise ConfigError(f"kubernetes: {exc}.") from None
