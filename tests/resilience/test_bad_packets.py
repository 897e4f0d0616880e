"""Scenario 7, kernel side: malformed DNS sent raw at a real resolver while the agent runs.

A client namespace sends UDP to a real dnsmasq in a server namespace (kpr-*, joined by a veth,
no route anywhere else): truncated headers and names, compression loops in the question,
oversize labels and names, wrong counts, and seeded random garbage, with valid queries
interleaved. The agent must stay up and ready, count the malformed packets
(``kubepulse_kernel_events_total{counter="dns_malformed"}``; first each crafted shape sent
alone, which must raise the counter by exactly its packets), and no garbage may reach an
event's name or a metric. tests/live/test_dns.py proves the probe alone counts the classic
seven; this is the whole agent, and random garbage.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path
from typing import Any

import dns.name
import pytest

from tests.export.servers import poll

from .agentproc import KUBEPULSE, REPO, AgentProc, Metrics, agent_running
from .record import record

pytestmark = pytest.mark.live

SERVER, CLIENT = "192.0.2.1", "192.0.2.2"
GARBAGE = 300
ESCAPED = re.compile(r"^(\.|([A-Za-z0-9_-]|\\[0-9]{3}|\\[.\\])+(\.([A-Za-z0-9_-]|\\[0-9]{3}|"
                     r"\\[.\\])+)*)$")

# The crafted shapes, in the order of ``bad`` below. Each one is a query the probe must reject
# and count as malformed (bpf/dns.bpf.c, on_query: KP_DNS_COUNTER_MALFORMED): a header it cannot
# load; qdcount != 1; nothing after the header; a name walk that ends without its root label
# (runs past the packet, meets a pointer or reserved label bits, or passes 255 bytes); or no
# room for the type and class.
SHAPES = ("truncated header", "header only", "no question", "two questions", "truncated label",
          "pointer to itself", "pointer back into the name", "label of 64 (type 0x40)",
          "label type 0x80", "name over 255 bytes", "no type and class")
REPEAT = 3  # sends of each shape on its own

SHAPES_SRC = textwrap.dedent("""
    import json, random, socket, struct, sys
    import dnslib
    def hdr(qd=1, flags=0x0100, txid=0x4b50):
        return struct.pack(">HHHHHH", txid, flags, qd, 0, 0, 0)
    tail = b"\\x00\\x01\\x00\\x01"
    bad = [
        b"\\x4b\\x50\\x01",                                    # truncated header
        hdr(),                                                 # header only
        hdr(qd=0) + b"\\x03kpr\\x00" + tail,                   # no question
        hdr(qd=2) + b"\\x03kpr\\x00" + tail,                   # two questions
        hdr() + b"\\x0akprgarb" ,                              # truncated label
        hdr() + b"\\xc0\\x0c" + tail,                          # pointer to itself: a loop
        hdr() + b"\\x03kpr\\xc0\\x0c" + tail,                  # pointer back into the name
        hdr() + b"\\x40" + b"k" * 64 + b"\\x00" + tail,        # label of 64: reserved type
        hdr() + b"\\x80kpr\\x00" + tail,                       # label type 0x80
        hdr() + b"".join(b"\\x3f" + b"k" * 63 for _ in range(5)) + b"\\x00" + tail,  # > 255
        hdr() + b"\\x03kpr\\x00",                              # no type and class
    ]
""")

# One shape alone, REPEAT times, then one valid query (counted as a query, not malformed), from
# one socket: each send is judged by the egress program inside sendto(), so once this process
# has exited the kernel's counters hold everything it sent.
SHAPE_SENDER = SHAPES_SRC + textwrap.dedent("""
    server, shape, repeat, txid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(repeat):
        s.sendto(bad[shape], (server, 53))
    q = dnslib.DNSRecord.question(f"shape{shape}.test")
    q.header.id = txid
    s.sendto(q.pack(), (server, 53))
    print(json.dumps({"shapes": len(bad)}))
