"""kubepulse.alerts: the alert lifecycle (dedupe, resolve, flap damping, inhibition) and sinks."""

from .console import ConsoleSink
from .fingerprint import fingerprint
from .jsonl import JsonlSink, alert_line
from .lifecycle import AlertManager, LifecycleStats
from .sink import Sink, Sinks
from .store import SqliteStore
from .webhook import WebhookSink

__all__ = [
    "AlertManager",
    "ConsoleSink",
    "JsonlSink",
    "LifecycleStats",
    "Sink",
    "Sinks",
    "SqliteStore",
    "WebhookSink",
    "alert_line",
    "fingerprint",
]
