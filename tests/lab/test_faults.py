"""Each fault, observed from a client socket inside the lab as its own effect, then undone."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from kubepulse.lab import cluster, faults, labels, procs
from kubepulse.lab.sh import in_netns

from .conftest import netns_counter, probe, tcp_established, wait_until

pytestmark = pytest.mark.lab


def ip(lab: cluster.Lab, pod: str) -> str:
    return lab.plan.pod(pod).ip


def healthy(lab: cluster.Lab, client: str, server: str, port: int) -> None:
    r = probe(lab, client, "tcp", ip(lab, server), str(port))
    assert r["outcome"] == "ok", r


def test_refused_refuses_only_the_target(lab: cluster.Lab, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    f = faults.start(lab, "refused", "shop/api/api-0")
    try:
        r = probe(lab, "frontend-0", "tcp", ip(lab, "api-0"), "8080")
        assert (r["outcome"], r["failed_at"]) == ("refused", "connect")
        healthy(lab, "frontend-0", "api-1", 8080)
    finally:
        gt = f.stop(out)
    healthy(lab, "frontend-0", "api-0", 8080)
    assert labels.load(out) == [gt]
    assert gt.expected_alert == "connection_refused"
    assert gt.destination.pod == "api-0" and gt.destination.workload == "api"
    assert gt.start_epoch <= gt.end_epoch


def test_blackhole_times_out_connects(lab: cluster.Lab, tmp_path: Path) -> None:
    f = faults.start(lab, "blackhole", "shop/db/db-0")
    try:
        r = probe(lab, "api-0", "tcp", ip(lab, "db-0"), "5432", "--timeout", "1.5")
        assert (r["outcome"], r["failed_at"]) == ("timeout", "connect")
        assert r["total_retrans"] >= 1  # the SYN was sent again, and dropped again
    finally:
        f.stop(tmp_path / "l.jsonl")
    healthy(lab, "api-0", "db-0", 5432)


def test_loss_shows_retransmits(lab: cluster.Lab, tmp_path: Path) -> None:
    f = faults.start(lab, "loss", "shop/api/api-1", "shop/frontend", percent=15)
    try:
        # veth and bridge carry GSO super-frames (up to 64 KB): 200 KB is a handful of frames,
        # so ask for enough of them that 15 % loss cannot miss by chance (0.85^100 ~ 1e-7).
        r = probe(lab, "frontend-0", "tcp", ip(lab, "api-1"), "8080", "--body", "200000",
                  "--requests", "25", "--timeout", "30")
        assert r["total_retrans"] > 0, r
        # The loss is on the frontend -> api-1 edge only: loadgen's traffic is untouched.
        assert probe(lab, "loadgen-0", "tcp", ip(lab, "api-1"), "8080", "--body", "200000",
                     "--requests", "2")["total_retrans"] == 0
    finally:
        gt = f.stop(tmp_path / "l.jsonl")
    assert gt.params["percent"] == 15 and gt.source.workload == "frontend"


def test_reset_tears_down_an_established_connection(lab: cluster.Lab, tmp_path: Path) -> None:
    go = tmp_path / "go"
    p = lab.plan.pod("api-0")
    client = subprocess.Popen(
        in_netns(p.netns, procs.python_argv("probe", "tcp", ip(lab, "db-0"), "5432",
                                            "--requests", "2", "--pause-file", str(go))),
        stdout=subprocess.PIPE, text=True, env=procs.child_env(),
    )
    assert client.stdout is not None
    assert '"established"' in client.stdout.readline()  # first request done on this socket
    f = faults.start(lab, "reset", "shop/db/db-0", "shop/api")
    try:
        go.touch()
        out, _ = client.communicate(timeout=30)
        # A new connection from the source is reset at its first request; another workload
        # is served; and the server did it, not a packet filter in its pod.
        fresh = probe(lab, "api-1", "tcp", ip(lab, "db-0"), "5432")
        assert (fresh["outcome"], fresh["failed_at"]) == ("reset", "request1"), fresh
        healthy(lab, "frontend-0", "db-0", 5432)
        db = next(p for p in cluster.status(lab.state_dir)["pods"] if p["pod"] == "shop/db-0")
        assert db["fault_tables"] == [] and db["mode"].startswith("resetting "), db
    finally:
        f.stop(tmp_path / "l.jsonl")
    import json

    r = json.loads(out.strip().splitlines()[-1])
    assert (r["outcome"], r["requests_ok"], r["failed_at"]) == ("reset", 1, "request2"), r
    healthy(lab, "api-0", "db-0", 5432)


def test_policy_deny_drops_only_the_denied_workload(lab: cluster.Lab, tmp_path: Path) -> None:
    f = faults.start(lab, "policy_deny", "shop/cache", "shop/api")
    try:
        r = probe(lab, "api-0", "tcp", ip(lab, "cache-1"), "6379", "--timeout", "1.5")
        assert (r["outcome"], r["failed_at"]) == ("timeout", "connect")
        healthy(lab, "frontend-0", "cache-1", 6379)  # other workloads still get through
    finally:
        gt = f.stop(tmp_path / "l.jsonl")
    assert gt.expected_alert == "policy_denied" and gt.source.workload == "api"
    healthy(lab, "api-0", "cache-1", 6379)


@pytest.mark.parametrize("fault,rcode", [("dns_nxdomain", "NXDOMAIN"),
                                         ("dns_servfail", "SERVFAIL")])
def test_dns_error_faults_answer_with_their_rcode(
    lab: cluster.Lab, tmp_path: Path, fault: str, rcode: str
) -> None:
    name = "db.shop.svc.cluster.local"
    f = faults.start(lab, fault, "kube-system/kube-dns", "shop/api")
    try:
        r = probe(lab, "api-1", "dns", name, "--server", lab.plan.dns_ip)
        assert r["rcode"] == rcode, r
        # Only the source workload's lookups are affected.
        assert probe(lab, "frontend-0", "dns", name, "--server", lab.plan.dns_ip)["rcode"] \
            == "NOERROR"
    finally:
        gt = f.stop(tmp_path / "l.jsonl")
    assert gt.expected_alert == "dns_errors"
    r = probe(lab, "api-1", "dns", name, "--server", lab.plan.dns_ip)
    assert (r["rcode"], r["answers"]) == ("NOERROR", [ip(lab, "db-0")])


def test_dns_latency_answers_late_and_dns_timeout_not_at_all(
    lab: cluster.Lab, tmp_path: Path
) -> None:
    name = "api.shop.svc.cluster.local"
    f = faults.start(lab, "dns_latency", "kube-system/kube-dns", delay_ms=600)
    try:
        r = probe(lab, "frontend-1", "dns", name, "--server", lab.plan.dns_ip, "--timeout", "3")
        assert r["rcode"] == "NOERROR" and r["elapsed_s"] >= 0.6, r
        assert sorted(r["answers"]) == sorted([ip(lab, "api-0"), ip(lab, "api-1")])
    finally:
        f.stop(tmp_path / "l.jsonl")
    f = faults.start(lab, "dns_timeout", "kube-system/kube-dns")
    try:
        r = probe(lab, "frontend-1", "dns", name, "--server", lab.plan.dns_ip, "--timeout", "1")
        assert r["outcome"] == "timeout", r
    finally:
        f.stop(tmp_path / "l.jsonl")
    assert probe(lab, "frontend-1", "dns", name, "--server", lab.plan.dns_ip)["elapsed_s"] < 0.5


def test_partition_cuts_only_the_node_pair(lab: cluster.Lab, tmp_path: Path) -> None:
    f = faults.start(lab, "partition", "node:node2", "node:node1")
    try:
        # node1 pod -> node2 pod: cut, in both directions.
        r = probe(lab, "api-0", "tcp", ip(lab, "api-1"), "8080", "--timeout", "1.5")
        assert r["outcome"] == "timeout", r
        r = probe(lab, "api-1", "tcp", ip(lab, "cache-0"), "6379", "--timeout", "1.5")
        assert r["outcome"] == "timeout", r
        # Same-node pairs still talk, on both nodes.
        healthy(lab, "api-0", "cache-0", 6379)
        healthy(lab, "api-1", "db-0", 5432)
        # The host still reaches both nodes (its link is not part of the pair).
        import socket

        for pod in ("api-0", "api-1"):
            socket.create_connection((ip(lab, pod), 8080), timeout=2).close()
    finally:
        gt = f.stop(tmp_path / "l.jsonl")
    assert (gt.source.node, gt.destination.node, gt.symmetric) == ("node1", "node2", True)
    healthy(lab, "api-0", "api-1", 8080)


def test_listen_overflow_overflows_the_accept_queue(lab: cluster.Lab, tmp_path: Path) -> None:
    netns = lab.plan.pod("cache-0").netns
    before = netns_counter(netns, "TcpExt", "ListenOverflows")
    f = faults.start(lab, "listen_overflow", "shop/cache/cache-0")
    try:
        r = probe(lab, "api-1", "tcp", ip(lab, "cache-0"), "6379", "--timeout", "1.5")
        assert r["outcome"] == "timeout", r  # connected into the queue, but never served
        wait_until(lambda: netns_counter(netns, "TcpExt", "ListenOverflows") > before, 10,
                   "ListenOverflows to grow in the cache-0 netns")
    finally:
        gt = f.stop(tmp_path / "l.jsonl")
    assert gt.params["backlog"] == 2
    healthy(lab, "api-1", "cache-0", 6379)


def test_conn_flood_bursts_new_connections(lab: cluster.Lab, tmp_path: Path) -> None:
    netns = lab.plan.pod("loadgen-0").netns
    before = netns_counter(netns, "Tcp", "ActiveOpens")
    t0 = time.monotonic()
    f = faults.start(lab, "conn_flood", "shop/frontend", "shop/loadgen/loadgen-0", rate=200,
                     max_seconds=20)
    try:
        wait_until(lambda: netns_counter(netns, "Tcp", "ActiveOpens") - before >= 300, 15,
                   "300 new connections from loadgen-0")
        rate = (netns_counter(netns, "Tcp", "ActiveOpens") - before) / (time.monotonic() - t0)
        assert rate > 50  # the steady clients open about 2 per second
    finally:
        gt = f.stop(tmp_path / "l.jsonl")
    assert gt.source.pod == "loadgen-0" and gt.expected_alert == "connection_flood"
    assert not any(name.startswith(f"fault-{gt.id}") for name in procs.recorded(lab.state_dir))


def test_pool_exhaustion_fills_the_server(lab: cluster.Lab, tmp_path: Path) -> None:
    src = lab.plan.pod("frontend-0")
    f = faults.start(lab, "pool_exhaustion", "shop/api/api-0", "shop/frontend/frontend-0",
                     max_seconds=30)
    try:
        wait_until(lambda: tcp_established(src.netns, ip(lab, "api-0")) >= 64, 20,
                   "frontend-0 to hold 64 connections to api-0")
        r = probe(lab, "loadgen-0", "tcp", ip(lab, "api-0"), "8080", "--timeout", "1.5")
        assert r["outcome"] == "timeout", r  # the server is at capacity and accepts no more
    finally:
        f.stop(tmp_path / "l.jsonl")
    wait_until(lambda: tcp_established(src.netns, ip(lab, "api-0")) < 10, 10,
               "the leaked connections to close")
    healthy(lab, "loadgen-0", "api-0", 8080)


def test_clear_undoes_faults_whose_owner_died(lab: cluster.Lab) -> None:
    f = faults.start(lab, "refused", "shop/cache/cache-1")
    assert probe(lab, "api-0", "tcp", ip(lab, "cache-1"), "6379")["outcome"] == "refused"
    del f  # the process that started it "crashed": only the record in the state dir is left
    assert faults.clear(lab) == 1
    healthy(lab, "api-0", "cache-1", 6379)
