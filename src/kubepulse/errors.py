"""Errors that end a command with one clear sentence (no traceback) and a non-zero exit."""

from __future__ import annotations


class KubepulseError(Exception):
    """A failure the user can act on. ``str(exc)`` is the whole message: what, where, the fix."""

    exit_code = 1


class ConfigError(KubepulseError):
    """Bad configuration, inventory or arguments."""

    exit_code = 2


class PrivilegeError(KubepulseError):
    """Missing root or capabilities."""

    exit_code = 77


class KernelError(KubepulseError):
    """The kernel lacks something kubepulse needs, or refused a BPF operation."""

    exit_code = 3
