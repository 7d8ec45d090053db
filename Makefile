# bfly: set-up, demo, tests and benchmarks. Every target creates .venv first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bfly-installed
JOBS ?= 2

.PHONY: setup demo test test-long bench bench-core bench-gen bench-sw bench-link clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/bfly demo

PYTEST_ARGS ?=
test: setup
	$(BIN)/pytest -n $(JOBS) $(PYTEST_ARGS)

test-long: setup
	$(BIN)/pytest -n $(JOBS) -m long $(PYTEST_ARGS)

# the FPGA table (synthesis, place and route of six engines, each tool run stopped after
# BENCH_LIMIT minutes; docs/bench.md says how long a run takes)
BENCH_LIMIT ?= 60
bench: setup
	$(BIN)/python -m bfly.gen.fpga_bench --jobs $(JOBS) --time-limit $(BENCH_LIMIT)

bench-core: setup
	$(BIN)/python -m bfly.sim.bench

# bfly gen's time, memory and Verilog size, hierarchical and flat, and a Verilator build
bench-gen: setup
	$(BIN)/python -m bfly.gen.bench_gen

bench-sw: setup
	$(BIN)/python -m bfly.sw.bench

# streaming through the simulated board, one command in flight against the driver's window
bench-link: setup
	$(BIN)/python -m bfly.sw.bench_link

clean:
	rm -rf build .pytest_cache .hypothesis
