"""dns against the real kernel: a real dnsmasq in a test network namespace, a client in
another one (both created after the probe started), answers, errors, timeouts, malformed
packets, and DNS over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubepulse.probes.dns import DnsConfig, DnsEvent, DnsProbe, dns_decode
from tests.live.kpd_netns import CLIENT_IP, SERVER_IP, SERVER_IP2, Pair, pair  # noqa: F401

pytestmark = pytest.mark.live

DNSMASQ = "/usr/sbin/dnsmasq"


class DnsCollector:
    def __init__(self, probe: DnsProbe) -> None:
        self.probe = probe
        self.events: list[DnsEvent] = []

    def poll(self) -> None:
        self.probe.wait(0.05)
        batch = self.probe.read()
        if batch.size:
            self.events.extend(dns_decode(batch, self.probe.enums, self.probe.wall_offset))

    def wait_for(self, pred: Callable[[DnsEvent], bool], count: int = 1,
                 timeout: float = 10.0) -> list[DnsEvent]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if pred(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            self.poll()


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsCollector]:
    with DnsProbe(DnsConfig(timeout_s=1.0, sweep_interval_s=0.1)) as probe:
        probe.start()
        assert probe.attach_status and all(probe.attach_status.values()), probe.attach_status
        yield DnsCollector(probe)


@pytest.fixture
def resolver(pair: Pair) -> Iterator[Pair]:  # noqa: F811
    """dnsmasq on SERVER_IP:53 (ok.test -> 192.0.2.77, nx.test -> NXDOMAIN), and on
    SERVER_IP2:53 a responder that answers SERVFAIL, or NOERROR after 100 ms for slow.*."""
    if not os.access(DNSMASQ, os.X_OK):
        pytest.fail(f"{DNSMASQ} is missing: apt-get install dnsmasq-base (scripts/setup.sh does)")
    dm = pair.server.popen(DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
                           "--no-resolv", "--no-hosts", "--bind-interfaces",
                           f"--listen-address={SERVER_IP}", "--except-interface=lo",
                           "--address=/ok.test/192.0.2.77", "--address=/nx.test/",
                           "--user=root", "--pid-file=", "--log-facility=/dev/null")
    servfail = pair.server.popen(sys.executable, "-c", SERVFAIL_SERVER, SERVER_IP2)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # both bound?
            out = subprocess.run(["ip", "netns", "exec", pair.server.name, "ss", "-uln"],
                                 check=False, capture_output=True, text=True).stdout
            if f"{SERVER_IP}:53" in out and f"{SERVER_IP2}:53" in out:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"dnsmasq did not start: {dm.poll()} {out}")
        yield pair
    finally:
        for p in (dm, servfail):
            p.terminate()
            p.wait(5)


SERVFAIL_SERVER = textwrap.dedent("""
    import socket, sys, time, dnslib
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 53))
    s.settimeout(0.5); end = time.monotonic() + 30
    while time.monotonic() < end:
        try: data, addr = s.recvfrom(4096)
        except socket.timeout: continue
        q = dnslib.DNSRecord.parse(data); r = q.reply()
        if str(q.q.qname).startswith("slow."):
            time.sleep(0.1)  # a slow resolver: answers NOERROR after 100 ms
        else:
            r.header.rcode = 2
        s.sendto(r.pack(), addr)
""")

# Each query from its own socket: returns port, txid, rcode (or "timeout"), elapsed seconds.
CLIENT = textwrap.dedent("""
    import json, socket, sys, time, dnslib
    out = []
    for arg in sys.argv[1:]:
        server, name, qtype, tcp = arg.split(",")
        q = dnslib.DNSRecord.question(name, qtype); raw = q.pack()
        if tcp == "1":
            s = socket.create_connection((server, 53), timeout=2)
            t0 = time.monotonic(); s.sendall(len(raw).to_bytes(2, "big") + raw)
            n = int.from_bytes(s.recv(2), "big"); data = s.recv(n)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
            t0 = time.monotonic(); s.sendto(raw, (server, 53))
            try: data, _ = s.recvfrom(4096)
            except socket.timeout: data = None
        el = time.monotonic() - t0
        rc = dnslib.RCODE[dnslib.DNSRecord.parse(data).header.rcode] if data else "timeout"
        out.append({"port": s.getsockname()[1], "txid": q.header.id, "rcode": rc,
                    "elapsed": el, "name": name})
        s.close()
    print(json.dumps({"pid": __import__("os").getpid(), "q": out}))
