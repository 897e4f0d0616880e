"""Records -> per-edge samples: client view, identities, counts, live-socket gauges."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from kubepulse.agent.aggregate import EdgeAggregator
from kubepulse.enrich.inventory import parse
from kubepulse.enrich.resolver import Resolver
from kubepulse.kernel.libbpf import Btf
from kubepulse.kernel.objects import object_path
from kubepulse.probes.tcp_conn import EVENT_DTYPE, SOCK_DTYPE, Enums

INVENTORY = {
    "nodes": [{"name": "n1"}, {"name": "n2"}],
    "pods": [
        {"name": "web-0", "namespace": "shop", "workload": "web", "node": "n1",
         "ip": "10.9.1.2", "netns_inode": 1001},
        {"name": "db-0", "namespace": "shop", "workload": "db", "node": "n2",
         "ip": "10.9.2.2", "netns_inode": 1002},
    ],
    "services": [{"name": "db", "namespace": "shop", "endpoints": ["10.9.2.2"],
                  "ports": [{"port": 5432}]}],
}
SINCE = 1_000_000_000


@pytest.fixture(scope="module")
def enums() -> Enums:
    return Enums.from_btf(Btf.from_elf(object_path("tcp_conn")))


def _rec(e: Enums, outcome: str, *, inbound: bool = False, netns: int = 1001,
         src: str = "10.9.1.2", dst: str = "10.9.2.2", dport: int = 5432,
         kind: str = "close", start: int = SINCE + 10, segs: int = 10,
         retrans: int = 0, lat_ns: int = 0, flags: int = 1) -> np.void:
    r: np.void = np.zeros(1, dtype=EVENT_DTYPE)[0]
    r["kind"] = e.kind_code(kind)
    r["outcome"] = e.outcome_code(outcome) if outcome else 0
    r["direction"] = 2 if inbound else 1
    r["family"] = 4
    r["netns_ino"] = netns
    r["saddr"][:4] = list(ipaddress.IPv4Address(src).packed)
    r["daddr"][:4] = list(ipaddress.IPv4Address(dst).packed)
    r["sport"], r["dport"] = (dport, 40000) if inbound else (40000, dport)
    r["start_ns"] = start
    r["connect_latency_ns"] = lat_ns
    r["segs_out"] = segs
    r["retransmits"] = retrans
    r["flags"] = flags
    r["comm"] = b"web"
    return r


def _agg(e: Enums, node: str = "") -> EdgeAggregator:
    res = Resolver(parse(INVENTORY), node=node)
    return EdgeAggregator(res, e, res.scope())


def _no_socks() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, dtype="<u8"), np.empty(0, dtype=SOCK_DTYPE)


def test_outbound_records_make_one_named_edge(enums: Enums) -> None:
    recs = np.array([_rec(enums, "refused"), _rec(enums, "refused"),
                     _rec(enums, "established_closed", lat_ns=2_000_000, flags=1 | 8),
                     _rec(enums, "", kind="syn_retransmit")], dtype=EVENT_DTYPE)
    samples = _agg(enums).build(recs, *_no_socks(), SINCE)
    assert len(samples) == 1
    s = samples[0]
    assert (s.edge.src.pod, s.edge.src.node, s.edge.dst.pod, s.edge.dst.service) == (
        "web-0", "n1", "db-0", "db")
    assert s.edge.dst_port == 5432
    assert s.outcomes == {"refused": 2, "established_closed": 1}
    assert s.syn_retransmits == 1
    assert s.attempts == 3 and s.handshakes == 1
    assert s.connect_latency.count == 1 and s.connect_latency.max_s == pytest.approx(0.002)


def test_inbound_record_of_a_local_client_is_not_counted_twice(enums: Enums) -> None:
    # db-0's accept side of web-0's connection: web-0 is local too; its outbound record counts.
    recs = np.array([_rec(enums, "established_closed"),
                     _rec(enums, "established_closed", inbound=True, netns=1002,
                          src="10.9.2.2", dst="10.9.1.2")], dtype=EVENT_DTYPE)
    samples = _agg(enums).build(recs, *_no_socks(), SINCE)
    assert [sum(s.outcomes.values()) for s in samples] == [1]


def test_inbound_from_a_client_on_another_node_counts_from_the_server_side(
        enums: Enums) -> None:
    # The agent of node n2: web-0 (n1) is remote, so db-0's inbound record is the only view.
    recs = np.array([_rec(enums, "established_closed"),  # n1's record: out of scope
                     _rec(enums, "reset_sent", inbound=True, netns=1002, src="10.9.2.2",
                          dst="10.9.1.2")], dtype=EVENT_DTYPE)
    agg = _agg(enums, node="n2")
    samples = agg.build(recs, *_no_socks(), SINCE)
    assert agg.last.out_of_scope == 1
    assert len(samples) == 1
    s = samples[0]
    assert (s.edge.src.pod, s.edge.dst.pod, s.edge.dst_port) == ("web-0", "db-0", 5432)
    assert s.outcomes == {"reset_sent": 1}


def test_live_sockets_give_gauges_and_retransmit_deltas(enums: Enums) -> None:
    agg = _agg(enums)
    socks = np.zeros(3, dtype=SOCK_DTYPE)
    for i in range(3):
        socks["direction"][i], socks["family"][i] = 1, 4
        socks["netns_ino"][i], socks["state"][i] = 1001, 1
        socks["saddr"][i][:4] = list(ipaddress.IPv4Address("10.9.1.2").packed)
        socks["daddr"][i][:4] = list(ipaddress.IPv4Address("10.9.2.2").packed)
        socks["sport"][i], socks["dport"][i] = 40000 + i, 5432
    socks["start_ns"] = SINCE - 100  # opened before this tick
    socks["retransmits"] = 5
    keys = np.array([1, 2, 3], dtype="<u8")
    empty = np.empty(0, dtype=EVENT_DTYPE)
    first = agg.build(empty, keys, socks, SINCE)
    assert first[0].open_connections == 3
    assert first[0].segs_retrans == 0  # first sight: a baseline, not new retransmits
    socks["retransmits"][0] = 9
    second = agg.build(empty, keys, socks, SINCE + 1)
    assert second[0].segs_retrans == 4


def test_plain_host_names_processes_and_addresses(enums: Enums) -> None:
    res = Resolver(None, host_name="vm")
    agg = EdgeAggregator(res, enums, res.scope())
    recs = np.array([_rec(enums, "refused", netns=4026531840, src="127.0.0.1",
                          dst="127.0.0.1", dport=1)], dtype=EVENT_DTYPE)
    [s] = agg.build(recs, *_no_socks(), SINCE)
    assert (s.edge.src.kind, s.edge.src.workload, s.edge.dst.kind) == ("host", "web", "host")
