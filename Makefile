# The README's two commands: `make demo` and `make test`. Both set up what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench system-deps

demo: $(VENV)/.runtime
	$(BIN)/flowtrux demo

test: $(VENV)/.dev system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# Every benchmark, one table; results in bench/results.md and .json (n8n, compared with, is
# installed with npm into ~/.cache/flowtrux-bench on first use).
bench: $(VENV)/.dev
	$(BIN)/python -m bench

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The end-to-end tests also run the product doc's JavaScript client (Node.js 18+) and the
# demo's curl lines.
system-deps:
	@command -v node >/dev/null && command -v curl >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "install Node.js 18+ and curl" >&2; exit 1; }; \
	  apt-get update -qq && apt-get install -y -qq nodejs curl >/dev/null; }
	@node -e 'if (typeof fetch !== "function") { console.error("Node.js 18+ needed"); process.exit(1) }'
