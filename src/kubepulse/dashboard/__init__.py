"""The web dashboard on the agent's listener: a live service map, anomalies with their
evidence, drill-down series, raw events and the agent's own health (docs/dashboard.md)."""

from .auth import TokenGuard, is_loopback_host
from .server import Dashboard, chain
from .store import DashboardStore, StoreConfig

__all__ = ["Dashboard", "DashboardStore", "StoreConfig", "TokenGuard", "chain",
           "is_loopback_host"]
