"""Helpers shared by the in-pod programs: tiny HTTP/1.1 exchange, DNS lookup, ready files."""

from __future__ import annotations

import socket
import time
from pathlib import Path


def split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def touch(path: str | None, text: str = "ready\n") -> None:
    if path:
        Path(path).write_text(text)


def http_request(sock: socket.socket, host: str, *, close: bool, body: bytes = b"") -> int:
    """Send one request on ``sock`` and read the whole response; returns the status code."""
    method = "POST" if body else "GET"
    head = (
        f"{method} / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return read_response(sock)


def read_response(sock: socket.socket) -> int:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before a response")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed inside a response body")
        rest += chunk
    return status


def dns_lookup(name: str, server: str, timeout_s: float = 2.0) -> tuple[str, list[str], float]:
    """Resolve A records of ``name`` at ``server``: (rcode name, addresses, seconds taken).

    Raises ``TimeoutError`` when no answer arrives in time.
    """
    # Imported here: the lab's dnslib (the `lab` extra) is not part of the agent's install, and
    # `kubepulse run` imports this module through the lab's commands.
    from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]

    query = DNSRecord.question(name, "A")
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        s.sendto(query.pack(), (server, 53))
        while True:
            data, _ = s.recvfrom(4096)
            reply = DNSRecord.parse(data)
            if reply.header.id == query.header.id:
                break
    elapsed = time.monotonic() - start
    addrs = [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]
    return str(RCODE.get(reply.header.rcode)), addrs, elapsed
