"""A switchable HTTP/1.1 server, the lab's stand-in for api, db and cache.

Its behaviour is switched at run time through a control file holding one word:
  normal   listen with backlog 128 and accept (up to --max-conns at once);
  closed   the listening socket is gone: new connects are refused, open ones keep working;
  stalled  stop accepting, with backlog 2: the accept queue fills and then overflows.
After applying a mode the server writes it to ``<control>.ack``, so a fault can wait for it.

    python -m kubepulse.lab.programs.server --listen 10.244.1.10:8080 --control FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
from pathlib import Path

from kubepulse.lab.programs.common import split_hostport, touch

BACKLOG = 128
STALLED_BACKLOG = 2
IDLE_TIMEOUT_S = 300.0
MODES = ("normal", "closed", "stalled")


class Server:
    def __init__(self, addr: tuple[str, int], control: Path, max_conns: int) -> None:
        self.addr = addr
        self.control = control
        self.max_conns = max_conns
        self.mode = "normal"
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

    async def apply(self, mode: str) -> None:
        await self._pause()
        if mode == "closed":
            if self.sock is not None:
                self.sock.close()
                self.sock = None
        elif mode == "stalled":
            self._listen(STALLED_BACKLOG)
        else:
            mode = "normal"
            self._listen(BACKLOG)
            self.accepting = asyncio.create_task(self._accept_loop())
        self.mode = mode
        tmp = self.control.with_suffix(".ack.tmp")
        tmp.write_text(mode + "\n")
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
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
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
            conn.close()
            self.conns -= 1
            if self.conns < self.max_conns:
                self.room.set()

    async def run(self, ready: str | None) -> None:
        await self.apply("normal")
        touch(ready)
        seen = None
        while True:
            try:
                stat = self.control.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
                if stamp != seen:
                    seen = stamp
                    want = self.control.read_text().strip()
                    if want in MODES and want != self.mode:
                        await self.apply(want)
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
