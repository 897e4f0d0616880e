"""Where the built BPF objects live: package data, or KUBEPULSE_BPF_DIR for development."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def object_path(stem: str) -> Path:
    """Path of ``<stem>.bpf.o`` (built by `make -C bpf` or at `pip install`)."""
    override = os.environ.get("KUBEPULSE_BPF_DIR")
    if override:
        return Path(override) / f"{stem}.bpf.o"
    return Path(str(resources.files("kubepulse") / "bpf" / f"{stem}.bpf.o"))
