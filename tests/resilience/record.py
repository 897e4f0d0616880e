"""Record a resilience test's figures in results/ (docs/reliability.md is rendered from them).

Only with ``KUBEPULSE_RECORD_RESULTS=1``, so an ordinary ``make test`` never changes the tree:

    KUBEPULSE_RECORD_RESULTS=1 KUBEPULSE_REQUIRE_BPF=1 .venv/bin/pytest -s tests/resilience/...

Each call is made at the end of a test, after its assertions: a recorded figure passed.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src" / "kubepulse" / "results.py"


def _results() -> ModuleType:
    """kubepulse.results, from this tree if the installed package predates it."""
    try:
        from kubepulse import results
    except ImportError:
        spec = importlib.util.spec_from_file_location("kubepulse_results", SRC)
        assert spec is not None and spec.loader is not None
        results = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(results)
    return results


def record(name: str, figures: dict[str, Any]) -> None:
    if os.environ.get("KUBEPULSE_RECORD_RESULTS", "") != "1":
        return
    results = _results()
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}"
                   for k in ("KUBEPULSE_RECORD_RESULTS", "KUBEPULSE_REQUIRE_BPF")
                   if k in os.environ)
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    cmd = f"{env} {results.command_line(sys.argv)}".strip()
    path = results.write_result(f"resilience_{name}", {**figures, "test": test}, cmd)
    print(f"recorded {path}")
