"""Scenario 7, user space: the DNS name decoder cross-checked against dnspython.

tests/unit/probes/test_dnsname.py already fuzzes the decoder on hostile bytes and round-trips
it against dnslib; this adds an independent reference (dnspython) on three kinds of input:

- valid messages built by dnspython, with compression and arbitrary label bytes: every name
  (question, owner names, a CNAME target inside rdata) decodes to dnspython's labels;
- arbitrary bytes: whatever dnspython accepts, we accept with the same labels (we never reject
  a valid name), and whatever we accept obeys RFC 1035's limits;
- the text form: parsed back by dnspython, it gives the same labels (escaping is lossless).

Known, deliberate differences (where dnspython is stricter, we only need to be bounded): it
follows at most 16 compression pointers (we: 127) and refuses a pointer target that runs into
the name being read; both only mean we accept a few odd names it rejects.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from kubepulse.probes.dnsname import (
    MAX_LABEL,
    MAX_NAME,
    DnsNameError,
    decode_labels,
    decode_name,
    qname_text,
)

labels = st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=6)


def _name(parts: list[bytes]) -> dns.name.Name:
    return dns.name.Name([*parts, b""])


def _ours(buf: bytes, off: int) -> tuple[tuple[bytes, ...], int]:
    got, nxt = decode_labels(buf, off)
    return (*got, b""), nxt


@settings(max_examples=400, deadline=None)
@given(labels, labels, st.sampled_from(["A", "AAAA", "TXT"]))
def test_valid_messages_decode_like_dnspython(a: list[bytes], b: list[bytes],
                                              qtype: str) -> None:
    qname, target = _name(a), _name(b + a)  # the target shares a suffix: compression
    msg = dns.message.make_query(qname, qtype)
    resp = dns.message.make_response(msg)
    resp.answer.append(dns.rrset.from_rdata(qname, 60, dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.CNAME, target.to_text())))
    resp.answer.append(dns.rrset.from_rdata(target, 60, dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.A, "192.0.2.7")))
    wire = resp.to_wire()
    ref = dns.message.from_wire(wire)
    q, off = _ours(wire, 12)
    assert q == ref.question[0].name.labels
    off += 4  # qtype, qclass
    owner, off = _ours(wire, off)
    assert owner == ref.answer[0].name.labels
    rdlen = int.from_bytes(wire[off + 8:off + 10], "big")
    cname, end = _ours(wire, off + 10)
    assert cname == ref.answer[0][0].target.labels and end == off + 10 + rdlen
    owner2, _ = _ours(wire, end)
    assert owner2 == ref.answer[1].name.labels


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_we_accept_what_dnspython_accepts(buf: bytes, off: int) -> None:
    try:
        ref: dns.name.Name | None = dns.name.from_wire(buf, off)[0]
    except (dns.exception.DNSException, IndexError, ValueError):
        ref = None
    try:
        ours: tuple[tuple[bytes, ...], int] | None = _ours(buf, off)
    except DnsNameError:
        ours = None
    if ref is not None:
        assert ours is not None and ours[0] == ref.labels, (buf, off)
    if ours is not None:
        got, nxt = ours
        assert all(len(lb) <= MAX_LABEL for lb in got)
        assert sum(len(lb) + 1 for lb in got) <= MAX_NAME
        assert off < nxt <= len(buf)


@settings(max_examples=1000, deadline=None)
@given(labels)
def test_text_form_parses_back_to_the_same_labels(parts: list[bytes]) -> None:
    wire = _name(parts).to_wire()
    assert wire is not None
    text, _ = decode_name(wire)
    assert dns.name.from_text(text + ".").labels == (*parts, b"")
    # The kernel record's path (no compression; length known) gives the same text.
    assert qname_text(wire + b"\x00" * 8, len(wire)) == text
