"""Ground truth: one JSON line per injected fault, and the fixed names of what it should cause.

Written by every fault (``lab fault``, the scenario runner, the demo); read by the scorer.
The format is documented in docs/scenarios.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubepulse.errors import ConfigError
from kubepulse.model import ALERT_TYPES as _MODEL_ALERT_TYPES

# The alert types the agent may emit are fixed names, defined once in kubepulse.model.
ALERT_TYPES = _MODEL_ALERT_TYPES

# fault type -> (the alert it must cause, the other alert types it may also cause)
FAULT_ALERTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "refused": ("connection_refused", ()),
    "blackhole": ("connection_timeout", ("packet_drop",)),
    "loss": ("packet_loss", ("packet_drop", "connection_timeout")),
    "reset": ("connection_reset", ()),
    "policy_deny": ("policy_denied", ("connection_timeout", "packet_drop")),
    "dns_latency": ("dns_latency", ("dns_timeout",)),
    "dns_nxdomain": ("dns_errors", ()),
    "dns_servfail": ("dns_errors", ()),
    "dns_timeout": ("dns_timeout", ("dns_latency", "dns_errors", "packet_drop")),
    "conn_flood": ("connection_flood", ("listen_overflow", "connection_timeout",
                                        "conn_pool_exhaustion")),
    "pool_exhaustion": ("conn_pool_exhaustion", ("connection_timeout", "listen_overflow",
                                                 "connection_flood")),
    "listen_overflow": ("listen_overflow", ("connection_timeout", "packet_drop")),
    # A partition is total loss between two nodes: live connections retransmit into it.
    "partition": ("network_partition", ("connection_timeout", "packet_drop", "dns_timeout",
                                        "connection_reset", "packet_loss")),
}
FAULT_TYPES: tuple[str, ...] = tuple(FAULT_ALERTS)


class Selector(BaseModel):
    """Which end of a flow a fault is about. An absent key means 'any'."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    namespace: str | None = None
    workload: str | None = None
    pod: str | None = None
    node: str | None = None
    service: str | None = None

    def is_any(self) -> bool:
        return not any(self.model_dump(exclude_none=True).values())

    def __str__(self) -> str:
        if self.node and not (self.pod or self.workload):
            return f"node:{self.node}"
        parts = [p for p in (self.namespace, self.workload, self.pod) if p]
        return "/".join(parts) if parts else "*"


class GroundTruth(BaseModel):
    """One fault: what, where, when, and what the agent should say about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    type: str
    expected_alert: str
    allowed_symptoms: list[str] = Field(default_factory=list)
    source: Selector = Field(default_factory=Selector)
    destination: Selector = Field(default_factory=Selector)
    symmetric: bool = False  # the fault cuts both directions (partition): sides may swap
    start: str
    end: str
    start_epoch: float
    end_epoch: float
    params: dict[str, Any] = Field(default_factory=dict)


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def parse_time(value: str) -> float:
    """Epoch seconds from an RFC 3339 timestamp (``Z`` or an offset)."""
    when = datetime.fromisoformat(value)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def make(
    fault_id: str,
    fault: str,
    source: Selector,
    destination: Selector,
    start_epoch: float,
    end_epoch: float,
    params: dict[str, Any] | None = None,
) -> GroundTruth:
    expected, allowed = FAULT_ALERTS[fault]
    return GroundTruth(
        id=fault_id,
        type=fault,
        expected_alert=expected,
        allowed_symptoms=list(allowed),
        source=source,
        destination=destination,
        symmetric=fault == "partition",
        start=rfc3339(start_epoch),
        end=rfc3339(end_epoch),
        start_epoch=round(start_epoch, 3),
        end_epoch=round(end_epoch, 3),
        params=params or {},
    )


def append(path: Path, label: GroundTruth) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(label.model_dump_json(exclude_none=True) + "\n")


def load(path: Path) -> list[GroundTruth]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"ground-truth file {path} does not exist; pass the labels "
                          "file that `kubepulse lab fault` or `scenarios run` wrote.") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(GroundTruth.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            msg = str(exc).splitlines()[0] if isinstance(exc, json.JSONDecodeError) else (
                f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}"
            )
            raise ConfigError(f"ground-truth file {path} line {n}: {msg}; fix or remove "
                              "that line.") from None
    return out
