"""tcp_conn against the real kernel: every outcome produced for real, on loopback and inside
network namespaces this test creates, over IPv4 and IPv6."""

from __future__ import annotations

import os
import socket
import struct
import textwrap
from collections.abc import Callable

import pytest

from kubepulse.model import ConnEvent
from tests.live.conftest import Collector, NetNs

pytestmark = pytest.mark.live

MY_NETNS = os.stat("/proc/self/ns/net").st_ino


def _listener(family: int, host: str) -> socket.socket:
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(16)
    return srv


def _on_port(port: int) -> Callable[[ConnEvent], bool]:
    return lambda e: e.kind == "close" and (e.dport == port or e.sport == port)


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "::1")])
def test_normal_close_both_sides(collector: Collector, family: int, host: str) -> None:
    srv = _listener(family, host)
    port = srv.getsockname()[1]
    cli = socket.create_connection((host, port))
    conn, _ = srv.accept()
    cli.sendall(b"x" * 1000)
    got = b""
    while len(got) < 1000:
        got += conn.recv(4096)
    conn.sendall(b"y" * 300)
    assert len(cli.recv(300, socket.MSG_WAITALL)) == 300
    cport = cli.getsockname()[1]
    cli.close()
    conn.close()
    srv.close()

    events = collector.wait_for(_on_port(port), count=2)
    events = collector.settle(_on_port(port))
    assert len(events) == 2, events
    out = next(e for e in events if e.direction == "outbound")
    inn = next(e for e in events if e.direction == "inbound")
    fam = 4 if family == socket.AF_INET else 6
    for e in (out, inn):
        assert e.outcome == "established_closed"
        assert e.pid == os.getpid()
        assert e.netns == MY_NETNS
        assert e.family == fam
        assert e.tracked
        assert e.retransmits == 0
        assert e.duration_s is not None and e.duration_s > 0
    assert (out.saddr, out.sport, out.daddr, out.dport) == (host, cport, host, port)
    assert (inn.saddr, inn.sport, inn.daddr, inn.dport) == (host, port, host, cport)
    assert out.bytes_sent == 1000 and out.bytes_received == 300
    assert inn.bytes_sent == 300 and inn.bytes_received == 1000
    assert out.connect_latency_s is not None and 0 < out.connect_latency_s < 1
    assert inn.connect_latency_s is None
    assert out.srtt_established_us > 0


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "::1")])
def test_refused(collector: Collector, family: int, host: str) -> None:
    probe = _listener(family, host)
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5)
    events = collector.settle(lambda e: e.dport == port) if collector.wait_for(
        lambda e: e.dport == port) else []
    assert [e.outcome for e in events] == ["refused"]
    e = events[0]
    assert e.error == "ECONNREFUSED" and e.direction == "outbound" and e.pid == os.getpid()
    assert e.daddr == host and e.netns == MY_NETNS


def test_reset_sent_and_received(collector: Collector) -> None:
    srv = _listener(socket.AF_INET, "127.0.0.1")
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    cli.sendall(b"hello")
    assert conn.recv(5) == b"hello"
    # SO_LINGER {on, 0}: close() aborts with RST.
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cli.close()
    with pytest.raises(ConnectionResetError):
        conn.recv(10)
    conn.close()
    srv.close()
    events = collector.wait_for(_on_port(port), count=2)
    by_dir = {e.direction: e for e in events}
    assert by_dir["outbound"].outcome == "reset_sent"
    assert by_dir["inbound"].outcome == "reset_received"
    assert by_dir["outbound"].pid == os.getpid()
    assert by_dir["outbound"].bytes_sent == 5


IN_NS_CONNECT = textwrap.dedent("""
    import json, os, socket, sys, time
    host, port, syncnt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, syncnt)
    t0 = time.monotonic(); err = ""
    try:
        s.connect((host, port))
    except OSError as exc:
        import errno; err = errno.errorcode.get(exc.errno, str(exc.errno))
    print(json.dumps({"pid": os.getpid(), "error": err, "sport": s.getsockname()[1],
                      "elapsed": time.monotonic() - t0}))
""")


def _drop_rule(ns: NetNs, rule: str) -> None:
    """One nftables rule where packets arrive (the namespace is ours alone). Not on output:
    TCP sees a local output drop synchronously and resends it as a fresh send, not a
    retransmission, which is not what a lossy network does."""
    ns.sh("nft", "-f", "-", stdin=(
        "table inet kpt {\n chain in {\n  type filter hook input priority 0;\n"
        f"  {rule}\n }}\n}}\n"))


def _connect_in(ns: NetNs, host: str, port: int, syncnt: int = 1) -> dict[str, object]:
    code = f"import sys; sys.argv = ['x', {host!r}, '{port}', '{syncnt}']\n" + IN_NS_CONNECT
    return ns.run(code)


