# kubepulse: the two commands of the README are `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-test demo test test-lab bpf bench soak clean

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

# The main job, from a fresh machine: a lab cluster, the agent, rotating faults, live alerts.
demo: setup
	$(VENV)/bin/kubepulse demo

# Every test CI runs, from a fresh machine: lint, types, unit, live kernel, lab.
test: setup-test
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src
	$(PY) -m pytest -q

test-lab: setup-test
	$(PY) -m pytest -q -m lab

bpf:
	$(MAKE) -C bpf

bench: setup-test
	bench/run.sh

soak: setup-test
	$(PY) -m pytest -q -m soak

clean:
	$(MAKE) -C bpf clean
	rm -rf build dist src/*.egg-info
