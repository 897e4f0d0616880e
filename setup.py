"""Build hook: compile the CO-RE BPF objects with clang, and assemble the dashboard's static
files; both are shipped as package data.

Everything else about the package lives in pyproject.toml. The objects are built from
bpf/*.bpf.c by `make -C bpf` at build/install time; nothing binary is committed. The dashboard's
third-party libraries (web/package.json, pinned by web/package-lock.json) are installed with
`npm ci` and copied, with our own files from web/src/, into src/kubepulse/dashboard/static/;
node_modules and the copies are git-ignored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"
STATIC = ROOT / "src" / "kubepulse" / "dashboard" / "static"
# (file in web/node_modules, name under static/vendor/)
VENDOR = (
    ("cytoscape/dist/cytoscape.min.js", "cytoscape.min.js"),
    ("uplot/dist/uPlot.iife.min.js", "uPlot.iife.min.js"),
    ("uplot/dist/uPlot.min.css", "uPlot.min.css"),
)


def build_web() -> None:
    """npm ci (skipped while node_modules matches the lockfile), then copy into static/."""
    modules = WEB / "node_modules"
    stamp = modules / ".package-lock.json"  # npm writes it on every install
    lock = WEB / "package-lock.json"
    fresh = stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime and all(
        (modules / src).exists() for src, _ in VENDOR)
    if not fresh:
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(
                "kubepulse build: npm not found; the dashboard's front-end libraries come "
                "from npm (web/package-lock.json). Install it (apt-get install npm; "
                "scripts/setup.sh does), or set KUBEPULSE_SKIP_WEB_BUILD=1 to build without "
                "the dashboard page (its JSON API still works).")
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                        "--loglevel=error"], cwd=WEB, check=True)
    if STATIC.exists():
        shutil.rmtree(STATIC)
    (STATIC / "vendor").mkdir(parents=True)
    for own in sorted((WEB / "src").iterdir()):
        shutil.copy2(own, STATIC / own.name)
    for src, name in VENDOR:
        shutil.copy2(modules / src, STATIC / "vendor" / name)


class BuildPyWithBpf(build_py):  # type: ignore[misc]
    def run(self) -> None:
        out = ROOT / "src" / "kubepulse" / "bpf"
        if os.environ.get("KUBEPULSE_SKIP_BPF_BUILD") != "1":
            subprocess.run(["make", "-C", str(ROOT / "bpf"), f"OUT={out}"], check=True)
        if os.environ.get("KUBEPULSE_SKIP_WEB_BUILD") != "1":
            build_web()
        super().run()


# The directories the build fills are packages of their own (pyproject.toml's package-data).
# They are git-ignored, so a fresh clone lacks them; made here, before setuptools collects the
# packages, they are found like the others, and their files are not installed as undeclared
# data (a deprecation warning at every install).
for built in (ROOT / "src" / "kubepulse" / "bpf", STATIC / "vendor"):
    built.mkdir(parents=True, exist_ok=True)

setup(cmdclass={"build_py": BuildPyWithBpf})
