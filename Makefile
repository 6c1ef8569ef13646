# Retento: `make run` starts the embedded default, `make test` runs the suite, `make test-slow` the
# minute-scale tests it leaves out (CI runs both).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow test-fuzz install migrate demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/retento migrate

demo: migrate
	$(BIN)/retento demo --if-empty

run: demo
	$(BIN)/retento run

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the minute-scale tests `make test` leaves out (marked slow); .ci/run runs them after `make test`
test-slow: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# nightly-size schemathesis over both OpenAPI documents (make test runs the bounded size of the same tests)
test-fuzz: install
	$(BIN)/python -m pytest -m fuzz tests/api/test_openapi_fuzz.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) retento.db retento.db-wal retento.db-shm
