"""A switchable HTTP/1.1 server, the lab's stand-in for api, db and cache.

Its behaviour is switched at run time through a control file holding one line, a mode:
  normal   listen with backlog 128 and accept (up to --max-conns at once);
  closed   the listening socket is gone: new connects are refused, open ones keep working;
  stalled  stop accepting, with backlog 2: the accept queue fills and then overflows;
  resetting [IP ...]  tear down connections from those clients (all, without IPs) with an RST:
           open ones at once, new ones when their first request arrives, as a server that
           crashes mid-request or closes with SO_LINGER 0 does.
After applying a mode the server writes the control line to ``<control>.ack``, so a fault can
wait for it.

    python -m kubepulse.lab.programs.server --listen 10.244.1.10:8080 --control FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import struct
from pathlib import Path

from kubepulse.lab.programs.common import split_hostport, touch

BACKLOG = 128
STALLED_BACKLOG = 2
IDLE_TIMEOUT_S = 300.0
MODES = ("normal", "closed", "stalled", "resetting")
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


class Server:
    def __init__(self, addr: tuple[str, int], control: Path, max_conns: int) -> None:
        self.addr = addr
        self.control = control
        self.max_conns = max_conns
        self.mode = "normal"
        self.applied = ""  # the control line last applied
        self.reset_from: frozenset[str] | None = None  # resetting: these peers (None: all)
        self.open: dict[asyncio.StreamWriter, str] = {}  # connections being served -> peer IP
        self.sock: socket.socket | None = None
        self.accepting: asyncio.Task[None] | None = None
        self.conns = 0
        self.room = asyncio.Event()
        self.room.set()

    def _listen(self, backlog: int) -> None:
        if self.sock is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(self.addr)
            s.setblocking(False)
            self.sock = s
        self.sock.listen(backlog)  # listen() again on a listening socket resizes its backlog

    async def _pause(self) -> None:
        if self.accepting is not None:
            self.accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.accepting
            self.accepting = None

    def _resets(self, peer: str) -> bool:
        return self.mode == "resetting" and (self.reset_from is None or peer in self.reset_from)

    @staticmethod
    def _abort(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        writer.transport.abort()

    async def apply(self, line: str) -> None:
        words = line.split()
        mode, peers = (words[0], words[1:]) if words else ("normal", [])
        await self._pause()
        self.reset_from = frozenset(peers) if mode == "resetting" and peers else None
        if mode == "closed":
            if self.sock is not None:
                self.sock.close()
                self.sock = None
        elif mode == "stalled":
            self._listen(STALLED_BACKLOG)
        else:
            if mode != "resetting":
                mode, peers = "normal", []
            self._listen(BACKLOG)
            self.accepting = asyncio.create_task(self._accept_loop())
        self.mode = mode
        for writer, peer in list(self.open.items()):
            if self._resets(peer):
                self._abort(writer)
        tmp = self.control.with_suffix(".ack.tmp")
        tmp.write_text(" ".join([mode, *peers]) + "\n")
        os.replace(tmp, self.control.with_name(self.control.name + ".ack"))

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.sock is not None
        while True:
            await self.room.wait()  # at capacity the server stops accepting, like a real one
            conn, _ = await loop.sock_accept(self.sock)
            self.conns += 1
            if self.conns >= self.max_conns:
                self.room.clear()
            asyncio.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            peer = str(conn.getpeername()[0])
            reader, writer = await asyncio.open_connection(sock=conn)
            self.open[writer] = peer
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
                if self._resets(peer):
                    self._abort(writer)
                    break
                length, close = 0, False
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    if key == "content-length":
                        length = int(value.strip() or 0)
                    elif key == "connection" and value.strip().lower() == "close":
                        close = True
                if length:
                    await reader.readexactly(length)
                body = b"ok\n"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
                if close:
                    break
            writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            if writer is not None:
                self.open.pop(writer, None)
            conn.close()
            self.conns -= 1
            if self.conns < self.max_conns:
                self.room.set()

    async def run(self, ready: str | None) -> None:
        await self.apply("normal")
        self.applied = "normal"
        touch(ready)
        seen = None
        while True:
            try:
                stat = self.control.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
                if stamp != seen:
                    seen = stamp
                    want = self.control.read_text().strip()
                    if want.split()[:1] and want.split()[0] in MODES and want != self.applied:
                        await self.apply(want)
                        self.applied = want
            except FileNotFoundError:
                pass
            await asyncio.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--listen", required=True, help="IP:PORT")
    ap.add_argument("--control", required=True, help="file holding the mode")
    ap.add_argument("--max-conns", type=int, default=64)
    ap.add_argument("--ready", help="file to create once listening")
    args = ap.parse_args()
    server = Server(split_hostport(args.listen), Path(args.control), args.max_conns)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.run(args.ready))


if __name__ == "__main__":
    main()
