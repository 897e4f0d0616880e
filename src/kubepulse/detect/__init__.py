"""kubepulse.detect: pure anomaly detectors over sliding per-edge windows.

The agent loop builds one :class:`DetectionEngine` from the config and calls ``step`` once per
tick with that interval's samples; the findings go to ``kubepulse.alerts.AlertManager``.
"""

from .base import Detector, DnsDetector, EdgeDetector, SourceDetector, TableDetector
from .config import AlertsConfig, KubepulseConfig, load_config, parse_config
from .drops import classify_reason
from .engine import DetectionEngine, build_detectors
from .registry import BY_NAME, DETECTORS
from .window import EdgeTable

__all__ = [
    "BY_NAME",
    "DETECTORS",
    "AlertsConfig",
    "DetectionEngine",
    "Detector",
    "DnsDetector",
    "EdgeDetector",
    "EdgeTable",
    "KubepulseConfig",
    "SourceDetector",
    "TableDetector",
    "build_detectors",
    "classify_reason",
    "load_config",
    "parse_config",
]
