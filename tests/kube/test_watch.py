"""The list-then-watch cache against a stand-in for the API server.

The real API server cannot run here; :mod:`tests.kube.apiserver` stands in for it and speaks
the real protocol (paginated lists with resourceVersion, chunked watch streams, BOOKMARK,
410 Gone, dropped connections). Each test ends with the cache (as the Resolver sees it) equal
to the server's objects, within a bounded time, polled with deadlines.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest

from kubepulse.enrich.kube import KubeCache, KubeConfig, config_from_mapping
from kubepulse.enrich.reflector import WatchTuning
from kubepulse.enrich.resolver import Resolver
from kubepulse.errors import ConfigError
from tests.kube import objects as o
from tests.kube.apiserver import StandInApiServer
from tests.kube.conftest import FAST, NODE, wait_for

Start = Callable[..., tuple[KubeCache, Resolver]]
POD_PATH = "/api/v1/pods"
NODES_PATH = "/api/v1/nodes"
LATER = "2026-11-25T22:00:00Z"


def names(resolver: Resolver) -> dict[str, tuple[str, str]]:
    """IP -> (namespace/pod, workload): what the resolver names every pod IP."""
    inv = resolver.inventory
    if inv is None:
        return {}
    return {p.ip: (f"{p.namespace}/{p.name}", p.workload) for p in inv.pods}


def server_names(server: StandInApiServer) -> dict[str, tuple[str, str]]:
    """The same, from the server's own objects (what a correct cache must end with)."""
    rs_owner = {f"{r['metadata']['namespace']}/{r['metadata']['name']}":
                r["metadata"]["ownerReferences"][0]["name"]
                for r in server.state.objects["/apis/apps/v1/replicasets"].values()
                if r["metadata"].get("ownerReferences")}
    out = {}
    for p in server.state.objects[POD_PATH].values():
        meta, status = p["metadata"], p["status"]
        if p["spec"].get("hostNetwork") or not status.get("podIP") \
                or status.get("phase") in ("Succeeded", "Failed"):
            continue
        ref = meta["ownerReferences"][0] if meta.get("ownerReferences") else None
        wl = meta["name"] if ref is None else (
            rs_owner.get(f"{meta['namespace']}/{ref['name']}", ref["name"])
            if ref["kind"] == "ReplicaSet" else ref["name"])
        out[status["podIP"]] = (f"{meta['namespace']}/{meta['name']}", wl)
    return out


def converged(server: StandInApiServer, resolver: Resolver) -> bool:
    return names(resolver) == server_names(server)


def test_initial_sync_names_everything(apiserver: StandInApiServer, start_cache: Start) -> None:
    cache, r = start_cache(apiserver)
    wait_for(cache.synced, 10, "the first snapshot")
    assert names(r) == {
        "10.244.1.12": ("shop/api-7d9f8b6c5-x2x4z", "api"),
        "10.244.2.12": ("shop/api-7d9f8b6c5-q8w7e", "api"),
        "10.244.2.20": ("shop/db-0", "db"),
    }
    assert r.remote("10.244.2.20", 5432).service == "db"
    assert r.remote("10.96.0.20", 80).service == "api"
    assert r.remote("192.168.50.12").node == "node2"
    assert r.remote("203.0.113.9").kind == "external"


def test_speaks_the_list_watch_protocol(apiserver: StandInApiServer, start_cache: Start) -> None:
    cache, _ = start_cache(apiserver)
    wait_for(cache.synced, 10, "the first snapshot")
    reqs = [(p, q) for _, p, q in apiserver.requests]
    lists = [q for p, q in reqs if p == POD_PATH and "watch" not in q]
    # paginated (page_size 3 for 5 pods), then a watch from the list's resourceVersion
    assert any("continue" in q for q in lists)
    assert all(q["limit"] == "3" for q in lists)
    local = [q for q in lists if q.get("fieldSelector") == f"spec.nodeName={NODE}"]
    assert local, "this node's pods are listed with a fieldSelector"
    wait_for(lambda: apiserver.count(POD_PATH, watch=True) >= 2, 5, "both pod watches")
    watches = [q for _, p, q in apiserver.requests if p == POD_PATH and q.get("watch") == "1"]
    for q in watches:
        assert q["allowWatchBookmarks"] == "true"
        assert int(q["resourceVersion"]) > 100
        assert int(q["timeoutSeconds"]) == FAST.watch_timeout_s
    # bookmarks arrive and advance the resourceVersion without a re-list
    refl = cache.reflectors["nodes"]
    rv0 = refl.resource_version
    apiserver.state.put(o.node("node3", "192.168.50.13", "10.244.3.0/24"))  # bumps the RV
    wait_for(lambda: refl.stats.bookmarks >= 2 and refl.resource_version != rv0, 5,
             "a bookmark that moves the nodes' resourceVersion")
    assert refl.stats.lists == 1


