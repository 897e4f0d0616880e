"""The sink interface, and a fan-out that keeps one broken sink from stopping the others."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from kubepulse.model import Alert


class Sink(Protocol):
    """Where alert state changes go. ``emit`` must not block the agent loop for long."""

    name: str

    def emit(self, alert: Alert) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Sinks:
    """Every configured sink. A sink that raises is counted, and the others still get the alert."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)
        self.errors_total: dict[str, int] = {s.name: 0 for s in self.sinks}
        self.last_error: dict[str, str] = {}

    def emit(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            for s in self.sinks:
                try:
                    s.emit(alert)
                except Exception as exc:  # noqa: BLE001 - one sink must not stop the rest
                    self._failed(s, exc)

    def flush(self) -> None:
        for s in self.sinks:
            try:
                s.flush()
            except Exception as exc:  # noqa: BLE001
                self._failed(s, exc)

    def close(self) -> None:
        for s in self.sinks:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001
                self._failed(s, exc)

    def _failed(self, sink: Sink, exc: Exception) -> None:
        self.errors_total[sink.name] = self.errors_total.get(sink.name, 0) + 1
        self.last_error[sink.name] = f"{type(exc).__name__}: {exc}"
