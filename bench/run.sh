#!/bin/sh
# The `make bench` entry point: build the churn generator, measure the tcp_conn probe's cost
# against bpftrace, then the decode micro-benchmark. Results: bench/out/*.md and *.json.
# Needs root, bpftrace, bpftool, cc, python3 with numpy. Runs ~4 minutes on 2 CPUs.
#   sudo bench/run.sh                      defaults (5 rounds x 4 s)
#   sudo bench/run.sh --rounds 3 --duration 5
set -eu
cd "$(dirname "$0")/.."
python3 bench/tcp_overhead.py "$@"
python3 bench/decode_micro.py
