"""Scenario 9, verifier budget: each BPF program's verified instruction count, against the
committed baseline (verifier_baseline.json). More than 20 % growth fails, so complexity creep
is a decision, not an accident.

The count is the kernel's own (``bpf_prog_info.verified_insns``, Linux 5.16+): instructions
the verifier processed, the figure its 1,000,000 limit applies to. The programs are loaded by
the project's own probes, exactly as the agent loads them.

To re-baseline after a deliberate change: ``KUBEPULSE_VERIFIER_BASELINE=write pytest
tests/resilience/test_verifier_budget.py`` and commit the file with the reason.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
from pathlib import Path

import pytest

from kubepulse.probes.dns import DnsProbe
from kubepulse.probes.drops import DropProbe
from kubepulse.probes.tcp_conn import TcpConnProbe

from .record import record

pytestmark = pytest.mark.live

BASELINE = Path(__file__).with_name("verifier_baseline.json")
GROWTH = 1.20
INFO_SIZE = 232  # struct bpf_prog_info up to attach_btf_id (Linux 6.x)
OFF_ID, OFF_NAME, OFF_VERIFIED = 4, 64, 216


def _own_prog_fds() -> dict[int, int]:
    """prog id -> fd, for the BPF programs this process holds."""
    out = {}
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            text = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        m = re.search(r"^prog_id:\s+(\d+)$", text, re.MULTILINE)
        if m and "link_id:" not in text:  # a link's fdinfo names its program too
            out[int(m.group(1))] = int(fd)
    return out


def _info(lib: ctypes.CDLL, fd: int) -> tuple[int, str, int]:
    """(id, name, verified_insns) of the program behind ``fd``."""
    buf = ctypes.create_string_buffer(INFO_SIZE)
    size = ctypes.c_uint32(INFO_SIZE)
    rc = lib.bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size))
    assert rc == 0, f"bpf_obj_get_info_by_fd: {os.strerror(-rc)}"
    assert size.value >= OFF_VERIFIED + 4, "this kernel's bpf_prog_info has no verified_insns"
    raw = buf.raw
    return (int.from_bytes(raw[OFF_ID:OFF_ID + 4], "little"),
            raw[OFF_NAME:OFF_NAME + 16].split(b"\0")[0].decode(),
            int.from_bytes(raw[OFF_VERIFIED:OFF_VERIFIED + 4], "little"))


def measure() -> dict[str, dict[str, int]]:
    """{object: {program: verified instructions}}, loading each probe in turn."""
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                           ctypes.POINTER(ctypes.c_uint32)]
    out: dict[str, dict[str, int]] = {}
    for name, make in (("tcp_conn", TcpConnProbe), ("dns", DnsProbe), ("drops", DropProbe)):
        before = set(_own_prog_fds())
        with make() as probe:
            probe.start()
            progs = {}
            for pid, fd in _own_prog_fds().items():
                if pid in before:
                    continue
                got_id, prog, insns = _info(lib, fd)
                assert got_id == pid, "bpf_prog_info layout mismatch"
                progs[prog] = insns
        out[name] = dict(sorted(progs.items()))
    return out


def test_verified_instructions_within_budget(bpf: None) -> None:
    now = measure()
    print("verified instructions:", json.dumps(now))
    if os.environ.get("KUBEPULSE_VERIFIER_BASELINE") == "write":
        BASELINE.write_text(json.dumps({"kernel": platform.release(), "objects": now},
                                       indent=2) + "\n")
    base = json.loads(BASELINE.read_text())
    over = []
    for obj, progs in base["objects"].items():
        for prog, insns in progs.items():
            got = now.get(obj, {}).get(prog)
            assert got is not None, f"{obj}/{prog} is in the baseline but was not loaded"
            if got > insns * GROWTH:
                over.append(f"{obj}/{prog}: {got} verified instructions, baseline {insns} "
                            f"(+{got / insns - 1:.0%}, budget +{GROWTH - 1:.0%})")
    new = [f"{o}/{p}" for o, ps in now.items() for p in ps if p not in base["objects"].get(o, {})]
    assert not new, f"programs without a baseline (re-baseline, see the docstring): {new}"
    assert not over, "; ".join(over)
    record("verifier", {"kernel": platform.release(), "objects": now})