def test_pods_come_and_go_and_ip_reuse_is_time_aware(apiserver: StandInApiServer,
                                                     start_cache: Start) -> None:
    """Pods are created and deleted while flows are live (a reader resolves all the time);
    a reused IP names the new pod as soon as it is known, and a deleted pod's IP keeps naming
    it for the grace period only."""
    cache, r = start_cache(apiserver, ip_reuse_grace_s=1.5)
    wait_for(cache.synced, 10, "the first snapshot")
    state = apiserver.state
    stop = threading.Event()
    seen: list[str] = []

    def flows() -> None:  # the agent's thread, resolving every "record"
        for _ in range(1_000_000):
            if stop.is_set():
                return
            ident = r.remote("10.244.1.77", 8080)
            if not seen or seen[-1] != (ident.pod or ident.kind):
                seen.append(ident.pod or ident.kind)
            time.sleep(0.001)

    reader = threading.Thread(target=flows)
    reader.start()
    try:
        state.put(o.pod("shop", "worker-old", "10.244.1.77", NODE,
                        owners=[o.owner("Job", "batch-1", "batch/v1")]))
        wait_for(lambda: r.remote("10.244.1.77").pod == "worker-old", 5, "the new pod")
        state.delete("Pod", "shop", "worker-old")
        # deleted: still named for the grace (late records of the old pod)...
        wait_for(lambda: "shop/worker-old" not in cache.reflectors["pods"].store
                 and "shop/worker-old" not in cache.reflectors["local-pods"].store, 5,
                 "the delete to reach the cache")
        t_deleted = time.monotonic()
        builds = cache.builds
        wait_for(lambda: cache.builds > builds, 5, "a snapshot after the delete")
        assert r.remote("10.244.1.77").pod == "worker-old"
        # ... then external, not before the grace
        wait_for(lambda: r.remote("10.244.1.77").kind == "external", 5, "the grace to end")
        assert time.monotonic() - t_deleted >= 1.0
        # reuse inside the grace: the new pod wins as soon as it is known
        state.put(o.pod("shop", "worker-a", "10.244.1.77", NODE, created="2026-11-25T21:00:00Z"))
        wait_for(lambda: r.remote("10.244.1.77").pod == "worker-a", 5, "worker-a")
        state.delete("Pod", "shop", "worker-a")
        state.put(o.pod("shop", "worker-b", "10.244.1.77", "node2", created=LATER))
        wait_for(lambda: r.remote("10.244.1.77").pod == "worker-b", 5, "the reused IP")
        # a pod that finished frees its IP too (after the grace)
        state.put(o.pod("shop", "worker-b", "10.244.1.77", "node2", phase="Succeeded",
                        created=LATER))
        wait_for(lambda: r.remote("10.244.1.77").kind == "external", 5, "the finished pod")
    finally:
        stop.set()
        reader.join(10)
    assert seen[0] in ("external", "worker-old")
    assert [s for s in seen if s != "external"] == ["worker-old", "worker-a", "worker-b"]
    wait_for(lambda: converged(apiserver, r), 5, "the cache to match the server")


