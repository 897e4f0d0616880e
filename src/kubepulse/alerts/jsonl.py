"""JSON Lines: one line per state change, flushed at once so other tools can tail the file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TextIO

from kubepulse.model import Alert


def alert_line(alert: Alert) -> str:
    return json.dumps(alert.to_json_dict(), separators=(",", ":"), ensure_ascii=False)


class JsonlSink:
    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO | None = self.path.open("a", encoding="utf-8")

    def emit(self, alert: Alert) -> None:
        if self._fh is None:
            raise RuntimeError(f"{self.path}: sink is closed")
        self._fh.write(alert_line(alert) + "\n")
        self._fh.flush()

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
