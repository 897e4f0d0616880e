#!/usr/bin/env bash
# Installs everything kubepulse needs on a fresh Debian/Ubuntu machine (as root):
# the BPF toolchain (clang, libbpf, bpftool), the lab's servers, and a venv with kubepulse.
#   scripts/setup.sh          runtime + lab
#   scripts/setup.sh --test   also the test tools (pytest, mypy, ruff, playwright), the test
#                             servers and Debian's chromium (the dashboard's browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (it installs Debian packages and loads BPF programs)" >&2
    exit 1
fi

APT_PACKAGES=(
    clang llvm libbpf-dev libbpf1 bpftool make gcc   # build the CO-RE objects
    iproute2 nftables procps util-linux              # lab pods (netns, veth) and faults
    nginx-light dnsmasq-base                         # lab servers
    python3 python3-venv                             # the venv (kubepulse and its tests)
)
# The dashboard's front-end libraries come from npm at build time (`npm ci` in setup.py).
# A node from elsewhere (e.g. NodeSource) ships its own npm and conflicts with Debian's.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)
if [ "$WITH_TEST" = 1 ]; then
    APT_PACKAGES+=(bpftrace                          # benchmark comparison
                   git                               # results/*.json record the commit
                   prometheus prometheus-alertmanager   # real servers for the export tests
                   chromium)                         # dashboard tests (Playwright drives it)
fi

export DEBIAN_FRONTEND=noninteractive
echo "==> apt-get install ${APT_PACKAGES[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null

# The probes attach tracepoints; libbpf resolves them through tracefs.
if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "==> pip install . (builds the BPF objects with clang, and the dashboard with npm ci)"
if [ "$WITH_TEST" = 1 ]; then
    .venv/bin/python -m pip install -q ".[test]"
else
    .venv/bin/python -m pip install -q ".[lab]"
fi
echo "==> kubepulse installed: $(.venv/bin/kubepulse --version)"
