# Spice Harvester on Faust: the two commands of the README, and helpers.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-reliability soak test-unit test-integration stack-up stack-down stack-status bench bench-compare bench-backends bench-queries bench-history bench-push bench-scale bench-recovery lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Install everything, start the local stack, run the worker (API on 127.0.0.1:16066).
run: install
	$(BIN)/spice stack up
	$(BIN)/spice run

## Install everything, start the stack, run the whole test suite, stop what was started.
test: install
	bash scripts/test.sh

## The reliability suite (faults, crashes, bad input; books must balance): CI runs it too.
test-reliability: install
	MARKERS=reliability bash scripts/test.sh

## One hour of mixed load; RSS and descriptors flat within 5 %, tracemalloc top 10 (not in CI).
soak: install
	SOAK_SECONDS=$${SOAK_SECONDS:-3600} SOAK_SAMPLE_SECONDS=30 SOAK_TOLERANCE=0.05 SOAK_TRACEMALLOC=1 \
	  MARKERS=reliability SECOND_PASS=0 bash scripts/test.sh -s tests/reliability/test_soak.py

test-unit: install
	$(BIN)/pytest -m unit -q

stack-up: install
	$(BIN)/spice stack up
stack-down: install
	$(BIN)/spice stack down
stack-status: install
	$(BIN)/spice stack status

## Benchmarks: print figures (need the stack; started if missing).
bench: install
	$(BIN)/spice stack up
	$(BIN)/python -m bench.event_store
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.workers
	$(BIN)/python -m bench.projections

## Ratios against a peer or a limit, measured interleaved in one run (bench/compare.py).
bench-compare: install
	$(BIN)/spice stack up
	$(BIN)/python -m bench.compare

## PostgreSQL vs TerminusDB (graph) and vs Elasticsearch (search), interleaved, with ratios.
bench-backends: install
	$(BIN)/spice stack up --with elasticsearch,terminusdb
	$(BIN)/python -m bench.backends

## Graph queries, structured queries and schema analysis on 100,000 instances, with plans.
bench-queries: install
	$(BIN)/spice stack up --with elasticsearch
	$(BIN)/python -m bench.queries

bench-history: install
	$(BIN)/spice stack up
	$(BIN)/python -m bench.history

bench-push: install
	$(BIN)/spice stack up
	$(BIN)/python -m bench.push

## The same figures at 10^4, 10^6 and 10^7 stored events (fills ~25 GB; not in CI).
## `python -m bench.scale --drop` removes the fill.
bench-scale: install
	$(BIN)/spice stack up
	$(BIN)/python -m bench.scale

## How fast a starting worker reads a status-table changelog, with and without the fix.
bench-recovery: install
	$(BIN)/spice stack up
	$(BIN)/python -m bench.recovery

lint: install
	$(BIN)/ruff check spice tests bench
	$(BIN)/mypy spice

clean:
	rm -rf .run $(VENV)