def test_dropped_watch_resumes_without_relisting(apiserver: StandInApiServer,
                                                 start_cache: Start) -> None:
    cache, r = start_cache(apiserver)
    wait_for(cache.synced, 10, "the first snapshot")

    def watching(n: int) -> bool:
        return apiserver.count(POD_PATH, watch=True) >= n

    for i in range(3):
        watches = apiserver.count(POD_PATH, watch=True)
        apiserver.drop_watches()
        apiserver.state.put(o.pod("shop", f"late-{i}", f"10.244.1.{100 + i}", NODE))
        wait_for(lambda: converged(apiserver, r), 5, f"the pod added after drop {i}")
        wait_for(partial(watching, watches + 2), 5, "both pod reflectors to watch again")
    assert cache.reflectors, "no reflectors"
    assert all(refl.stats.lists == 1 for refl in cache.reflectors.values()), \
        "a dropped watch resumes from its resourceVersion; nothing is listed again"
    assert cache.reflectors["pods"].stats.watches >= 4


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-status"])
def test_410_mid_stream_relists(apiserver: StandInApiServer, start_cache: Start,
                                as_http: bool) -> None:
    apiserver.gone_as_http = as_http
    cache, r = start_cache(apiserver)
    wait_for(cache.synced, 10, "the first snapshot")
    apiserver.state.delete("Pod", "shop", "db-0")
    apiserver.state.put(o.pod("shop", "db-1", "10.244.2.21", "node2",
                              owners=[o.owner("StatefulSet", "db")]))
    wait_for(lambda: converged(apiserver, r), 5, "the changes")
    # the server forgets its history and says 410 mid-stream; changes made meanwhile must
    # still arrive (by the re-list)
    if as_http:  # the history is gone, then the connection: the resumed watch gets HTTP 410
        apiserver.state.compact()
        apiserver.drop_watches()
    else:
        apiserver.gone_midstream()
    apiserver.state.put(o.pod("shop", "db-2", "10.244.2.22", "node2",
                              owners=[o.owner("StatefulSet", "db")]))
    wait_for(lambda: cache.reflectors["pods"].stats.relists_gone >= 1, 5, "a 410")
    wait_for(lambda: converged(apiserver, r), 5, "the re-listed cache")
    assert "10.244.2.22" in names(r)
    assert cache.reflectors["pods"].stats.lists >= 2


def test_api_server_restart(apiserver: StandInApiServer, start_cache: Start) -> None:
    """The server goes away (every connection cut), things change while it is down, and it
    comes back on the same address with an empty watch cache."""
    cache, r = start_cache(apiserver)
    wait_for(cache.synced, 10, "the first snapshot")
    apiserver.stop()
    apiserver.state.delete("Pod", "shop", "api-7d9f8b6c5-q8w7e")
    apiserver.state.put(o.pod("shop", "api-7d9f8b6c5-n3m4b", "10.244.2.13", "node2",
                              labels={"app": "api", "pod-template-hash": "7d9f8b6c5"},
                              owners=[o.owner("ReplicaSet", "api-7d9f8b6c5")]))
    down_at = time.monotonic()
    wait_for(lambda: cache.reflectors["pods"].stats.errors >= 2, 10,
             "the cache to notice the server is down")
    apiserver.state.compact()
    apiserver.start()
    wait_for(lambda: converged(apiserver, r), 10, "the cache after the restart")
    assert time.monotonic() - down_at < 15
    assert names(r)["10.244.2.13"] == ("shop/api-7d9f8b6c5-n3m4b", "api")
    assert "10.244.2.12" not in names(r)


def _outage(apiserver: StandInApiServer, start_cache: Start, seconds: float) -> None:
    cache, r = start_cache(apiserver)
    wait_for(cache.synced, 10, "the first snapshot")
    apiserver.fail_for(seconds, 500)
    apiserver.drop_watches()
    t0 = time.monotonic()
    apiserver.state.put(o.pod("shop", "during-outage", "10.244.1.90", NODE))
    apiserver.state.delete("Pod", "shop", "db-0")
    wait_for(lambda: time.monotonic() - t0 > seconds, seconds + 1, "the outage to end")
    during = apiserver.count(POD_PATH, since=t0)
    # no hot loop: two pod reflectors, backoff 0.1 s doubling to 1 s with jitter >= 0.5
    bound = 2 * (seconds / 0.5 + 6)
    assert during <= bound, f"{during} pod requests in a {seconds} s outage (bound {bound})"
    wait_for(lambda: converged(apiserver, r), FAST.backoff_max_s + 5, "the cache after the 500s")
    assert "10.244.1.90" in names(r) and "10.244.2.20" not in names(r)
    assert cache.reflectors["pods"].stats.errors >= 2


def test_500s_for_a_while(apiserver: StandInApiServer, start_cache: Start) -> None:
    _outage(apiserver, start_cache, 4.0)


@pytest.mark.slow
def test_500s_for_a_minute(apiserver: StandInApiServer, start_cache: Start) -> None:
    _outage(apiserver, start_cache, 60.0)


