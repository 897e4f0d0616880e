"""The alertmanager and metrics sections of the agent's YAML config."""

from __future__ import annotations

from typing import Any

import pytest

from kubepulse.detect.config import parse_config
from kubepulse.errors import ConfigError


def test_outputs_sections_parse_and_default() -> None:
    cfg = parse_config({"alertmanager": {"urls": ["http://am:9093"], "resend_seconds": 5},
                        "metrics": {"max_series": 2000}}, "k.yaml")
    assert cfg.alertmanager.urls == ("http://am:9093",)
    assert cfg.alertmanager.resend_seconds == 5.0
    assert cfg.alertmanager.queue_size == 1000  # untouched keys keep their defaults
    assert cfg.metrics.max_series == 2000


@pytest.mark.parametrize(("data", "where"), [
    ({"alertmanager": {"resend": 5}}, "k.yaml: alertmanager.resend: unknown key"),
    ({"alertmanager": {"queue_size": 0}}, "k.yaml: alertmanager.queue_size:"),
    ({"metrics": {"latency_buckets": [0.5, 0.1]}}, "latency_buckets must be positive, increasing"),
    ({"metrics": {"max_series": "many"}}, "k.yaml: metrics.max_series:"),
])
def test_outputs_sections_errors_name_the_key(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "k.yaml")
    assert where in str(exc.value)
