# kubepulse: the two commands of the README are `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-test demo test lint bpf bench soak clean

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

# The main job, from a fresh machine.
demo: setup
	$(VENV)/bin/kubepulse events

# Every test, from a fresh machine: lint, types, unit, live kernel, lab.
test: setup-test
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src
	$(PY) -m pytest -q

bpf:
	$(MAKE) -C bpf

bench: setup-test
	$(PY) bench/tcp_overhead.py

soak: setup-test
	$(PY) -m pytest -q -m soak

clean:
	$(MAKE) -C bpf clean
	rm -rf build dist src/*.egg-info
