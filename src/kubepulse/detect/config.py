"""The agent's YAML config: every threshold and window, with documented defaults.

``deploy/config/kubepulse.yaml`` is the documented default; ``load_config`` reads a file,
validates it strictly (unknown keys are errors) and turns any problem into one ConfigError
sentence that names the file, the key and what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kubepulse.errors import ConfigError
from kubepulse.model import ALERT_TYPES

from .dns_errors import DnsErrorsConfig
from .dns_latency import DnsLatencyConfig
from .dns_timeout import DnsTimeoutConfig
from .flood import FloodConfig
from .listen_overflow import ListenOverflowConfig
from .loss import LossConfig
from .packet_drop import PacketDropConfig
from .partition import PartitionConfig
from .policy import PolicyConfig
from .pool import PoolConfig
from .refused import RefusedConfig
from .reset import ResetConfig
from .timeout import TimeoutConfig

_STRICT = ConfigDict(extra="forbid", frozen=True)


class TrackingConfig(BaseModel):
    model_config = _STRICT

    max_edges: int = Field(default=50_000, ge=1, description="edges (and sources) tracked, LRU beyond")
    max_dns_clients: int = Field(default=10_000, ge=1)


class DetectorsConfig(BaseModel):
    """One section per detector; the key is the alert type (tests check both lists agree)."""

    model_config = _STRICT

    connection_refused: RefusedConfig = RefusedConfig()
    connection_timeout: TimeoutConfig = TimeoutConfig()
    connection_reset: ResetConfig = ResetConfig()
    packet_loss: LossConfig = LossConfig()
    packet_drop: PacketDropConfig = PacketDropConfig()
    policy_denied: PolicyConfig = PolicyConfig()
    dns_latency: DnsLatencyConfig = DnsLatencyConfig()
    dns_errors: DnsErrorsConfig = DnsErrorsConfig()
    dns_timeout: DnsTimeoutConfig = DnsTimeoutConfig()
    connection_flood: FloodConfig = FloodConfig()
    conn_pool_exhaustion: PoolConfig = PoolConfig()
    listen_overflow: ListenOverflowConfig = ListenOverflowConfig()
    network_partition: PartitionConfig = PartitionConfig()


class FlapConfig(BaseModel):
    model_config = _STRICT

    window_seconds: float = Field(default=600.0, gt=0.0, description="how far back transitions count")
    max_transitions: int = Field(default=4, ge=2, description="state changes that make it flapping")
    resolve_multiplier: float = Field(default=4.0, ge=1.0, description="quiet period x this if flapping")


class InhibitRule(BaseModel):
    """A firing ``source`` alert suppresses ``targets`` alerts it explains (same edge; for
    network_partition: an edge between the same node pair)."""

    model_config = _STRICT

    source: str
    targets: tuple[str, ...]
    hold_seconds: float = Field(default=
        0.0, ge=0.0, description="a new target waits this long for its source before firing"
    )

    @model_validator(mode="after")
    def _known_types(self) -> InhibitRule:
        for name in (self.source, *self.targets):
            if name not in ALERT_TYPES:
                raise ValueError(f"unknown alert type {name!r}")
        return self


def _default_rules() -> tuple[InhibitRule, ...]:
    return (
        # Timeouts are the first sign of a cut, so they wait 1 s for the partition verdict.
        # Loss is not held: a partition is rarely loss, and a held loss alert was late.
        InhibitRule(source="network_partition", targets=("connection_timeout",),
                    hold_seconds=1.0),
        InhibitRule(source="network_partition", targets=("packet_loss",)),
        InhibitRule(source="conn_pool_exhaustion",
                    targets=("connection_refused", "connection_timeout", "connection_reset")),
        InhibitRule(source="policy_denied", targets=("connection_timeout",)),
        InhibitRule(source="listen_overflow", targets=("connection_timeout",)),
    )


class WebhookConfig(BaseModel):
    model_config = _STRICT

    queue_size: int = Field(default=1000, ge=1, description="alerts waiting to be sent, beyond: dropped")
    max_attempts: int = Field(default=5, ge=1, description="tries per alert before it is dropped")
    backoff_seconds: float = Field(default=0.5, ge=0.0, description="first retry delay, doubled each try")
    backoff_max_seconds: float = Field(default=10.0, ge=0.0)
    timeout_seconds: float = Field(default=5.0, gt=0.0, description="per request")


class AlertsConfig(BaseModel):
    model_config = _STRICT

    resolve_after_seconds: float = Field(default=
        15.0, gt=0.0, description="quiet period: no finding this long resolves the alert"
    )
    flap: FlapConfig = FlapConfig()
    inhibit: tuple[InhibitRule, ...] = Field(default_factory=_default_rules)
    webhook: WebhookConfig = WebhookConfig()


class AlertmanagerConfig(BaseModel):
    """Delivery to Alertmanager (``POST /api/v2/alerts``), to every URL in ``urls`` and every
    ``--alertmanager``."""

    model_config = _STRICT

    urls: tuple[str, ...] = Field(default=(), description="Alertmanager base URLs (an HA set)")
    resend_seconds: float = Field(default=60.0, gt=0.0,
                                  description="firing (and recently resolved) alerts re-sent this often")
    ends_at_intervals: float = Field(default=4.0, ge=1.0,
                                     description="a firing alert's endsAt: this many resends ahead")
    resolved_repeat_seconds: float = Field(default=300.0, ge=0.0,
                                           description="keep telling a resolve for this long")
    queue_size: int = Field(default=1000, ge=1,
                            description="distinct alerts pending per instance; beyond, dropped")
    batch_size: int = Field(default=100, ge=1, description="alerts per POST")
    backoff_seconds: float = Field(default=0.5, gt=0.0, description="first retry delay, doubled each failure")
    backoff_max_seconds: float = Field(default=30.0, gt=0.0)
    timeout_seconds: float = Field(default=5.0, gt=0.0, description="per request")
    dashboard_url: str = Field(
        default="", description="generatorURL base; default: the agent's own listener")


# Seconds. Connect latency and RTT inside a cluster sit between 50 us and a few ms; the upper
# buckets catch SYN retransmits (1 s, 3 s) and WAN peers.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0)
DNS_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class MetricsConfig(BaseModel):
    """The Prometheus exposition on the agent's listener (docs/metrics.md)."""

    model_config = _STRICT

    max_series: int = Field(default=10_000, ge=1,
                            description='label sets the families may hold; beyond, "other"')
    grace_seconds: float = Field(default=300.0, ge=0.0,
                                 description="a series idle this long (its pods gone) is removed")
    ready_max_tick_age_seconds: float = Field(default=5.0, gt=0.0,
                                              description="/readyz fails when the last tick is older")
    latency_buckets: tuple[float, ...] = LATENCY_BUCKETS
    dns_buckets: tuple[float, ...] = DNS_BUCKETS

    @model_validator(mode="after")
    def _sorted_buckets(self) -> MetricsConfig:
        for name in ("latency_buckets", "dns_buckets"):
            b = getattr(self, name)
            if not b or list(b) != sorted(set(b)) or b[0] <= 0:
                raise ValueError(f"{name} must be positive, increasing and not empty")
        return self


