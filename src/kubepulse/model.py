"""The types every layer speaks: connection records, identities, findings and alerts.

The kernel's record layout lives in ``bpf/include/kubepulse/events.h``; the bulk decoder in
``kubepulse.probes.tcp_conn`` turns batches of those records into :class:`ConnEvent` only on the
slow path (``kubepulse events``, tests). Aggregating layers work on numpy arrays.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# The outcome of one TCP connection, exactly one per record. These names are the lower-cased
# members of ``enum kp_outcome`` in events.h; tests/unit/probes/test_layout.py checks them
# against the BTF of the built object, so a drift fails the build rather than mislabelling
# connections.
OUTCOMES: tuple[str, ...] = (
    "established_closed",  # a normal FIN close: not an anomaly
    "refused",  # RST in answer to our SYN
    "timeout",  # SYN never answered
    "unreachable",  # ICMP host/net unreachable
    "reset_sent",  # we aborted an established connection with RST
    "reset_received",  # the peer aborted an established connection with RST
    "local_error",  # connect() failed inside this host (e.g. EADDRNOTAVAIL)
    "aborted_other",  # anything else that ended a connection abnormally
)
FAILED_OUTCOMES = frozenset(OUTCOMES) - {"established_closed"}

# What a record reports: the end of a connection, or an early warning about one still open.
KINDS: tuple[str, ...] = ("close", "syn_retransmit", "local_error")

Direction = Literal["outbound", "inbound", "unknown"]


@dataclass(frozen=True, slots=True)
class ConnEvent:
    """One classified TCP connection (or an early ``syn_retransmit`` warning about one)."""

    ts: float  # wall-clock seconds when the kernel saw the final transition
    kind: str  # one of KINDS
    outcome: str  # one of OUTCOMES ("" for syn_retransmit)
    pid: int  # tgid of the owning process; 0 when the kernel never saw it in process context
    comm: str
    cgroup_id: int
    netns: int  # network-namespace inode
    family: int  # 4 or 6
    saddr: str
    sport: int
    daddr: str
    dport: int
    direction: Direction
    connect_latency_s: float | None  # active opens that reached ESTABLISHED
    duration_s: float | None  # from first SYN (or accept) to close; None if opened before us
    bytes_sent: int  # bytes acked by the peer
    bytes_received: int
    retransmits: int  # segments retransmitted over the connection's life
    syn_retransmits: int
    srtt_established_us: int  # smoothed RTT at ESTABLISHED (0 if never established)
    srtt_closed_us: int  # smoothed RTT at close
    error: str  # errno name from sk_err or the connect() return ("" when none)
    state_before: str  # TCP state the socket left when the record was made
    tracked: bool  # False when the socket opened before the agent or its map slot was evicted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES


@dataclass(frozen=True, slots=True)
class Identity:
    """Who one end of a flow is. Everything but ``address`` may be empty."""

    address: str
    namespace: str = ""
    workload: str = ""
    pod: str = ""
    node: str = ""
    service: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    kind: Literal["pod", "host", "external", "unknown"] = "unknown"

    @property
    def display(self) -> str:
        if self.workload:
            return f"{self.namespace}/{self.workload}" if self.namespace else self.workload
        if self.pod:
            return f"{self.namespace}/{self.pod}" if self.namespace else self.pod
        return self.address


def is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


# --- Detection inputs and outputs (kubepulse.detect, kubepulse.alerts) ---------------------------
# The agent loop feeds the detectors one batch of these per tick (every ~0.5-1 s), already enriched.
# Counts are for that one interval; gauges are the value at the end of it.


@dataclass(frozen=True, slots=True)
class LatencyStat:
    """Latency samples of one interval, summarised: enough for a mean and a worst case."""

    sum_s: float = 0.0
    count: int = 0
    max_s: float = 0.0

    def __add__(self, other: LatencyStat) -> LatencyStat:
        return LatencyStat(self.sum_s + other.sum_s, self.count + other.count,
                           max(self.max_s, other.max_s))

    @property
    def mean_s(self) -> float:
        return self.sum_s / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class EdgeKey:
    """One edge: a source identity to a destination identity and port."""

    src: Identity
    dst: Identity
    dst_port: int


@dataclass(frozen=True, slots=True)
class EdgeSample:
    """What one edge did during one interval. ``outcomes`` counts closed records by OUTCOMES."""

    edge: EdgeKey
    outcomes: dict[str, int] = field(default_factory=dict, hash=False)
    syn_retransmits: int = 0  # early warnings: SYN unanswered, first retransmit
    attempts: int = 0  # connections started: connect() / SYN sent, or accepted inbound
    handshakes: int = 0  # connections that reached ESTABLISHED in the interval
    segs_sent: int = 0
    segs_retrans: int = 0
    bytes_sent: int = 0
    connect_latency: LatencyStat = LatencyStat()
    srtt: LatencyStat = LatencyStat()
    open_connections: int | None = None  # gauge: established connections at interval end
    # Outbound connections closed normally after sending but without one byte back: the
    # client gave up on a server that accepted (or queued) the connection and never answered.
    no_reply: int = 0


@dataclass(frozen=True, slots=True)
class DnsSample:
    """What one DNS client (pod, or process on a plain host) saw during one interval."""

    client: Identity
    queries: int = 0
    rcodes: dict[str, int] = field(default_factory=dict, hash=False)  # NOERROR, NXDOMAIN, ...
    latency: LatencyStat = LatencyStat()
    timeouts: int = 0  # queries still unanswered at the probe's deadline
    server: str = ""  # resolver address, when there is one
    # The names behind the errors, (qname, rcode, count), worst first, bounded by the probe.
    error_names: tuple[tuple[str, str, int], ...] = ()


DropClass = Literal["policy", "listen_overflow", "other"]
DROP_CLASSES: tuple[str, ...] = ("policy", "listen_overflow", "other")


@dataclass(frozen=True, slots=True)
class DropSample:
    """Kernel drops of one reason on one edge during one interval.

    When one side is unknown its Identity carries just the address (or nothing at all).
    """

    edge: EdgeKey
    reason: str  # the kernel's enum skb_drop_reason name, without the SKB_DROP_REASON_ prefix
    drop_class: DropClass
    count: int


Severity = Literal["info", "warning", "critical"]
AlertState = Literal["firing", "resolved"]

ALERT_TYPES: tuple[str, ...] = (
    "connection_refused",
    "connection_timeout",
    "connection_reset",
    "packet_loss",
    "packet_drop",
    "policy_denied",
    "dns_latency",
    "dns_errors",
    "dns_timeout",
    "connection_flood",
    "conn_pool_exhaustion",
    "listen_overflow",
    "network_partition",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's verdict for one tick: this anomaly is present now, with its evidence.

    ``identity`` holds the stable parts the alert fingerprint is made from (never churning
    addresses of pods); ``labels`` holds everything known, for people and routing.
    """

    type: str  # one of ALERT_TYPES
    severity: Severity
    at: float  # the tick's clock, seconds
    identity: dict[str, str]
    labels: dict[str, str]
    summary: str
    cause: str
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert at one state change; ``docs/alerts.md`` documents its JSON shape."""

    fingerprint: str
    type: str
    severity: Severity
    state: AlertState
    starts_at: float
    ends_at: float | None
    emitted_at: float
    labels: dict[str, str]
    summary: str
    cause: str
    evidence: dict[str, Any]
    flapping: bool = False
    inhibited_by: str = ""  # fingerprint of the alert that explains (and closed) this one
    identity: dict[str, str] = field(default_factory=dict)  # what the fingerprint is made of

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "type": self.type,
            "severity": self.severity,
            "state": self.state,
            "starts_at": rfc3339(self.starts_at),
            "ends_at": rfc3339(self.ends_at) if self.ends_at is not None else None,
            "emitted_at": rfc3339(self.emitted_at),
            "labels": dict(self.labels),
            "summary": self.summary,
            "cause": self.cause,
            "evidence": dict(self.evidence),
            "flapping": self.flapping,
            "inhibited_by": self.inhibited_by or None,
            "identity": dict(self.identity),
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> Alert:
        ends = d.get("ends_at")
        return cls(
            fingerprint=d["fingerprint"], type=d["type"], severity=d["severity"],
            state=d["state"], starts_at=parse_rfc3339(d["starts_at"]),
            ends_at=parse_rfc3339(ends) if ends else None,
            emitted_at=parse_rfc3339(d["emitted_at"]), labels=dict(d.get("labels", {})),
            summary=d.get("summary", ""), cause=d.get("cause", ""),
            evidence=dict(d.get("evidence", {})), flapping=bool(d.get("flapping", False)),
            inhibited_by=d.get("inhibited_by") or "", identity=dict(d.get("identity", {})),
        )


def rfc3339(ts: float) -> str:
    """UTC RFC 3339 with milliseconds, e.g. ``2024-05-01T12:00:00.250Z``."""
    import datetime as _dt

    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> float:
    import datetime as _dt

    return _dt.datetime.fromisoformat(text).timestamp()
