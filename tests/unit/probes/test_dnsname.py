"""The DNS name decoder on hostile input: fuzzed with hypothesis, plus the classic attacks."""

from __future__ import annotations

import dnslib  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubepulse.probes.dnsname import (
    MAX_NAME,
    DnsNameError,
    decode_labels,
    decode_name,
    encode_name,
    qname_text,
)

label = st.binary(min_size=1, max_size=63)


def test_plain_and_root() -> None:
    assert decode_name(encode_name("api.shop.svc.cluster.local")) == (
        "api.shop.svc.cluster.local", 28)
    assert decode_name(b"\x00") == (".", 1)


def test_escapes_keep_names_distinct() -> None:
    assert decode_name(b"\x03a.b\x00")[0] == "a\\.b"
    assert decode_name(b"\x01a\x01b\x00")[0] == "a.b"
    assert decode_name(b"\x02\x00\xff\x00")[0] == "\\000\\255"


def test_compression_pointer_backwards() -> None:
    msg = b"\x03foo\x03bar\x00" + b"\x03www\xc0\x00"
    assert decode_name(msg, 9) == ("www.foo.bar", 15)
    with pytest.raises(DnsNameError, match="compression"):
        decode_name(msg, 9, compression=False)


@pytest.mark.parametrize("raw,why", [
    (b"\xc0\x00", "backwards"),                 # points at itself
    (b"\x01a\xc0\x00", "backwards"),            # into itself: a loop
    (b"\x00\xc0\x03\xc0\x01", "backwards"),     # back to a pointer that jumps forward
    (b"\x40abc", "label type"),
    (b"\x80abc", "label type"),
    (b"\x05ab", "truncated label"),
    (b"\x03abc", "truncated name"),
    (b"", "truncated name"),
    (b"\xc0", "truncated compression"),
    (b"\x3fab", "truncated label"),
])
def test_rejects(raw: bytes, why: str) -> None:
    with pytest.raises(DnsNameError, match=why):
        decode_name(raw, 3 if raw.startswith(b"\x00\xc0") else 0)


def test_oversize_name_and_label() -> None:
    long = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 bytes
    with pytest.raises(DnsNameError, match="longer"):
        decode_name(long)
    with pytest.raises(DnsNameError):
        encode_name("a" * 64 + ".test")


def test_pointer_chain_bounded() -> None:
    # 200 pointers each one step back: must stop at MAX_POINTERS, not walk them all.
    msg = b"\x00" + b"".join(bytes([0xC0 | (i >> 8), i & 0xFF]) for i in range(0, 400, 2))
    with pytest.raises(DnsNameError):
        decode_name(msg, len(msg) - 2)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=600))
def test_fuzz_never_crashes_or_hangs(buf: bytes, offset: int) -> None:
    try:
        name, nxt = decode_name(buf, offset)
    except DnsNameError:
        return
    assert offset < nxt <= len(buf)
    assert len(name) <= 4 * MAX_NAME


@settings(max_examples=500, deadline=None)
@given(st.lists(label, max_size=10))
def test_roundtrip_against_dnslib(labels: list[bytes]) -> None:
    wire = b"".join(bytes([len(lb)]) + lb for lb in labels) + b"\x00"
    if len(wire) > MAX_NAME:
        with pytest.raises(DnsNameError):
            decode_labels(wire)
        return
    got, nxt = decode_labels(wire)
    assert got == labels and nxt == len(wire)
    ref = dnslib.DNSLabel(labels)
    assert list(ref.label) == labels


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True), min_size=1, max_size=5))
def test_real_messages_with_compression(parts: list[str]) -> None:
    name = ".".join(parts)
    q = dnslib.DNSRecord.question(name)
    r = q.reply()
    r.add_answer(dnslib.RR(name, rdata=dnslib.A("192.0.2.7")))
    packed = r.pack()
    qname, nxt = decode_name(packed, 12)
    assert qname == name
    answer_name, _ = decode_name(packed, nxt + 4)  # after qtype and qclass
    assert answer_name == name


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=-5, max_value=300))
def test_qname_text_never_raises(raw: bytes, n: int) -> None:
    assert isinstance(qname_text(raw, n), str)
