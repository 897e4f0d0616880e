"""One-shot checks run from inside a lab pod; each prints one JSON object and exits.

  tcp   HOST PORT   connect, make --requests requests (optionally a --body of N bytes),
                    and report how it went: ok, refused, timeout, reset, unreachable; plus
                    the kernel's retransmit count for the connection (TCP_INFO);
  dns   NAME        one lookup at --server: rcode, answers, seconds.

With --pause-file, the tcp probe makes its first request, prints {"phase": "established"},
waits for that file to exist, then makes the rest: a fault can be applied in between.

    python -m kubepulse.lab.programs.probe tcp 10.244.1.12 8080 --timeout 2
    python -m kubepulse.lab.programs.probe dns api.shop.svc.cluster.local --server 10.244.2.10
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import struct
import sys
import time

from kubepulse.lab.programs.common import dns_lookup, http_request

# struct tcp_info: 8 bytes of u8 fields, then u32 fields; tcpi_total_retrans is u32 number 23.
_TCPI_TOTAL_RETRANS_OFFSET = 8 + 23 * 4


def total_retrans(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", raw, _TCPI_TOTAL_RETRANS_OFFSET)[0])


def classify(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    if isinstance(exc, ConnectionError):
        return "closed"
    return f"error:{type(exc).__name__}"


def tcp(args: argparse.Namespace) -> dict[str, object]:
    start = time.monotonic()
    result: dict[str, object] = {"host": args.host, "port": args.port, "requests_ok": 0}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(args.timeout)
    phase = "connect"
    try:
        sock.connect((args.host, args.port))
        for i in range(args.requests):
            phase = f"request{i + 1}"
            if i == 1 and args.pause_file:
                print(json.dumps({"phase": "established"}), flush=True)
                deadline = time.monotonic() + args.pause_max
                while not os.path.exists(args.pause_file) and time.monotonic() < deadline:
                    time.sleep(0.02)
            http_request(sock, args.host, close=False, body=b"x" * args.body)
            result["requests_ok"] = int(str(result["requests_ok"])) + 1
        result["outcome"] = "ok"
    except (OSError, ConnectionError) as exc:
        result["outcome"] = classify(exc)
        result["failed_at"] = phase
    try:
        result["total_retrans"] = total_retrans(sock)
    except OSError:
        result["total_retrans"] = None
    sock.close()
    result["elapsed_s"] = round(time.monotonic() - start, 4)
    return result


def dns(args: argparse.Namespace) -> dict[str, object]:
    try:
        rcode, addrs, elapsed = dns_lookup(args.name, args.server, args.timeout)
    except TimeoutError:
        return {"name": args.name, "rcode": None, "outcome": "timeout", "answers": []}
    return {"name": args.name, "rcode": rcode, "outcome": "ok", "answers": addrs,
            "elapsed_s": round(elapsed, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tcp")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("--timeout", type=float, default=2.0)
    t.add_argument("--requests", type=int, default=1)
    t.add_argument("--body", type=int, default=0, help="bytes to POST with each request")
    t.add_argument("--pause-file")
    t.add_argument("--pause-max", type=float, default=30.0)
    d = sub.add_parser("dns")
    d.add_argument("name")
    d.add_argument("--server", required=True)
    d.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args()
    out = tcp(args) if args.cmd == "tcp" else dns(args)
    print(json.dumps(out), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
