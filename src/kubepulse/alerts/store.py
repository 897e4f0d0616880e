"""SQLite alert history and open-alert state (stdlib sqlite3), so a restart neither re-fires
nor forgets: open alerts come back with their fingerprint and ``starts_at``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from kubepulse.model import Alert

from .jsonl import alert_line

_SCHEMA = """
CREATE TABLE IF NOT EXISTS open_alerts (
    fingerprint TEXT PRIMARY KEY,
    alert       TEXT NOT NULL            -- the alert's JSON (docs/alerts.md)
);
CREATE TABLE IF NOT EXISTS history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    type        TEXT NOT NULL,
    state       TEXT NOT NULL,
    emitted_at  REAL NOT NULL,           -- seconds since the epoch
    alert       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_fp ON history (fingerprint, emitted_at);
"""


class SqliteStore:
    """A sink (every state change goes to ``history``) and the open-alert state."""

    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path)
        self._db.executescript(_SCHEMA)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.commit()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"{self.path}: store is closed")
        return self._db

    def emit(self, alert: Alert) -> None:
        line = alert_line(alert)
        with self.db:
            self.db.execute(
                "INSERT INTO history (fingerprint, type, state, emitted_at, alert) "
                "VALUES (?, ?, ?, ?, ?)",
                (alert.fingerprint, alert.type, alert.state, alert.emitted_at, line),
            )
            self._set_open(alert, line)

    def save_open(self, alerts: Iterable[Alert]) -> None:
        """At shutdown: the open alerts with their newest evidence (no history rows)."""
        with self.db:
            for alert in alerts:
                self._set_open(alert, alert_line(alert))

    def load_open(self) -> list[Alert]:
        rows = self.db.execute("SELECT alert FROM open_alerts ORDER BY fingerprint").fetchall()
        return [Alert.from_json_dict(json.loads(r[0])) for r in rows]

    def history(self, fingerprint: str | None = None) -> list[Alert]:
        sql = "SELECT alert FROM history"
        args: tuple[str, ...] = ()
        if fingerprint is not None:
            sql, args = sql + " WHERE fingerprint = ?", (fingerprint,)
        rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        return [Alert.from_json_dict(json.loads(r[0])) for r in rows]

    def flush(self) -> None:
        self.db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.commit()
            self._db.close()
            self._db = None

    def _set_open(self, alert: Alert, line: str) -> None:
        if alert.state == "firing":
            self.db.execute(
                "INSERT INTO open_alerts (fingerprint, alert) VALUES (?, ?) "
                "ON CONFLICT(fingerprint) DO UPDATE SET alert = excluded.alert",
                (alert.fingerprint, line),
            )
        else:
            self.db.execute("DELETE FROM open_alerts WHERE fingerprint = ?", (alert.fingerprint,))
