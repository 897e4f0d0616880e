"""Readable alerts on a terminal (rich): one block per state change."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.text import Text

from kubepulse.model import Alert, rfc3339

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def render(alert: Alert) -> Text:
    firing = alert.state == "firing"
    text = Text()
    text.append(rfc3339(alert.emitted_at)[11:23] + " ", style="dim")
    text.append("FIRING  " if firing else "RESOLVED", style=_STYLE[alert.severity] if firing
                else "green")
    text.append(f" {alert.severity:<8} {alert.type:<21} ", style="bold")
    text.append(alert.summary)
    text.append(f"\n    cause: {alert.cause}", style="dim" if not firing else "")
    if not firing and alert.ends_at is not None:
        lasted = alert.ends_at - alert.starts_at
        text.append(f"\n    lasted {lasted:.1f}s", style="dim")
        if alert.inhibited_by:
            text.append(f", explained by {alert.inhibited_by}", style="dim")
    text.append(f"  [{alert.fingerprint}]", style="dim")
    return text


class ConsoleSink:
    name = "stdout"

    def __init__(self, stream: TextIO | None = None, color: bool | None = None) -> None:
        self._console = Console(file=stream, no_color=color is False, highlight=False,
                                soft_wrap=True, force_terminal=color)

    def emit(self, alert: Alert) -> None:
        self._console.print(render(alert))

    def flush(self) -> None:
        self._console.file.flush()

    def close(self) -> None:
        self.flush()
