from __future__ import annotations

import io
import json
from pathlib import Path

from kubepulse.alerts import AlertManager, ConsoleSink, JsonlSink, Sinks
from kubepulse.model import Alert

from .helpers import T0, alerts_config, finding

KEYS = {"fingerprint", "type", "severity", "state", "starts_at", "ends_at", "emitted_at",
        "labels", "summary", "cause", "evidence", "flapping", "inhibited_by", "identity"}


def changes() -> list[Alert]:
    mgr = AlertManager(alerts_config(resolve_after_seconds=5))
    return mgr.process([finding(refused=5, ratio=1.0)], T0) + mgr.process([], T0 + 5)


def test_jsonl_one_line_per_state_change_with_the_documented_shape(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "out" / "alerts.jsonl")
    for a in changes():
        sink.emit(a)
    sink.close()
    lines = [json.loads(x) for x in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    assert [x["state"] for x in lines] == ["firing", "resolved"]
    assert all(set(x) == KEYS for x in lines)
    fired, resolved = lines
    assert fired["ends_at"] is None and resolved["ends_at"] == "2023-11-14T22:13:20.000Z"
    assert fired["emitted_at"].endswith("Z") and fired["labels"]["dst_port"] == "8080"
    assert fired["evidence"] == {"refused": 5, "ratio": 1.0}


def test_console_is_readable() -> None:
    buf = io.StringIO()
    sink = ConsoleSink(buf, color=False)
    for a in changes():
        sink.emit(a)
    text = buf.getvalue()
    assert "FIRING" in text and "RESOLVED" in text and "connection_refused" in text
    assert "cause: nothing listening" in text and "\x1b[" not in text


class Broken:
    name = "broken"

    def emit(self, alert: Alert) -> None:
        raise OSError("disk full")

    def flush(self) -> None: ...

    def close(self) -> None: ...


def test_a_broken_sink_is_counted_and_does_not_stop_the_others() -> None:
    buf = io.StringIO()
    sinks = Sinks([Broken(), ConsoleSink(buf, color=False)])
    sinks.emit(changes())
    assert sinks.errors_total["broken"] == 2 and "disk full" in sinks.last_error["broken"]
    assert buf.getvalue().count("connection_refused") == 2
