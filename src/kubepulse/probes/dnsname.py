"""Bounded decoding of DNS names in wire format (RFC 1035 §3.1, §4.1.4).

The kernel hands us a question name it has already validated; this decoder is still written
for hostile input, because the same function reads whole messages in tests and tools:

- every label is at most 63 bytes, and the whole name at most 255 bytes (wire length);
- a compression pointer must point strictly backwards, and at most 127 are followed, so a
  loop of pointers ends in an error instead of a hang;
- label types 0x40 and 0x80 (extended and reserved) are errors;
- truncated input is an error, never a shorter name.

Text form: labels joined by ``.``; a byte outside ``[A-Za-z0-9_-]`` is escaped as ``\\DDD``
and a literal ``.`` or ``\\`` inside a label as ``\\.``/``\\\\`` (the zone-file convention),
so two different wire names never decode to the same text. The root is ``.``.
"""

from __future__ import annotations

MAX_LABEL = 63
MAX_NAME = 255  # wire bytes, including the length octets and the root label
MAX_POINTERS = 127  # more than any legal name needs (each pointer must go backwards)

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class DnsNameError(ValueError):
    """The bytes are not a valid DNS name; the message says why and where."""


def _label_text(label: bytes) -> str:
    out = []
    for b in label:
        if b in _PLAIN:
            out.append(chr(b))
        elif b in (0x2E, 0x5C):  # '.' and '\\'
            out.append("\\" + chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def decode_labels(buf: bytes, offset: int = 0, *,
                  compression: bool = True) -> tuple[list[bytes], int]:
    """(labels, offset just past the name where it started) of the name at ``offset``."""
    labels: list[bytes] = []
    wire_len = 0
    pos = offset
    end: int | None = None  # where the name ends in the original position
    pointers = 0
    lowest = offset  # pointers must go strictly below every position already read
    while True:
        if pos >= len(buf):
            raise DnsNameError(f"truncated name: offset {pos} is past the end ({len(buf)} bytes)")
        n = buf[pos]
        kind = n & 0xC0
        if kind == 0xC0:
            if not compression:
                raise DnsNameError(f"compression pointer at offset {pos} where none is allowed")
            if pos + 1 >= len(buf):
                raise DnsNameError(f"truncated compression pointer at offset {pos}")
            target = ((n & 0x3F) << 8) | buf[pos + 1]
            if end is None:
                end = pos + 2
            pointers += 1
            if pointers > MAX_POINTERS:
                raise DnsNameError(f"more than {MAX_POINTERS} compression pointers")
            if target >= lowest:
                raise DnsNameError(f"compression pointer at offset {pos} to {target} does not "
                                   "point backwards (a loop)")
            lowest = target
            pos = target
            continue
        if kind:
            raise DnsNameError(f"label type {kind:#x} at offset {pos} is not supported")
        if n == 0:
            wire_len += 1
            if wire_len > MAX_NAME:
                raise DnsNameError(f"name longer than {MAX_NAME} bytes")
            return labels, (end if end is not None else pos + 1)
        if pos + 1 + n > len(buf):
            raise DnsNameError(f"truncated label at offset {pos}: {n} bytes announced, "
                               f"{len(buf) - pos - 1} left")
        wire_len += 1 + n
        if wire_len + 1 > MAX_NAME:
            raise DnsNameError(f"name longer than {MAX_NAME} bytes")
        labels.append(bytes(buf[pos + 1:pos + 1 + n]))
        pos += 1 + n


def decode_name(buf: bytes, offset: int = 0, *, compression: bool = True) -> tuple[str, int]:
    """(text, next offset) of the name at ``offset``; raises :class:`DnsNameError`."""
    labels, nxt = decode_labels(buf, offset, compression=compression)
    if not labels:
        return ".", nxt
    return ".".join(_label_text(lb) for lb in labels), nxt


def encode_name(name: str) -> bytes:
    """Wire form of a plain dotted name (no escapes); for tests and tools."""
    out = bytearray()
    for label in name.strip(".").split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) <= MAX_LABEL:
            raise DnsNameError(f"label {label!r} must be 1 to {MAX_LABEL} bytes")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsNameError(f"name longer than {MAX_NAME} bytes")
    return bytes(out)


def qname_text(raw: bytes, name_len: int) -> str:
    """The kernel record's question name (no compression there); ``""`` if it is unusable
    (the kernel validated it, so that would mean a layout drift, not a hostile packet)."""
    if not 0 < name_len <= MAX_NAME:
        return ""
    try:
        return decode_name(bytes(raw[:name_len]), compression=False)[0]
    except DnsNameError:
        return ""
