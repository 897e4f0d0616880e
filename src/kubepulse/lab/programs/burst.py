"""Abnormal load from one pod, bounded in count and time.

  flood  open-request-close as fast as --rate allows (a sudden burst of new connections);
  leak   open connections and never give them back (a leaking connection pool), holding them
         until the end.
Both stop by themselves at --max-count connections or after --max-seconds.

    python -m kubepulse.lab.programs.burst flood --to 10.244.1.11:80 --rate 200 --max-seconds 20
    python -m kubepulse.lab.programs.burst leak --to 10.244.1.12:8080 --max-count 100
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

from kubepulse.lab.programs.common import http_request, split_hostport, touch

CONNECT_TIMEOUT_S = 2.0
LEAK_THREADS = 8


def flood(targets: list[tuple[str, int]], rate: float, max_count: int, deadline: float) -> None:
    lock = threading.Lock()
    issued = 0
    start = time.monotonic()

    def worker() -> None:
        nonlocal issued
        while time.monotonic() < deadline:
            with lock:
                if issued >= max_count:
                    return
                n = issued
                issued += 1
            due = start + n / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            host, port = targets[n % len(targets)]
            try:
                with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as s:
                    s.settimeout(CONNECT_TIMEOUT_S)
                    http_request(s, host, close=True)
            except OSError:
                pass

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + CONNECT_TIMEOUT_S * 2)


def leak(targets: list[tuple[str, int]], rate: float, max_count: int, deadline: float) -> None:
    """Open connections at ``rate`` from a few threads (a pool whose users each wait on their
    own connection) and hold every one that answered; a connection that gets no answer
    within CONNECT_TIMEOUT_S is given up, as a pool client would."""
    lock = threading.Lock()
    held: list[socket.socket] = []
    issued = 0
    start = time.monotonic()

    def worker() -> None:
        nonlocal issued
        while time.monotonic() < deadline:
            with lock:
                if issued >= max_count:
                    return
                n = issued
                issued += 1
            due = start + n / rate
            if due > time.monotonic():
                time.sleep(min(due - time.monotonic(), max(0.0, deadline - time.monotonic())))
            host, port = targets[n % len(targets)]
            try:
                s = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
            except OSError:
                continue
            try:
                s.settimeout(CONNECT_TIMEOUT_S)
                http_request(s, host, close=False)
            except OSError:
                s.close()
                continue
            with lock:
                held.append(s)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(LEAK_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + CONNECT_TIMEOUT_S * 2)
    time.sleep(max(0.0, deadline - time.monotonic()))  # hold what leaked until the end
    with lock:
        for s in held:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=("flood", "leak"))
    ap.add_argument("--to", action="append", required=True, help="IP:PORT (repeatable)")
    ap.add_argument("--rate", type=float, default=200.0, help="connections per second")
    ap.add_argument("--max-count", type=int, default=10_000)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--ready")
    args = ap.parse_args()
    targets = [split_hostport(t) for t in args.to]
    deadline = time.monotonic() + args.max_seconds
    touch(args.ready)
    run = flood if args.mode == "flood" else leak
    try:
        run(targets, args.rate, args.max_count, deadline)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
