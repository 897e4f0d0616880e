from __future__ import annotations

import json
from pathlib import Path

from kubepulse.alerts import AlertManager, JsonlSink, Sinks, SqliteStore
from kubepulse.model import Alert

from .helpers import T0, alerts_config, finding


def agent(state: Path, jsonl: Path, now: float) -> tuple[AlertManager, SqliteStore, Sinks]:
    store = SqliteStore(state / "alerts.db")
    mgr = AlertManager(alerts_config(resolve_after_seconds=10), restored=store.load_open(),
                       now=now)
    return mgr, store, Sinks([store, JsonlSink(jsonl)])


def test_restart_keeps_fingerprint_and_starts_at_and_resolves_once(tmp_path: Path) -> None:
    jsonl = tmp_path / "alerts.jsonl"
    mgr, store, sinks = agent(tmp_path, jsonl, T0)
    for t in range(5):
        sinks.emit(mgr.process([finding(at=T0 + t, n=t)], T0 + t))
    store.save_open(mgr.open_alerts())
    sinks.close()  # the agent is killed while the alert fires

    mgr, _store, sinks = agent(tmp_path, jsonl, T0 + 30)
    assert [a.state for a in mgr.open_alerts()] == ["firing"]
    for t in range(30, 35):  # the fault is still there: no second "firing"
        sinks.emit(mgr.process([finding(at=T0 + t)], T0 + t))
    for t in range(35, 60):
        sinks.emit(mgr.process([], T0 + t))
    sinks.close()

    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [x["state"] for x in lines] == ["firing", "resolved"]
    assert lines[0]["fingerprint"] == lines[1]["fingerprint"]
    assert lines[0]["starts_at"] == lines[1]["starts_at"] == "2023-11-14T22:13:20.000Z"
    history = SqliteStore(tmp_path / "alerts.db")
    assert [a.state for a in history.history()] == ["firing", "resolved"]
    assert history.load_open() == []


def test_restart_after_the_fault_ended_resolves_after_the_quiet_period(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    mgr, _store, sinks = agent(tmp_path, jsonl, T0)
    sinks.emit(mgr.process([finding()], T0))
    sinks.close()
    mgr, _store, sinks = agent(tmp_path, jsonl, T0 + 600)
    assert mgr.process([], T0 + 605) == []  # a restart is not evidence that it ended
    out = mgr.process([], T0 + 610)
    assert [a.state for a in out] == ["resolved"] and out[0].starts_at == T0
    sinks.close()


def test_alert_json_round_trips() -> None:
    mgr = AlertManager(alerts_config())
    alert = mgr.process([finding(ratio=0.5)], T0 + 0.25)[0]
    back = Alert.from_json_dict(json.loads(json.dumps(alert.to_json_dict())))
    assert back.to_json_dict() == alert.to_json_dict()