def test_timeout_with_early_syn_retransmit(collector: Collector, netns: NetNs) -> None:
    # A listener that never sees our SYNs: nftables drops them, as a blackhole would.
    _drop_rule(netns, "tcp dport 7777 tcp flags syn drop")
    res = _connect_in(netns, "127.0.0.1", 7777, syncnt=1)
    assert res["error"] == "ETIMEDOUT"
    pid = res["pid"]

    def mine(e: ConnEvent) -> bool:
        return e.pid == pid and e.dport == 7777

    events = collector.wait_for(mine, count=2)
    events = collector.settle(mine)
    kinds = sorted((e.kind, e.outcome) for e in events)
    assert kinds == [("close", "timeout"), ("syn_retransmit", "")]
    warn = next(e for e in events if e.kind == "syn_retransmit")
    close = next(e for e in events if e.kind == "close")
    assert warn.ts < close.ts, "the warning must come before the connect gives up"
    assert warn.sport == close.sport == res["sport"]
    assert close.error == "ETIMEDOUT" and close.syn_retransmits >= 1
    assert close.netns == netns.inode and warn.netns == netns.inode
    assert close.comm.startswith("python")


def test_unreachable(collector: Collector, netns: NetNs) -> None:
    _drop_rule(netns, "tcp dport 7778 tcp flags syn reject with icmpx host-unreachable")
    res = _connect_in(netns, "127.0.0.1", 7778, syncnt=2)
    assert res["error"] == "EHOSTUNREACH"
    events = collector.wait_for(
        lambda e: e.pid == res["pid"] and e.dport == 7778 and e.kind == "close")
    events = collector.settle(lambda e: e.pid == res["pid"] and e.dport == 7778)
    # The ICMP error is soft in SYN_SENT: the kernel retries (so an early syn_retransmit
    # warning may come first), then reports it; exactly one close record, no local_error.
    closes = [e for e in events if e.kind != "syn_retransmit"]
    assert [(e.kind, e.outcome, e.error) for e in closes] == [
        ("close", "unreachable", "EHOSTUNREACH")]
    assert closes[0].netns == netns.inode


def test_local_error_no_route(collector: Collector, netns: NetNs) -> None:
    # Only loopback exists in this namespace, so nothing can leave: ENETUNREACH at connect().
    res = _connect_in(netns, "10.123.45.67", 80)
    assert res["error"] == "ENETUNREACH"
    events = collector.wait_for(lambda e: e.pid == res["pid"] and e.dport == 80)
    assert [(e.kind, e.outcome, e.error) for e in events] == [
        ("local_error", "local_error", "ENETUNREACH")]
    assert events[0].daddr == "10.123.45.67" and events[0].netns == netns.inode


def test_local_error_ephemeral_ports_exhausted(collector: Collector, netns: NetNs) -> None:
    # One ephemeral port: the second connect to the same destination has none left.
    netns.sh("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40000")
    res = netns.run(textwrap.dedent("""
        import errno, json, os, socket
        srv = socket.socket(); srv.bind(("127.0.0.1", 7779)); srv.listen()
        a = socket.create_connection(("127.0.0.1", 7779))
        b = socket.socket(); err = ""
        try:
            b.connect(("127.0.0.1", 7779))
        except OSError as exc:
            err = errno.errorcode[exc.errno]
        print(json.dumps({"pid": os.getpid(), "error": err}))
    """))
    assert res["error"] == "EADDRNOTAVAIL"
    events = collector.wait_for(
        lambda e: e.pid == res["pid"] and e.kind == "local_error", timeout=5)
    assert [(e.outcome, e.error, e.dport) for e in events] == [
        ("local_error", "EADDRNOTAVAIL", 7779)]


def test_retransmits_counted_under_loss(collector: Collector, netns: NetNs) -> None:
    # 30% of data segments dropped on an established flow (nftables numgen; netem is absent).
    _drop_rule(netns, "tcp dport 7780 tcp flags & (syn|fin|rst) == 0 numgen random mod 100 < 30 drop")
    res = netns.run(textwrap.dedent("""
        import json, os, socket, struct, threading
        srv = socket.socket(); srv.bind(("127.0.0.1", 7780)); srv.listen()
        def sink():
            c, _ = srv.accept()
            while c.recv(65536): pass
            c.close()
        t = threading.Thread(target=sink); t.start()
        s = socket.create_connection(("127.0.0.1", 7780))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):
            s.sendall(b"z" * 1000)
        s.shutdown(socket.SHUT_WR); t.join(60)
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        total_retrans = struct.unpack_from("I", info, 100)[0]  # tcpi_total_retrans
        sport = s.getsockname()[1]; s.close()
        print(json.dumps({"pid": os.getpid(), "sport": sport, "retrans": total_retrans}))
    """), timeout=120)
    assert res["retrans"] > 0, "the fault did not cause any loss; the test proves nothing"
    events = collector.wait_for(
        lambda e: e.kind == "close" and e.sport == res["sport"] and e.netns == netns.inode,
        timeout=15)
    assert len(events) == 1
    e = events[0]
    # The record is made at close; the app read TCP_INFO just before, so allow for
    # retransmits of the FIN after that.
    assert res["retrans"] <= e.retransmits <= res["retrans"] + 3
    assert e.bytes_sent == 200_000
    assert e.outcome == "established_closed"
