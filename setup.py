"""Build hook: compile the CO-RE BPF objects with clang and ship them as package data.

Everything else about the package lives in pyproject.toml. The objects are built from
bpf/*.bpf.c by `make -C bpf` at build/install time; nothing binary is committed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithBpf(build_py):  # type: ignore[misc]
    def run(self) -> None:
        out = ROOT / "src" / "kubepulse" / "bpf"
        if os.environ.get("KUBEPULSE_SKIP_BPF_BUILD") != "1":
            subprocess.run(["make", "-C", str(ROOT / "bpf"), f"OUT={out}"], check=True)
        super().run()


setup(cmdclass={"build_py": BuildPyWithBpf})
