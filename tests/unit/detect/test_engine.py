from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubepulse.detect import BY_NAME, DETECTORS, KubepulseConfig, load_config, parse_config
from kubepulse.detect.config import DetectorsConfig
from kubepulse.errors import ConfigError
from kubepulse.model import ALERT_TYPES, EdgeKey

from .helpers import FRONT, Run, healthy, pod

DEFAULT_YAML = Path(__file__).parents[3] / "deploy" / "config" / "kubepulse.yaml"


def test_registry_config_and_alert_types_agree() -> None:
    assert [d.name for d in DETECTORS] == list(ALERT_TYPES)
    assert set(DetectorsConfig.model_fields) == set(BY_NAME)
    for name, cls in BY_NAME.items():
        assert isinstance(getattr(DetectorsConfig(), name), cls.config_type)


def test_lru_cap_bounds_edges_and_counts_evictions() -> None:
    run = Run()
    run.engine.table.edges.cap = 10
    for i in range(25):
        run.step([healthy(EdgeKey(FRONT, pod(f"w{i}", "n2"), 80))])
    stats = run.engine.stats()
    assert stats["edges_tracked"] == 10
    assert stats["evictions_total"] == 15


def test_windows_are_pruned_to_the_horizon() -> None:
    run = Run()
    for _ in range(200):
        run.step([healthy()])
    window = next(run.engine.table.edges.values())
    assert len(window.samples) <= run.engine.table.horizon_seconds + 1


def test_documented_default_file_is_the_defaults() -> None:
    assert load_config(DEFAULT_YAML) == KubepulseConfig()
    assert load_config(None) == KubepulseConfig()


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("detectors:\n  connection_refused:\n    min_refuse: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value).startswith(f"{p}: detectors.connection_refused.min_refuse: unknown key")


def test_bad_value_says_what_is_wrong(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("detectors:\n  dns_errors:\n    min_ratio: 1.5\n")
    with pytest.raises(ConfigError, match=r"detectors\.dns_errors\.min_ratio: .*less than or"):
        load_config(p)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("detectors: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config([1], "x.yaml")


def test_unknown_alert_type_in_inhibit_rule() -> None:
    with pytest.raises(ConfigError, match="alerts.inhibit.0: .*unknown alert type 'nope'"):
        parse_config({"alerts": {"inhibit": [{"source": "nope", "targets": []}]}}, "x.yaml")


def test_config_is_frozen() -> None:
    cfg = KubepulseConfig()
    with pytest.raises(ValidationError):
        cfg.detectors.connection_refused.min_refused = 1
