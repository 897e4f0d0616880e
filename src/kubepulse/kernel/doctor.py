"""`kubepulse doctor`: check this kernel and host before anything attaches.

Each check gives ok/fail and, when it fails, one line saying how to fix it. `kubepulse run` and
`kubepulse events` run the same checks first, so a missing piece is named rather than surfacing
as an errno from deep inside libbpf.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from kubepulse.errors import KernelError, PrivilegeError

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
BTF_PATH = Path("/sys/kernel/btf/vmlinux")
MIN_KERNEL = (5, 8)  # BPF ring buffer
MIN_LIBBPF = (0, 7)  # bpf_object__next_map / next_program
CAP_NAMES = {21: "CAP_SYS_ADMIN", 12: "CAP_NET_ADMIN", 38: "CAP_PERFMON", 39: "CAP_BPF"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def kernel_version() -> tuple[int, int]:
    release = platform.release()
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def tracefs_root(mount: bool = False) -> Path | None:
    """The tracefs events directory root; with ``mount``, mount tracefs if it is missing."""
    for root in TRACEFS_CANDIDATES:
        try:
            if (root / "events").is_dir():
                return root
        except PermissionError:  # mode 0700: someone else's; the privilege check says so
            continue
    if mount:
        subprocess.run(["mount", "-t", "tracefs", "tracefs", str(TRACEFS_CANDIDATES[0])],
                       check=False, capture_output=True)
        if (TRACEFS_CANDIDATES[0] / "events").is_dir():
            return TRACEFS_CANDIDATES[0]
    return None


def required_tracepoints() -> dict[str, bool]:
    """Every tracepoint the probes use, and whether it is required."""
    from kubepulse.probes.registry import PROBES

    out: dict[str, bool] = {}
    for spec in PROBES:
        for prog, tp in spec.tracepoints.items():
            out[tp] = out.get(tp, False) or prog in spec.required
    return out


def run_checks(mount_tracefs: bool = True) -> list[Check]:
    checks: list[Check] = []
    caps = _effective_caps()
    have = {name for bit, name in CAP_NAMES.items() if caps & (1 << bit)}
    # Capabilities, not the uid, decide: root in a container may hold none of them.
    priv_ok = {"CAP_BPF", "CAP_PERFMON"} <= have or "CAP_SYS_ADMIN" in have
    checks.append(Check(
        "privileges", priv_ok,
        f"uid {os.geteuid()}, capabilities: {', '.join(sorted(have)) or 'none'}",
        "run as root (sudo kubepulse ...), or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN "
        "(CAP_SYS_ADMIN before Linux 5.8)"))

    kv = kernel_version()
    checks.append(Check(
        "kernel", kv >= MIN_KERNEL, f"Linux {platform.release()}",
        f"kubepulse needs Linux {MIN_KERNEL[0]}.{MIN_KERNEL[1]}+ for the BPF ring buffer"))

    checks.append(Check(
        "btf", BTF_PATH.is_file(), str(BTF_PATH) + (" present" if BTF_PATH.is_file() else
                                                     " missing"),
        "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distro since 2021)"))

    try:
        from kubepulse.kernel.libbpf import libbpf_version, probe_bpf_syscall

        major, minor = libbpf_version()
        checks.append(Check(
            "libbpf", (major, minor) >= MIN_LIBBPF, f"libbpf {major}.{minor}",
            "apt-get install libbpf1 (Debian 12+/Ubuntu 22.04+) or a newer libbpf"))
        if priv_ok:
            why = probe_bpf_syscall()
            checks.append(Check(
                "bpf() syscall", why is None,
                "a test map was created" if why is None else f"creating a map failed: {why}",
                "check kernel.unprivileged_bpf_disabled, seccomp, or the container's "
                "capabilities (CAP_BPF)"))
        else:
            checks.append(Check("bpf() syscall", False, "not tried without privileges",
                                "run as root"))
    except KernelError as exc:
        checks.append(Check("libbpf", False, str(exc), "apt-get install libbpf1"))

    root = tracefs_root(mount=mount_tracefs and priv_ok)
    checks.append(Check(
        "tracefs", root is not None, f"mounted at {root}" if root else "not mounted",
        "mount -t tracefs tracefs /sys/kernel/tracing"))
    for tp, required in sorted(required_tracepoints().items()):
        group, _, event = tp.partition(":")
        present = root is not None and (root / "events" / group / event).is_dir()
        fix = ("this kernel lacks the tracepoint; kubepulse needs Linux 5.8+"
               if required else "optional: without it that signal is missing (reported)")
        if group == "syscalls":
            fix = ("optional: needs CONFIG_FTRACE_SYSCALLS; without it connect() failures "
                   "inside the host are not reported")
        checks.append(Check(f"tracepoint {tp}", present,
                            "present" if present else "missing", fix, required=required))
    return checks


def require_ready() -> None:
    """Raise one clear error if a required check fails (used before attaching)."""
    failed = [c for c in run_checks() if c.required and not c.ok]
    if not failed:
        return
    first = failed[0]
    more = f" ({len(failed) - 1} more: run `kubepulse doctor`)" if len(failed) > 1 else ""
    msg = f"{first.name}: {first.detail}. Fix: {first.fix}{more}"
    if first.name == "privileges":
        raise PrivilegeError(msg)
    raise KernelError(msg)


def _cmd(args: argparse.Namespace) -> int:
    checks = run_checks()
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
            line = f"{mark}  {c.name:<{width}}  {c.detail}"
            if not c.ok:
                line += f"\n      fix: {c.fix}"
            print(line)
    failed = [c for c in checks if c.required and not c.ok]
    if not args.json:
        print(f"\n{len(failed)} required check(s) failed" if failed else
              "\nall required checks passed: kubepulse can run here")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "doctor", help="check this kernel and host before anything attaches",
        description="Check everything kubepulse needs: privileges, kernel version, BTF, "
                    "libbpf, the bpf() syscall, tracefs and each tracepoint. Exits non-zero "
                    "with a one-line fix for each missing piece.",
        epilog="examples:\n  sudo kubepulse doctor\n  kubepulse doctor --json | jq "
               "'.[] | select(.ok | not)'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd)
