"""kubepulse.export: Prometheus exposition and the agent's HTTP listener."""

from kubepulse.detect.config import MetricsConfig

from .http import DEFAULT_LISTEN, HttpListener, Request, Response, serve_agent_routes
from .metrics import AgentMetrics

__all__ = ["DEFAULT_LISTEN", "AgentMetrics", "HttpListener", "MetricsConfig", "Request",
           "Response", "serve_agent_routes"]
