"""What every probe shares: a loaded BpfObject, the attach status of its hooks, detaching,
closing, and (for the probes with a ring buffer) waiting on it."""

from __future__ import annotations

from typing import ClassVar, Self

from kubepulse.kernel.libbpf import BpfObject
from kubepulse.kernel.ringbuf import RingReader


class Probe:
    name: ClassVar[str]
    # Program name -> the hook it attaches to, as attach status names it ("sock:...").
    hooks: ClassVar[dict[str, str]] = {}
    obj: BpfObject
    reader: RingReader | None = None
    poll_interval_s: float = 0.05

    @property
    def attach_status(self) -> dict[str, bool]:
        """Every program's hook -> attached? (so "no alert" is never confused with "blind")."""
        return {self.hooks.get(p.name, p.name): p.name in self.obj.links
                for p in self.obj.programs()}

    def stop(self) -> None:
        """Detach every program; what is already queued or counted can still be read."""
        self.obj.detach_all()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until records are queued or ``timeout_s`` (default: the poll interval) passes."""
        assert self.reader is not None, "start() first"
        return self.reader.wait(self.poll_interval_s if timeout_s is None else timeout_s)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        self.obj.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
