# The two commands: `make run` starts Berth, `make test` runs the whole suite.
# Each calls `make setup` first, so it works alone on a fresh Debian machine.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test run bench lint clean-test-state

setup:
	@scripts/setup.sh

test: setup
	@scripts/test.sh

run: setup
	@scripts/run.sh

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check runtime panel tests bench
	$(VENV)/bin/mypy