class AgentConfig(BaseModel):
    """How the agent reads the kernel: tick length and kernel buffer sizes."""

    model_config = _STRICT
    tick_seconds: float = Field(default=0.5, gt=0.0, le=10.0,
                                description="how often samples are built and judged")
    ring_buffer_kib: int = Field(default=8192, ge=4,
                                 description="connection-record ring buffer, a power of two")
    max_sockets: int = Field(default=131072, ge=1024,
                             description="live sockets tracked in the kernel (LRU beyond)")
    dns_deadline_seconds: float = Field(
        default=1.5, gt=0.0, le=30.0,
        description="a DNS query unanswered this long is a timeout (glibc retries at 5 s)")

    @model_validator(mode="after")
    def _power_of_two(self) -> AgentConfig:
        if self.ring_buffer_kib & (self.ring_buffer_kib - 1):
            raise ValueError(f"ring_buffer_kib {self.ring_buffer_kib} is not a power of two")
        return self


class KubepulseConfig(BaseModel):
    model_config = _STRICT

    agent: AgentConfig = AgentConfig()
    tracking: TrackingConfig = TrackingConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    alerts: AlertsConfig = AlertsConfig()
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
    metrics: MetricsConfig = MetricsConfig()


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_config(data: Any, source: str) -> KubepulseConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    try:
        return KubepulseConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against deploy/config/kubepulse.yaml)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_where(first['loc'])}: {msg}{more}") from None


def load_config(path: str | Path | None) -> KubepulseConfig:
    """The config at ``path``, or the defaults when ``path`` is None."""
    if path is None:
        return KubepulseConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config: {exc.strerror}. Fix: give --config "
                          "an existing file (deploy/config/kubepulse.yaml lists every key with "
                          "its default), or leave --config out for the defaults") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, str(p))
