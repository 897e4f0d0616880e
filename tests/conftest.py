"""Shared test switches.

Live tests need the real kernel (root or CAP_BPF+CAP_PERFMON, BTF, tracepoints). Where that is
missing they skip, unless KUBEPULSE_REQUIRE_BPF=1 (as CI sets it), where they fail: a green
run must never hide that the kernel tests did not run.
"""

from __future__ import annotations

import os

import pytest


def bpf_unavailable_reason() -> str | None:
    from kubepulse.kernel.doctor import run_checks

    failed = [c for c in run_checks() if c.required and not c.ok]
    if failed:
        return "; ".join(f"{c.name}: {c.detail}" for c in failed)
    from kubepulse.kernel.objects import object_path

    if not object_path("tcp_conn").is_file():
        return f"{object_path('tcp_conn')} is not built (make -C bpf)"
    return None


def require_bpf() -> None:
    why = bpf_unavailable_reason()
    if why is None:
        return
    if os.environ.get("KUBEPULSE_REQUIRE_BPF") == "1":
        pytest.fail(f"KUBEPULSE_REQUIRE_BPF=1 but the kernel tests cannot run: {why}")
    pytest.skip(f"needs the real kernel: {why}")
