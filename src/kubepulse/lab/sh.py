"""Running the tools the lab drives (``ip``, ``nft``) on the host or inside a lab netns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from kubepulse.errors import ConfigError, KubepulseError, PrivilegeError

# The programs the lab runs, and the Debian package that ships each one.
REQUIRED_TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "nft": "nftables",
    "dnsmasq": "dnsmasq-base",
    "nginx": "nginx-light",
}
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def require_root(what: str = "kubepulse lab") -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"{what} creates network namespaces and nftables rules, which needs root; "
            "run it again with sudo."
        )


def tool(name: str) -> str:
    """The absolute path of ``name``, looking in sbin too (it is often not on a user's PATH)."""
    found = shutil.which(name) or next(
        (f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None
    )
    if found is None:
        pkg = REQUIRED_TOOLS.get(name, name)
        raise ConfigError(
            f"the lab needs the program {name!r}, which is not installed; "
            f"install it with: apt-get install {pkg}"
        )
    return found


def require_tools() -> None:
    for name in REQUIRED_TOOLS:
        tool(name)
    require_lab_extra()


# The Python packages the lab's own programs import (pyproject.toml's `lab` extra); the agent
# does without them, so a plain `pip install kubepulse` leaves them out.
LAB_MODULES = ("dnslib",)


def require_lab_extra() -> None:
    import importlib.util

    missing = [m for m in LAB_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the lab needs the Python package {', '.join(missing)}, which is not installed; "
            f"install kubepulse with its lab extra: {sys.executable} -m pip install '.[lab]' "
            "(in the kubepulse source tree)."
        )


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    return [tool("ip"), "netns", "exec", netns, *argv]


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise KubepulseError(
            f"the command {' '.join(argv)!r} did not finish within {timeout:.0f} s; "
            "check the machine's load and run `kubepulse lab down`."
        ) from None
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise KubepulseError(
            f"the command {' '.join(argv)!r} failed: {err[-1] if err else proc.returncode}; "
            "run `kubepulse lab down` to clean up, then try again."
        )
    return proc


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    argv = [tool("ip")]
    if netns is not None:
        argv += ["-n", netns]
    return run([*argv, *args], check=check).stdout


def nft(script: str, *, netns: str | None = None) -> None:
    argv = [tool("nft"), "-f", "-"]
    run(in_netns(netns, argv) if netns else argv, stdin=script)


def nft_delete_table(family: str, table: str, *, netns: str | None = None) -> None:
    argv = [tool("nft"), "delete", "table", family, table]
    run(in_netns(netns, argv) if netns else argv, check=False)


def nft_tables(*, netns: str | None = None) -> list[tuple[str, str]]:
    """``(family, name)`` of every nftables table in the host or in ``netns``."""
    argv = [tool("nft"), "list", "tables"]
    out = run(in_netns(netns, argv) if netns else argv, check=False).stdout
    tables = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table":
            tables.append((parts[1], parts[2]))
    return tables


def sysctl(netns: str, key: str, value: str) -> None:
    """Set a per-netns sysctl; only ever called for lab namespaces, never the host's."""
    run(in_netns(netns, ["sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}"]))
