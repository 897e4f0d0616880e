"""kubepulse.export: Prometheus exposition and the agent's HTTP listener."""

from .http import DEFAULT_LISTEN, HttpListener, Request, Response, serve_agent_routes
from .metrics import AgentMetrics, MetricsConfig

__all__ = ["DEFAULT_LISTEN", "AgentMetrics", "HttpListener", "MetricsConfig", "Request",
           "Response", "serve_agent_routes"]
