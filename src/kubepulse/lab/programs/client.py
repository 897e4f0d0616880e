"""Steady, healthy background traffic from one pod: keep-alive pools, short connections, DNS.

Every target gets its own thread. Service names are resolved through kube-dns every few
seconds, as a real client library would (the last good answer is kept while DNS fails).
Bounded: the program stops by itself after --max-seconds or --max-requests.

    python -m kubepulse.lab.programs.client --dns 10.244.2.10 \\
        --call api.shop.svc.cluster.local:8080:pool --max-seconds 3600
"""

from __future__ import annotations

import argparse
import random
import socket
import threading
import time

from kubepulse.lab.programs.common import dns_lookup, http_request, touch

CONNECT_TIMEOUT_S = 3.0
POOL_SIZE = 2


class Client:
    def __init__(self, dns: str, interval_s: float, max_seconds: float, max_requests: int):
        self.dns = dns
        self.interval_s = interval_s
        self.deadline = time.monotonic() + max_seconds
        self.budget = max_requests
        self.lock = threading.Lock()
        self.addrs: dict[str, list[str]] = {}
        self.stop = threading.Event()

    def running(self) -> bool:
        if self.stop.is_set() or time.monotonic() >= self.deadline:
            self.stop.set()
            return False
        with self.lock:
            self.budget -= 1
            if self.budget < 0:
                self.stop.set()
                return False
        return True

    def pause(self, scale: float = 1.0) -> None:
        self.stop.wait(self.interval_s * scale * random.uniform(0.7, 1.3))

    def resolver(self, names: list[str]) -> None:
        while self.running():
            for name in names:
                try:
                    rcode, addrs, _ = dns_lookup(name, self.dns)
                except OSError:
                    continue
                if rcode == "NOERROR" and addrs:
                    with self.lock:
                        self.addrs[name] = addrs
            self.pause(2.0)

    def pick(self, name: str) -> str | None:
        with self.lock:
            addrs = self.addrs.get(name)
        return random.choice(addrs) if addrs else None

    def connect(self, name: str, port: int) -> socket.socket | None:
        addr = self.pick(name)
        if addr is None:
            return None
        try:
            return socket.create_connection((addr, port), timeout=CONNECT_TIMEOUT_S)
        except OSError:
            return None

    def short(self, name: str, port: int) -> None:
        while self.running():
            sock = self.connect(name, port)
            if sock is not None:
                try:
                    http_request(sock, name, close=True)
                except OSError:
                    pass
                finally:
                    sock.close()
            self.pause()

    def pool(self, name: str, port: int) -> None:
        conns: list[socket.socket | None] = [None] * POOL_SIZE
        while self.running():
            for i, sock in enumerate(conns):
                if sock is None:
                    sock = conns[i] = self.connect(name, port)
                    if sock is None:
                        continue
                try:
                    http_request(sock, name, close=False)
                except OSError:
                    sock.close()
                    conns[i] = None
            self.pause()
        for sock in conns:
            if sock is not None:
                sock.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dns", required=True, help="kube-dns address")
    ap.add_argument("--call", action="append", default=[], help="NAME:PORT:pool|short")
    ap.add_argument("--interval", type=float, default=0.1,
                    help="seconds between requests of one worker")
    ap.add_argument("--workers", type=int, default=4,
                    help="concurrent workers per short-connection target (a real client "
                         "library has a few requests in flight)")
    ap.add_argument("--max-seconds", type=float, default=4 * 3600.0)
    ap.add_argument("--max-requests", type=int, default=5_000_000)
    ap.add_argument("--ready")
    args = ap.parse_args()
    client = Client(args.dns, args.interval, args.max_seconds, args.max_requests)
    calls = []
    for spec in args.call:
        name, port, pattern = spec.rsplit(":", 2)
        calls.append((name, int(port), pattern))
    names = sorted({name for name, _, _ in calls})
    # Resolve once before the first request, so the first connections use real answers.
    for name in names:
        try:
            rcode, addrs, _ = dns_lookup(name, args.dns)
            if rcode == "NOERROR" and addrs:
                client.addrs[name] = addrs
        except OSError:
            pass
    threads = [threading.Thread(target=client.resolver, args=(names,), daemon=True)]
    for name, port, pattern in calls:
        target = client.pool if pattern == "pool" else client.short
        for _ in range(1 if pattern == "pool" else max(1, args.workers)):
            threads.append(threading.Thread(target=target, args=(name, port), daemon=True))
    for t in threads:
        t.start()
    touch(args.ready)
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        client.stop.set()


if __name__ == "__main__":
    main()
