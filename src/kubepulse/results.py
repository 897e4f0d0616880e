"""Committed result files: every figure the docs publish comes from one of them.

``write_result(name, data, command)`` writes ``results/<name>.json`` at the repository root
(or under ``$KUBEPULSE_RESULTS_DIR``) with the commit, the date, the machine and the command
that produced ``data``. ``scripts/render_docs.py`` renders the docs' tables from these files
and ``--check`` fails when a doc and its file disagree (docs/benchmarks.md, "Result files").

Keys are sorted and indented so that a re-run shows as a readable diff.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENV_DIR = "KUBEPULSE_RESULTS_DIR"
ENV_RECORD = "KUBEPULSE_RECORD_RESULTS"


def recording() -> bool:
    """True when tests should record their figures (``KUBEPULSE_RECORD_RESULTS=1``)."""
    return os.environ.get(ENV_RECORD, "") == "1"


def _is_repo(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "src" / "kubepulse").is_dir()


def repo_root() -> Path | None:
    """The kubepulse checkout: above this file (an editable install), else above the cwd."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for path in (start, *start.parents):
            if _is_repo(path):
                return path
    return None


def results_dir() -> Path:
    """``$KUBEPULSE_RESULTS_DIR``, else ``results/`` at the repository root."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override)
    root = repo_root()
    if root is None:
        raise RuntimeError(f"cannot find the kubepulse repository from {Path.cwd()}; "
                           f"set {ENV_DIR} to the results directory")
    return root / "results"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def commit(cwd: Path | None = None) -> str:
    """``git rev-parse --short HEAD``, with ``-dirty`` for uncommitted changes; or "unknown"."""
    where = cwd or repo_root() or Path.cwd()
    head = _git(["rev-parse", "--short", "HEAD"], where)
    if not head:
        return "unknown"
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return f"{head}-dirty" if status else head


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine() -> dict[str, Any]:
    """CPUs, memory, kernel release and CPU model of this machine."""
    return {"nproc": os.cpu_count(), "memory_gib": _memory_gib(),
            "kernel": platform.release(), "cpu_model": _cpu_model()}


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed: ``sys.argv`` (or ``argv``) quoted for a shell."""
    return shlex.join(list(sys.argv if argv is None else argv))


def write_result(name: str, data: Any, command: str | Sequence[str]) -> Path:
    """Write ``results/<name>.json``; returns its path."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad result name {name!r}")
    cmd = command if isinstance(command, str) else shlex.join(list(command))
    doc = {
        "name": name,
        "commit": commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "command": cmd,
        "data": data,
    }
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
