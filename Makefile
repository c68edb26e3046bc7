# Two commands do everything:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test bench clean

$(BIN)/evalledger: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/evalledger

install: $(BIN)/evalledger

## Install (first time) and start the API on the embedded PostgreSQL, or on $DATABASE_URL.
serve: install
	$(BIN)/evalledger serve --host $(HOST) --port $(PORT)

## Install (first time) and run the tests against $DATABASE_URL, or an embedded PostgreSQL.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=20

## The benchmark workloads of DESIGN.md (W1-W3) against a fresh server; see benchmarks/README.md.
bench: install
	$(BIN)/python benchmarks/workloads.py

clean:
	rm -rf $(VENV) .evalledger *.egg-info
