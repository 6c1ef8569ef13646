# Retento: `make run` starts the embedded default, `make test` runs the suite, `make test-slow` the
# minute-scale tests it leaves out (CI runs both).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow test-fuzz install migrate demo clean vendor translations browser screenshots

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test,bench]'
	-git config merge.po.driver '$(BIN)/python scripts/po-merge.py %O %A %B' 2>/dev/null
	-git config merge.mo.driver true 2>/dev/null
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/retento migrate

demo: migrate
	$(BIN)/retento demo --if-empty

run: demo
	$(BIN)/retento run

# the console's browser tests drive Debian's chromium (never a downloaded browser build): install it when missing
# and root; otherwise tests/console fail saying what to install
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
	  || echo "chromium is missing: install it (apt-get install chromium) for the console's browser tests"; }

test: install browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the minute-scale tests `make test` leaves out (marked slow); .ci/run runs them after `make test`
test-slow: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# nightly-size schemathesis over both OpenAPI documents (make test runs the bounded size of the same tests)
test-fuzz: install
	$(BIN)/python -m pytest -m fuzz tests/api/test_openapi_fuzz.py $(PYTEST_ARGS)

# the console's main pages in English and Russian, as docs/console/<page>-<lang>.png (the README shows one)
screenshots: install browser
	$(BIN)/python -m pytest -m screenshots tests/console/test_screenshots.py $(PYTEST_ARGS)

# refresh the console's vendored browser assets from npm (pinned in the script; needs npm, `make run` does not)
vendor:
	scripts/vendor-assets.sh

# the console's catalogs: extract the English strings, merge them into each language's .po, compile the .mo files
# (committed, so installing needs no build step)
LOCALES := src/retento/console/locale
translations: install
	$(BIN)/pybabel extract -F src/retento/console/babel.cfg -k N_ --no-location --sort-output --omit-header \
	  -o $(LOCALES)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d $(LOCALES) --statistics

clean:
	rm -rf $(VENV) retento.db retento.db-wal retento.db-shm