def test_backoff_is_exponential_with_jitter_and_capped(apiserver: StandInApiServer,
                                                       start_cache: Start) -> None:
    """Every request answered 500: the gaps between one reflector's attempts, measured where
    they arrive (the stand-in), double from ``backoff_initial_s``, never exceed
    ``backoff_max_s``, and are jittered (uniform in [backoff/2, backoff])."""
    initial, cap, attempts = 0.04, 0.32, 12
    apiserver.fail_for(120)
    tuning = WatchTuning(backoff_initial_s=initial, backoff_max_s=cap)
    cache, resolver = start_cache(apiserver, tuning)
    # Only the nodes reflector asks for /api/v1/nodes; each of its failed lists is one request.
    wait_for(lambda: apiserver.count(NODES_PATH) >= attempts, 15, f"{attempts} attempts")
    assert not cache.synced() and resolver.inventory is None
    times = apiserver.times(NODES_PATH)[:attempts]
    gaps = [b - a for a, b in pairwise(times)]
    nominal = [min(initial * 2**k, cap) for k in range(len(gaps))]  # 0.04 .08 .16 .32 .32 ..
    shown = ", ".join(f"{g:.3f}" for g in gaps)
    slack = 0.08  # scheduling and the request itself, on a loaded machine
    for k, (gap, b) in enumerate(zip(gaps, nominal)):
        assert b / 2 - 0.005 <= gap <= b + slack, f"gap {k} outside [{b / 2}, {b}]: {shown}"
    assert max(gaps) <= cap + slack, f"above the cap {cap}: {shown}"
    # grows: the first two gaps are below every capped one (without backoff they would match)
    assert max(gaps[:2]) < min(gaps[3:]), shown
    # jittered: the delay / nominal ratios (in [0.5, 1]) are not all the same; for the 9 gaps
    # with nominal >= 0.16 s, a spread under 0.1 has a probability of ~2e-5 by chance
    ratios = [g / b for g, b in zip(gaps[2:], nominal[2:])]
    assert max(ratios) - min(ratios) > 0.1, f"no jitter: ratios {ratios} ({shown})"


def test_nothing_listening_leaves_nothing_known() -> None:
    """Against a port where nothing listens: attempts keep failing, nothing is synced and the
    resolver has no inventory (flows are named by process and address)."""
    server = StandInApiServer().start()
    url = server.url
    server.stop()
    resolver = Resolver(node=NODE)
    tuning = WatchTuning(backoff_initial_s=0.05, backoff_max_s=0.4)
    cache = KubeCache(NODE, resolver, KubeConfig(server=url, tuning=tuning)).start()
    try:
        refl = cache.reflectors["nodes"]
        wait_for(lambda: refl.stats.errors >= 8, 10, "eight failed attempts")
        assert not refl.synced.is_set() and not cache.synced()
        assert resolver.inventory is None  # nothing known: flows named by process and address
    finally:
        cache.stop()


def test_kubeconfig_with_a_token(apiserver: StandInApiServer, tmp_path: Path) -> None:
    """The kubeconfig path (lightkube's) is used when no server is given; its token is sent."""
    kc = tmp_path / "kubeconfig"
    kc.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: stand-in
  cluster: {{server: "{apiserver.url}"}}
users:
- name: agent
  user: {{token: "s3cr3t-token"}}
contexts:
- name: stand-in
  context: {{cluster: stand-in, user: agent}}
