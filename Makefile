# kubepulse: the two commands of the README are `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-test demo test test-lab bpf bench soak docs clean

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

# The main job, from a fresh machine: a lab cluster, the agent, rotating faults, live alerts.
demo: setup
	$(VENV)/bin/kubepulse demo

# Every test CI runs, from a fresh machine: lint, types, unit, live kernel, lab.
test: setup-test
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/mypy src tests
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-lab: setup-test
	$(PY) -m pytest -q -m lab

bpf:
	$(MAKE) -C bpf

bench: setup-test
	bench/run.sh

# The long resilience runs (docs/reliability.md): a 10-minute churn soak (KUBEPULSE_SOAK_MINUTES)
# and 2-minute sink outages. `make test` leaves them out (pyproject.toml: -m 'not soak').
soak: setup-test
	KUBEPULSE_REQUIRE_BPF=1 $(PY) -m pytest -q -m soak -s tests/resilience

# Render the tables of docs/{detection,benchmarks,reliability}.md from results/*.json.
# `scripts/render_docs.py --check` (run by tests/unit/test_docs_results.py) names stale ones.
docs:
	$(PY) scripts/render_docs.py

clean:
	$(MAKE) -C bpf clean
	rm -rf build dist src/*.egg-info
