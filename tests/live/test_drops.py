"""drops against the real kernel: an nftables drop between two test namespaces, and a
listener whose accept queue is full, counted in the kernel by reason and tuple."""

from __future__ import annotations

import ipaddress
import sys
import textwrap
import time
from collections.abc import Iterator

import numpy as np
import pytest

from kubepulse.probes.drops import DropProbe, classify
from tests.live.kpd_netns import CLIENT_IP, SERVER_IP, Pair, pair  # noqa: F401

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def probe() -> Iterator[DropProbe]:
    with DropProbe() as p:
        p.start()
        assert p.attach_status == {"skb:kfree_skb": True, "cgroup_skb/ingress:listen": True}
        yield p


def _ip(raw: np.ndarray) -> str:
    return str(ipaddress.IPv4Address(bytes(raw[:4])))


def _rows(probe: DropProbe, netns: int, reason: str) -> np.ndarray:
    snap = probe.snapshot()
    names = probe.reason_names()
    code = next(k for k, v in names.items() if v == reason)
    rows: np.ndarray = snap[(snap["netns_ino"] == netns) & (snap["reason"] == code)]
    return rows


def test_policy_drop_between_namespaces(probe: DropProbe, pair: Pair) -> None:  # noqa: F811
    pair.server.sh("nft", "-f", "-", stdin=(
        "table inet kpd {\n chain in {\n  type filter hook input priority 0;\n"
        f"  ip saddr {CLIENT_IP} udp dport 9999 drop\n }}\n}}\n"))
    pair.client.run(textwrap.dedent(f"""
        import json, socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("{CLIENT_IP}", 40001))
        for _ in range(25):
            s.sendto(b"x" * 100, ("{SERVER_IP}", 9999))
        print(json.dumps({{}}))
    """))
    rows = _rows(probe, pair.server.inode, "NETFILTER_DROP")
    rows = rows[(rows["dport"] == 9999)]
    assert len(rows) == 1, rows
    r = rows[0]
    assert (_ip(r["saddr"]), _ip(r["daddr"]), int(r["sport"])) == (CLIENT_IP, SERVER_IP, 40001)
    assert (int(r["family"]), int(r["protocol"]), int(r["ethertype"])) == (4, 17, 0x0800)
    assert int(r["packets"]) == 25  # exact: one map update per packet
    assert int(r["bytes"]) >= 25 * 128
    assert classify("NETFILTER_DROP") == "policy"
    # Cumulative: more drops add to the same key.
    pair.client.run(textwrap.dedent(f"""
        import json, socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("{CLIENT_IP}", 40001))
        for _ in range(5):
            s.sendto(b"x", ("{SERVER_IP}", 9999))
        print(json.dumps({{}}))
    """))
    rows = _rows(probe, pair.server.inode, "NETFILTER_DROP")
    assert int(rows[rows["dport"] == 9999][0]["packets"]) == 30


# Fill the accept queue of a listener that never accepts, so that the handshake's last ACK
# finds it full (the kernel's own kfree_skb path): pre-fill the queue, hold back the next
# clients' ACKs with nft until they are established on their side, then let their data through.
OVERFLOW_CLIENT = textwrap.dedent("""
    import json, socket, subprocess, sys, time
    server, srv_ns = sys.argv[1], sys.argv[2]
    def nft(stdin):
        subprocess.run(["ip", "netns", "exec", srv_ns, "nft", "-f", "-"], input=stdin,
                       text=True, check=True)
    first = [socket.create_connection((server, 8888), timeout=3) for _ in range(4)]
    nft("table inet kpdack {\\n chain in {\\n  type filter hook input priority 0;\\n"
        "  tcp dport 8888 tcp flags & (fin|syn|rst|psh|ack|urg) == ack drop\\n }\\n}\\n")
    late = [socket.create_connection((server, 8888), timeout=3) for _ in range(4)]
    nft("delete table inet kpdack\\n")
    for s in late:
        s.send(b"x")
    time.sleep(0.5)
    print(json.dumps({"late_ports": [s.getsockname()[1] for s in late]}))
""")

LISTENER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], 8888)); s.listen(4); print("ready", flush=True)
    time.sleep(20)
""")


def test_listen_overflow(probe: DropProbe, pair: Pair) -> None:  # noqa: F811
    pair.server.sh("sysctl", "-qw", "net.ipv4.tcp_syncookies=0")
    srv = pair.server.popen(sys.executable, "-c", LISTENER, SERVER_IP)
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        res = pair.client.run(OVERFLOW_CLIENT, SERVER_IP, pair.server.name, timeout=30)
        late = set(res["late_ports"])
        deadline = time.monotonic() + 5
        while True:
            rows = _rows(probe, pair.server.inode, "TCP_LISTEN_OVERFLOW")
            if rows.size or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert rows.size, "no TCP_LISTEN_OVERFLOW drop counted"
        assert classify("TCP_LISTEN_OVERFLOW") == "listen_overflow"
        for r in rows:
            assert (_ip(r["saddr"]), _ip(r["daddr"]), int(r["dport"])) == (
                CLIENT_IP, SERVER_IP, 8888)
            assert int(r["sport"]) in late
        assert int(rows["packets"].sum()) >= 3  # 4 late clients, room for 1 more
    finally:
        srv.terminate()
        srv.wait(5)


# The commoner case: the queue is already full when the SYN arrives. The kernel consumes that
# SYN (no kfree_skb); the probe's cgroup program counts it, once per (re)transmitted SYN.
SYN_CLIENT = textwrap.dedent("""
    import json, socket, sys
    server = sys.argv[1]
    held = [socket.create_connection((server, 8889), timeout=3) for _ in range(2)]
    s = socket.socket(); s.settimeout(2.5); s.bind(("", 0))
    port = s.getsockname()[1]
    try:
        s.connect((server, 8889))
        print(json.dumps({"port": port, "connected": True}))
    except OSError:
        print(json.dumps({"port": port, "connected": False}))
""")


def test_listen_overflow_at_the_syn(probe: DropProbe, pair: Pair) -> None:  # noqa: F811
    before = probe.counters()["listen_full"]
    srv = pair.server.popen(sys.executable, "-c", LISTENER.replace("8888", "8889").replace(
        "s.listen(4)", "s.listen(1)"), SERVER_IP)
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        res = pair.client.run(SYN_CLIENT, SERVER_IP, timeout=30)
        assert res["connected"] is False  # backlog 1 holds 2; the third SYN goes unanswered
        rows = _rows(probe, pair.server.inode, "TCP_LISTEN_OVERFLOW")
        rows = rows[rows["sport"] == int(res["port"])]
        assert len(rows) == 1
        r = rows[0]
        assert (_ip(r["saddr"]), _ip(r["daddr"]), int(r["dport"])) == (CLIENT_IP, SERVER_IP,
                                                                        8889)
        # The SYN and its retransmit after 1 s, within the client's 2.5 s: 2 (3 on a slow run).
        assert 2 <= int(r["packets"]) <= 3
        assert probe.counters()["listen_full"] - before >= int(r["packets"])
    finally:
        srv.terminate()
        srv.wait(5)


def test_counters_and_unknown_reason_names(probe: DropProbe) -> None:
    c = probe.counters()
    assert set(c) == {"drops", "new_keys", "no_header", "listen_full"}
    assert c["drops"] >= c["new_keys"] > 0
    assert probe.reason_name(1 << 16 | 3) == "SUBSYS1_3"
