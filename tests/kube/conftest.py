"""Fixtures for the Kubernetes enrichment tests.

There is no API server on this machine: :mod:`tests.kube.apiserver` stands in for it (a stdlib
HTTP server speaking the real list/watch protocol). Every wait polls with a deadline; no test
sleeps to synchronise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubepulse.enrich.kube import KubeCache, KubeConfig
from kubepulse.enrich.reflector import WatchTuning
from kubepulse.enrich.resolver import Resolver
from tests.kube import objects as o
from tests.kube.apiserver import StandInApiServer, State

NODE = "node1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes a minute or more")


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` every 20 ms until it returns something truthy, or fail after
    ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


FAST = WatchTuning(backoff_initial_s=0.1, backoff_max_s=1.0, watch_timeout_s=30,
                   min_healthy_watch_s=0.5, page_size=3)


def seed(state: State) -> None:
    """A small cluster: two nodes, a Deployment (via a ReplicaSet), a StatefulSet pod, a
    DaemonSet hostNetwork pod, a ClusterIP service and a headless one."""
    state.put(o.node("node1", "192.168.50.11", "10.244.1.0/24"))
    state.put(o.node("node2", "192.168.50.12", "10.244.2.0/24"))
    state.put(o.replicaset("shop", "api-7d9f8b6c5", "api"))
    for name, ip, node in (("api-7d9f8b6c5-x2x4z", "10.244.1.12", "node1"),
                           ("api-7d9f8b6c5-q8w7e", "10.244.2.12", "node2")):
        state.put(o.pod("shop", name, ip, node, labels={"app": "api",
                                                        "pod-template-hash": "7d9f8b6c5"},
                        owners=[o.owner("ReplicaSet", "api-7d9f8b6c5")]))
    state.put(o.pod("shop", "db-0", "10.244.2.20", "node2", labels={"app": "db"},
                    owners=[o.owner("StatefulSet", "db")], port=5432))
    state.put(o.pod("kube-system", "kube-proxy-7xk2p", "192.168.50.11", "node1",
                    labels={"k8s-app": "kube-proxy"}, owners=[o.owner("DaemonSet", "kube-proxy")],
                    host_network=True))
    state.put(o.service("shop", "api", [("http", 80, 8080)], cluster_ip="10.96.0.20"))
    state.put(o.endpointslice("shop", "api", [("http", 8080)],
                              [("10.244.1.12", "api-7d9f8b6c5-x2x4z", "node1"),
                               ("10.244.2.12", "api-7d9f8b6c5-q8w7e", "node2")]))
    state.put(o.service("shop", "db", [("pg", 5432, 5432)]))
    state.put(o.endpointslice("shop", "db", [("pg", 5432)], [("10.244.2.20", "db-0", "node2")]))


@pytest.fixture
def apiserver() -> Iterator[StandInApiServer]:
    server = StandInApiServer(bookmark_interval_s=0.3)
    seed(server.state)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_cache(tmp_path: Any) -> Iterator[Callable[..., tuple[KubeCache, Resolver]]]:
    caches: list[KubeCache] = []

    def start(server: StandInApiServer, tuning: WatchTuning = FAST,
              **config: Any) -> tuple[KubeCache, Resolver]:
        resolver = Resolver(node=NODE)
        config.setdefault("ip_reuse_grace_s", 0.5)  # deleted pods leave the cache quickly
        conf = KubeConfig(server=server.url, tuning=tuning, min_rebuild_s=0.05,
                          proc_root=str(tmp_path / "no-proc"),
                          cgroup_root=str(tmp_path / "no-cgroup"), **config)
        cache = KubeCache(NODE, resolver, conf).start()
        caches.append(cache)
        return cache, resolver

    yield start
    for cache in caches:
        t0 = time.monotonic()
        cache.stop(timeout_s=5.0)
        assert time.monotonic() - t0 < 5.5, "stop() took too long"
        alive = [t.name for t in cache._threads if t.is_alive()]
        assert not alive, f"threads outlived stop(): {alive}"
