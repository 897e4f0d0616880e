#!/bin/sh
# The `make bench` entry point: build the load generators, measure the tcp_conn probe's cost
# against bpftrace, then the decode micro-benchmark, the DNS flood and the drop storm.
# Results: bench/out/*.md and *.json.
# Needs root, bpftrace, bpftool, cc, dnsmasq (dnsmasq-base), nft, ip, and .venv (make setup-test).
# Runs ~6 minutes on 2 CPUs. Arguments go to tcp_overhead.py:
#   sudo bench/run.sh                      defaults (5 rounds x 4 s)
#   sudo bench/run.sh --rounds 3 --duration 5
set -eu
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"  # the project's venv (scripts/setup.sh): numpy, kubepulse
"$PY" bench/tcp_overhead.py "$@"
"$PY" bench/decode_micro.py
"$PY" bench/dns_flood.py
"$PY" bench/drop_storm.py
