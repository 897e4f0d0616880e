"""Every detector, one line each. The alert type is the detector's name and its config key."""

from __future__ import annotations

from typing import Any

from .base import Detector
from .dns_errors import DnsErrorsDetector
from .dns_latency import DnsLatencyDetector
from .dns_timeout import DnsTimeoutDetector
from .flood import FloodDetector
from .listen_overflow import ListenOverflowDetector
from .loss import LossDetector
from .packet_drop import PacketDropDetector
from .partition import PartitionDetector
from .policy import PolicyDetector
from .pool import PoolDetector
from .refused import RefusedDetector
from .reset import ResetDetector
from .timeout import TimeoutDetector

DETECTORS: tuple[type[Detector[Any]], ...] = (
    RefusedDetector,
    TimeoutDetector,
    ResetDetector,
    LossDetector,
    PacketDropDetector,
    PolicyDetector,
    DnsLatencyDetector,
    DnsErrorsDetector,
    DnsTimeoutDetector,
    FloodDetector,
    PoolDetector,
    ListenOverflowDetector,
    PartitionDetector,
)

BY_NAME: dict[str, type[Detector[Any]]] = {d.name: d for d in DETECTORS}