""")

SENDER = SHAPES_SRC + textwrap.dedent("""
    server, garbage = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    valid = answered = 0
    rng = random.Random(20261126)
    weird = []
    for round in range(3):
        for b in bad:
            s.sendto(b, (server, 53))
        for i in range(5):
            # Well-formed, but the label is any bytes (dots, NULs, 0xff): a legal name that
            # only escaping keeps readable and unambiguous.
            label = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
            weird.append(label.hex())
            s.sendto(hdr(txid=rng.randrange(65536)) + bytes([len(label)]) + label
                     + b"\\x08kprweird\\x00" + tail, (server, 53))
        for i in range(garbage // 3):
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
            # A query header (QR=0, opcode 0, one question) then garbage: the kernel must
            # reject it or decode a name that is properly escaped.
            s.sendto(hdr(txid=rng.randrange(65536)) + b"\\x07kprjunk" + body, (server, 53))
        q = dnslib.DNSRecord.question(f"ok{round}.test")
        s.sendto(q.pack(), (server, 53))
        valid += 1
        try:
            while True:
                data, _ = s.recvfrom(4096)
                if data[:2] == q.pack()[:2]:
                    answered += 1
                    break
        except socket.timeout:
            pass
    print(json.dumps({"malformed": 3 * len(bad), "valid": valid, "answered": answered,
                      "weird": weird}))
""")


def _ns(name: str, *cmd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", name, *cmd], capture_output=True, text=True,
                          check=True, timeout=120, **kw)


def _dns_counter(a: AgentProc, m: Metrics, name: str) -> float:
    return a.metric("kubepulse_kernel_events_total", m, counter=f"dns_{name}")


def _count_each_shape(a: AgentProc, client: str) -> dict[str, float]:
    """Send each crafted shape alone (REPEAT times, then one valid query) and return how much
    the agent's dns_malformed counter rose for it.

    The sender's packets are all counted by the time it exits (the egress program runs in
    sendto()); the agent publishes the kernel counters at each tick, so the first metrics two
    ticks after the exit hold them, and nothing of the next shape."""
    got: dict[str, float] = {}
    base = a.metrics()
    for i, name in enumerate(SHAPES):
        out = json.loads(_ns(client, sys.executable, "-c", SHAPE_SENDER, SERVER, str(i),
                             str(REPEAT), str(0x5000 + i)).stdout)
        assert out["shapes"] == len(SHAPES)
        ticks = a.metric("kubepulse_ticks_total")

        def two_ticks_on(snap: Metrics, since: float = ticks) -> bool:
            return a.metric("kubepulse_ticks_total", snap) >= since + 2

        m = poll(f"two agent ticks after the {name!r} packets",
                 partial(a.metrics_where, two_ticks_on))
        got[name] = _dns_counter(a, m, "malformed") - _dns_counter(a, base, "malformed")
        # The valid query after the shape was seen and not taken for a malformed one.
        queries = (_dns_counter(a, m, "queries") + _dns_counter(a, m, "retries")
                   - _dns_counter(a, base, "queries") - _dns_counter(a, base, "retries"))
        assert queries >= 1, (name, queries)
        base = m
    return got


def test_malformed_dns_counted_agent_up_no_garbage_names(
        tmp_path: Path, bpf: None, kpr_pair: tuple[str, str]) -> None:
    client, server = kpr_pair
    inode = Path(f"/run/netns/{client}").stat().st_ino
    dm = subprocess.Popen(["ip", "netns", "exec", server, "dnsmasq", "--keep-in-foreground",
                           "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                           "--bind-interfaces", f"--listen-address={SERVER}",
                           "--except-interface=lo", "--address=/test/192.0.2.77",
                           "--user=root", "--pid-file=", "--log-facility=/dev/null"])
    events = None
    try:
        poll("dnsmasq listening", lambda: f"{SERVER}:53" in _ns(server, "ss", "-uln").stdout)
        with agent_running(tmp_path / "agent") as a:
            poll("the agent ready", a.ready)
            per_shape = _count_each_shape(a, client)
            events = subprocess.Popen([*KUBEPULSE, "events", "--dns", "--json", "--netns",
                                       str(inode), "--duration", "60"], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
            poll("the events stream attached",
                 lambda: events is not None and events.stderr is not None
                 and "kubepulse" in (events.stderr.readline() or ""), timeout=30)
            before = a.metric("kubepulse_kernel_events_total", counter="dns_malformed")
            sent = json.loads(_ns(client, sys.executable, "-c", SENDER, SERVER,
                                  str(GARBAGE)).stdout)
            m = poll("the malformed packets counted", lambda: a.metrics_where(
                lambda m: a.metric("kubepulse_kernel_events_total", m, counter="dns_malformed")
                - before >= sent["malformed"]))
            counted = a.metric("kubepulse_kernel_events_total", m, counter="dns_malformed")
            poll("ready after the barrage", a.ready)
            alive = a.proc is not None and a.proc.poll() is None
            metrics_text = a.get("/metrics").text
            # Until the stream has printed the valid answers, everything before them is in.
            deadline = time.monotonic() + 20
            lines: list[dict[str, object]] = []
            assert events.stdout is not None
            while time.monotonic() < deadline and sum(
                    1 for e in lines if str(e.get("qname", "")).startswith("ok")) < 3:
                line = events.stdout.readline()
                if not line:
                    break
                lines.append(json.loads(line))
            events.terminate()
            events.wait(10)
            rc, _ = a.stop()
    finally:
        dm.terminate()
        dm.wait(10)
        if events is not None and events.poll() is None:
            events.kill()
            events.wait(10)
    names = [str(e.get("qname", "")) for e in lines]
    odd = [n for n in names if not ESCAPED.match(n)]
    junk = [n for n in names if "kprjunk" in n]
    weird = {dns.name.from_text(n + ".").labels[0].hex() for n in names
             if n.endswith(".kprweird")}
    print(f"bad packets: sent {sent['malformed']} malformed + {GARBAGE} garbage + "
          f"{sent['valid']} valid; malformed counted {counted - before:.0f}; events "
          f"{len(names)} ({len(weird)} of {len(sent['weird'])} odd-byte names, {len(junk)} "
          f"garbage-headed, all escaped); agent rc {rc}")
    print("malformed counted per shape (each sent alone, "
          f"{REPEAT} times): {json.dumps(per_shape)}")
    assert alive and rc == 0
    # Each crafted shape on its own is counted, once per packet: the barrage's total below
    # could be met by the random garbage alone.
    assert per_shape == {name: REPEAT for name in SHAPES}, per_shape
    assert counted - before >= sent["malformed"]
    assert sent["answered"] == sent["valid"] == 3
    assert sum(1 for n in names if re.fullmatch(r"ok[0-2]\.test", n)) == 3, names
    assert not odd, odd
    # The odd-byte names that were answered decode back to exactly the bytes sent.
    assert weird and weird <= set(sent["weird"]), (weird, sent["weird"])
    assert "kpr" not in metrics_text, "a name from a packet reached /metrics"
    assert "# HELP kubepulse_" in metrics_text, metrics_text[:200]  # not an empty page
    assert all(ch.isprintable() or ch == "\n" for ch in metrics_text)
    record("bad_packets", {"crafted": sent["malformed"], "garbage": GARBAGE,
                           "odd_byte": len(sent["weird"]), "valid": sent["valid"],
                           "answered": sent["answered"], "malformed_counted": int(counted - before),
                           "events": len(names), "odd_byte_decoded": len(weird),
                           "agent_rc": rc})
