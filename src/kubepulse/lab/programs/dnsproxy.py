"""A switchable DNS proxy placed in front of the real dnsmasq during DNS faults.

A fault starts it in the kube-dns pod and redirects port 53 to it with nftables; when the
fault ends the redirect goes and this program is stopped. Modes:
  latency   forward to the upstream, but answer --delay-ms late;
  nxdomain  answer NXDOMAIN for every name;
  servfail  answer SERVFAIL for every name;
  silent    read every query and answer none (a hung resolver: no packet is dropped by a
            filter, so the kernel reports nothing a policy detector could take for a denial).
Bounded: it exits by itself after --max-seconds.

    python -m kubepulse.lab.programs.dnsproxy --port 5354 --mode nxdomain --max-seconds 60
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

from dnslib import RCODE, DNSRecord  # type: ignore[import-untyped]

from kubepulse.lab.programs.common import touch

MAX_INFLIGHT = 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=5354)
    ap.add_argument("--upstream", default="127.0.0.1")
    ap.add_argument("--mode", choices=("latency", "nxdomain", "servfail", "silent"), required=True)
    ap.add_argument("--delay-ms", type=float, default=1000.0)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--ready")
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", args.port))
    sock.settimeout(0.2)
    inflight = threading.BoundedSemaphore(MAX_INFLIGHT)
    deadline = time.monotonic() + args.max_seconds

    def forward(data: bytes, peer: tuple[str, int]) -> None:
        try:
            time.sleep(args.delay_ms / 1000.0)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2.0)
                up.sendto(data, (args.upstream, 53))
                answer, _ = up.recvfrom(4096)
            sock.sendto(answer, peer)
        except OSError:
            pass
        finally:
            inflight.release()

    touch(args.ready)
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        try:
            query = DNSRecord.parse(data)
        except Exception as exc:  # noqa: BLE001 - dnslib raises many types on bad input
            print(f"dropped a malformed query from {peer[0]}: {exc}", flush=True)
            continue
        if args.mode == "silent":
            continue
        if args.mode == "latency":
            if inflight.acquire(blocking=False):
                threading.Thread(target=forward, args=(data, peer), daemon=True).start()
            continue
        reply = query.reply()
        reply.header.rcode = RCODE.NXDOMAIN if args.mode == "nxdomain" else RCODE.SERVFAIL
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    main()