current-context: stand-in
""")
    resolver = Resolver(node=NODE)
    cache = KubeCache(NODE, resolver, KubeConfig(kubeconfig=str(kc), tuning=FAST)).start()
    try:
        wait_for(cache.synced, 10, "the first snapshot through the kubeconfig")
    finally:
        cache.stop()
    assert "10.244.2.20" in names(resolver)
    assert set(apiserver.auth) == {"Bearer s3cr3t-token"}


def test_missing_configuration_is_one_sentence(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="no API server configuration"):
        KubeCache(NODE, Resolver(), KubeConfig())
    with pytest.raises(ConfigError, match="NODE_NAME"):
        KubeCache("", Resolver(), KubeConfig(server="http://127.0.0.1:1"))


def test_config_from_mapping() -> None:
    conf = config_from_mapping({"ip_reuse_grace_s": 10, "watch": {"backoff_max_s": 5}})
    assert conf.ip_reuse_grace_s == 10 and conf.tuning.backoff_max_s == 5
    with pytest.raises(ConfigError, match="kubernetes.grace"):
        config_from_mapping({"grace": 1})
    with pytest.raises(ConfigError, match="kubernetes.watch.nope"):
        config_from_mapping({"watch": {"nope": 1}})


def test_objects_beyond_the_bound_are_counted_not_kept(apiserver: StandInApiServer,
                                                       start_cache: Start) -> None:
    tuning = WatchTuning(**{**FAST.__dict__, "max_objects": 2})
    cache, _ = start_cache(apiserver, tuning=tuning)
    wait_for(cache.synced, 10, "the first snapshot")
    pods = cache.reflectors["pods"]
    assert len(pods.store) == 2 and pods.stats.dropped_over_limit >= 2


def test_local_pods_by_netns_and_cgroup(apiserver: StandInApiServer, tmp_path: Path) -> None:
    """This node's containers: container id (pod status) -> cgroup path -> netns inode
    (/proc) and cgroup id (cgroupfs), on trees laid out as the kubelet and containerd do."""
    pods = apiserver.state.objects[POD_PATH]
    api_pod = pods["shop/api-7d9f8b6c5-x2x4z"]
    proxy = pods["kube-system/kube-proxy-7xk2p"]  # hostNetwork

    def container(obj: dict[str, object]) -> tuple[str, str]:
        status = obj["status"]
        assert isinstance(status, dict)
        meta = obj["metadata"]
        assert isinstance(meta, dict)
        cid = status["containerStatuses"][0]["containerID"].split("://")[1]
        return cid, str(meta["uid"]).replace("-", "_")

    proc, cg = tmp_path / "proc", tmp_path / "cgroup"
    leaves = {}
    for obj, pid, netns in ((api_pod, 4242, 4026532459), (proxy, 4343, 4026531840)):
        cid, uid = container(obj)
        path = (f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/"
                f"cri-containerd-{cid}.scope")
        (proc / str(pid) / "ns").mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(f"0::/{path}\n")
        os.symlink(f"net:[{netns}]", proc / str(pid) / "ns" / "net")
        (cg / path).mkdir(parents=True)
        leaves[pid] = (cg / path).stat().st_ino
    resolver = Resolver(node=NODE)
    conf = KubeConfig(server=apiserver.url, tuning=FAST, proc_root=str(proc),
                      cgroup_root=str(cg), whole_kernel=False)
    cache = KubeCache(NODE, resolver, conf).start()
    try:
        wait_for(cache.synced, 10, "the first snapshot")
        by_netns = resolver.local(4026532459, "", "nginx")
        assert (by_netns.pod, by_netns.workload) == ("api-7d9f8b6c5-x2x4z", "api")
        assert resolver.scope().netns == frozenset({4026532459})
        by_cgroup = resolver.local(4026531840, "192.168.50.11", "kube-proxy",
                                   cgroup_id=leaves[4343])
        assert (by_cgroup.pod, by_cgroup.workload, by_cgroup.namespace) == (
            "kube-proxy-7xk2p", "kube-proxy", "kube-system")
        assert resolver.local(0, "", "nginx", cgroup_id=leaves[4242]).pod == \
            "api-7d9f8b6c5-x2x4z"
        assert resolver.local(4026531840, "192.168.50.11", "sshd").kind == "host"
    finally:
        cache.stop()
    # on a real node (the default) the agent speaks for the whole kernel
    assert KubeConfig().whole_kernel


def test_a_server_that_always_answers_410_is_not_hammered(apiserver: StandInApiServer,
                                                          start_cache: Start) -> None:
    """List succeeds, every watch gets 410: the re-lists back off instead of looping."""
    apiserver.gone_as_http = True
    apiserver.state.oldest_rv = 10**12  # no resourceVersion is recent enough to watch from
    cache, r = start_cache(apiserver)
    wait_for(cache.synced, 10, "the first snapshot (lists still work)")
    assert "10.244.2.20" in names(r)
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 > 3.0, 4, "a 3 s window")
    lists = apiserver.count("/api/v1/nodes", watch=False, since=t0)
    # backoff 0.1 s doubling to 1 s (jitter >= 0.5): at most ~8 list+watch rounds in 3 s
    assert 1 <= lists <= 10, f"{lists} lists of nodes in 3 s"


def test_replicasets_forbidden_still_names_deployments(apiserver: StandInApiServer,
                                                       start_cache: Start) -> None:
    """RBAC without replicasets: the snapshot is made all the same, and a Deployment's pods
    are named by the ReplicaSet's name minus its pod-template-hash."""
    apiserver.forbidden.add("/apis/apps/v1/replicasets")
    cache, r = start_cache(apiserver)
    wait_for(cache.synced, 10, "a snapshot without replicasets")
    assert names(r)["10.244.1.12"] == ("shop/api-7d9f8b6c5-x2x4z", "api")
    assert not cache.reflectors["replicasets"].synced.is_set()
    wait_for(lambda: cache.reflectors["replicasets"].stats.errors >= 2, 5, "retries")