""")


def _ask(pair: Pair, *queries: str) -> list[dict[str, Any]]:  # noqa: F811
    res = pair.client.run(CLIENT, *queries)
    out: list[dict[str, Any]] = res["q"]
    return out


def _match(q: dict[str, object]) -> Callable[[DnsEvent], bool]:
    return lambda e: e.client_port == q["port"] and e.txid == q["txid"]


def test_answers_rcodes_latency_from_new_namespaces(dns: DnsCollector, resolver: Pair) -> None:
    # Both namespaces were created after the probe attached: the cgroup root sees them.
    qs = _ask(resolver, f"{SERVER_IP},ok.test,A,0", f"{SERVER_IP},nx.test,AAAA,0",
              f"{SERVER_IP2},fail.test,A,0")
    assert [q["rcode"] for q in qs] == ["NOERROR", "NXDOMAIN", "SERVFAIL"]
    got = []
    for q in qs:
        found = dns.wait_for(_match(q))
        assert len(found) == 1, (q, found)
        got.append(found[0])
    ok, nx, sf = got
    for e, q in zip(got, qs):
        assert e.kind == "answer" and e.netns == resolver.client.inode
        assert (e.client, e.server_port, e.family) == (CLIENT_IP, 53, 4)
        assert e.qname == q["name"]
        # The kernel's latency (socket to socket) is inside the client's own measurement.
        assert e.latency_s is not None and 0 < e.latency_s <= float(q["elapsed"])
        assert e.comm.startswith("python")
    assert (ok.rcode, ok.qtype, ok.answers, ok.server) == ("NOERROR", "A", 1, SERVER_IP)
    assert (nx.rcode, nx.qtype) == ("NXDOMAIN", "AAAA")
    assert (sf.rcode, sf.server) == ("SERVFAIL", SERVER_IP2)


def test_latency_of_a_slow_resolver(dns: DnsCollector, resolver: Pair) -> None:
    (q,) = _ask(resolver, f"{SERVER_IP2},slow.test,A,0")
    assert q["rcode"] == "NOERROR"
    (e,) = dns.wait_for(_match(q))
    # At least the resolver's 100 ms, at most what the client itself measured.
    assert e.latency_s is not None and 0.1 <= e.latency_s <= float(q["elapsed"])
    assert float(q["elapsed"]) - e.latency_s < 0.02


def test_timeout_when_answers_are_dropped(dns: DnsCollector, resolver: Pair) -> None:
    resolver.client.sh("nft", "-f", "-", stdin=(
        "table inet kpd {\n chain in {\n  type filter hook input priority 0;\n"
        "  udp sport 53 drop\n }\n}\n"))
    (q,) = _ask(resolver, f"{SERVER_IP},ok.test,A,0")
    assert q["rcode"] == "timeout"
    found = dns.wait_for(_match(q), timeout=5)
    assert len(found) == 1
    e = found[0]
    assert e.kind == "timeout" and e.latency_s is None and e.rcode == ""
    assert e.qname == "ok.test" and e.netns == resolver.client.inode
    time.sleep(0.3)
    dns.poll()
    assert len([x for x in dns.events if _match(q)(x)]) == 1  # exactly one record


def test_dns_over_tcp(dns: DnsCollector, resolver: Pair) -> None:
    (q,) = _ask(resolver, f"{SERVER_IP},ok.test,A,1")
    assert q["rcode"] == "NOERROR"
    (e,) = dns.wait_for(_match(q))
    assert e.tcp and e.kind == "answer" and e.qname == "ok.test"


RAW = textwrap.dedent("""
    import json, socket, sys
    server = sys.argv[1]
    hdr = bytes.fromhex("abcd0100 0001 0000 0000 0000".replace(" ", ""))
    bad = [
        b"\\x01\\x02\\x03",                          # shorter than a header
        hdr,                                          # no question at all
        hdr + b"\\x46" + b"a" * 70 + b"\\x00\\x00\\x01\\x00\\x01",  # label of 70 bytes
        hdr + b"\\xc0\\x0c\\x00\\x01\\x00\\x01",         # compression pointer in the question
        hdr + b"\\x05ab",                             # truncated label
        hdr + b"\\x03www\\x00\\x00",                   # no room for type and class
        hdr + b"".join(b"\\x3f" + b"a" * 63 for _ in range(5)) + b"\\x00\\x00\\x01\\x00\\x01",
    ]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for b in bad:
        s.sendto(b, (server, 53))
    print(json.dumps({"sent": len(bad)}))
""")


def test_malformed_are_counted_and_probe_stays_up(dns: DnsCollector, resolver: Pair) -> None:
    before = dns.probe.counters()["malformed"]
    sent = resolver.client.run(RAW, SERVER_IP)["sent"]
    assert sent == 7
    after = dns.probe.counters()["malformed"]
    assert after - before >= 7
    (q,) = _ask(resolver, f"{SERVER_IP},ok.test,A,0")
    assert dns.wait_for(_match(q))  # still working
    assert not [e for e in dns.events if e.netns == resolver.client.inode and not e.qname]


def test_loopback_in_this_namespace(dns: DnsCollector) -> None:
    import dnslib  # type: ignore[import-untyped]

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        srv.bind(("127.0.0.53", 53))
    except OSError:
        srv.bind(("127.0.0.54", 53))
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    q = dnslib.DNSRecord.question("loop.test")
    cli.sendto(q.pack(), srv.getsockname())
    data, addr = srv.recvfrom(512)
    srv.sendto(dnslib.DNSRecord.parse(data).reply().pack(), addr)
    cli.recvfrom(512)
    port = cli.getsockname()[1]
    (e,) = dns.wait_for(lambda e: e.client_port == port and e.txid == q.header.id)
    assert e.pid == os.getpid() and e.netns == os.stat("/proc/self/ns/net").st_ino
    assert e.qname == "loop.test" and e.rcode == "NOERROR"
    cli.close()
    srv.close()


def test_queries_evicted_from_a_full_pending_map_are_counted() -> None:
    # A pending map of 64 and 300 queries that nobody answers (nothing listens on that
    # loopback port 53): the LRU must push 236 out. Each query ends up as exactly one of:
    # a timeout record, still pending, or counted as evicted; none is lost silently.
    import dnslib

    with DnsProbe(DnsConfig(timeout_s=0.3, sweep_interval_s=0.05, max_pending=64)) as probe:
        probe.start()
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(300):
                q = dnslib.DNSRecord.question(f"evict{i}.test")
                q.header.id = i + 1  # distinct: a repeated id would be a resend, not a query
                cli.sendto(q.pack(), ("127.0.0.98", 53))
        finally:
            cli.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until every survivor has timed out
            probe.read()
            if probe.pending() == 0:
                break
            time.sleep(0.05)
        probe.read()
        c = probe.counters()
        ours = c["queries"]  # other DNS on this host would only add to both sides
        assert ours >= 300
        assert c["pending_evicted"] >= 300 - 64
        assert c["timeouts"] + c["pending_evicted"] + c["answers"] + c["ringbuf_full"] == ours
