# Every target sets itself up: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_PORT ?= 8888
SANDBOX_PORT ?= 8765
# Test processes (pytest-xdist): each test file stays in one, so a notebook runs in order and
# each starts its own servers. Most tests wait on sockets or a browser, so three share two cores
# well: 1,370 tests took 6 min 26 s in three processes, 7 min 20 s in two (same machine, idle).
TEST_WORKERS ?= 3

.PHONY: lab dashboard test browser postgres report reliability sandbox notebooks lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the pins or the package metadata change, so a second run is quick.
$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

## lab: JupyterLab on the notebooks, against one shared sandbox on 127.0.0.1:$(SANDBOX_PORT) (RESET=1 clears it)
lab: $(STAMP)
	LAB_PORT=$(LAB_PORT) SANDBOX_PORT=$(SANDBOX_PORT) RESET=$(RESET) scripts/lab

## dashboard: sync verdict, webhook log and bulk results for colleagues, no code: Voila on 127.0.0.1:8866 (DASHBOARD_PORT=...)
dashboard: $(STAMP)
	SANDBOX_PORT=$(SANDBOX_PORT) scripts/dashboard

## test: lint, then every test, notebooks, browser and PostgreSQL tests included (strict nbval; Debian chromium, postgresql)
test: $(STAMP) lint browser postgres
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (Playwright downloads no browser here). Installed
# when missing and we may (root with apt); otherwise tests/e2e skips and says how to install it.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "note: no /usr/bin/chromium; browser tests will be skipped (sudo apt-get install chromium)"; fi; \
	fi

# The PostgreSQL tests start their own server from Debian's binaries (tests/pg.py; no service is
# used or started). Installed when missing and we may (root with apt); otherwise they skip and say how.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing postgresql for the event-log tests on PostgreSQL"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else echo "note: no PostgreSQL server binaries; PostgreSQL tests will be skipped (sudo apt-get install postgresql)"; fi; \
	fi

## report: run every notebook against the sandbox; reports/<name>.html to share: title block, results only, masked (REPORT_ARGS= for code and real data)
report: REPORT_ARGS ?= --share
report: $(STAMP)
	$(BIN)/python -m impilo_nb report --out reports $(REPORT_ARGS)

## reliability: the full reliability and security suite (fuzzing, SIGKILL faults, 60 s load, secrets) and its figures
reliability: $(STAMP)
	IMPILO_RELIABILITY=full $(BIN)/python -m pytest tests/reliability -p no:randomly -q $(PYTEST_ARGS)

## sandbox: the sandbox alone, in the foreground
sandbox: $(STAMP)
	$(BIN)/python -m impilo_nb sandbox --port $(SANDBOX_PORT) --db .sandbox/sandbox.db

## notebooks: re-execute the notebooks in place (refreshes their committed outputs)
notebooks: $(STAMP)
	$(BIN)/python scripts/execute_notebooks.py notebooks/*.ipynb

## lint: ruff on the code, and mypy (strict, configured in pyproject.toml) on the package
lint: $(STAMP)
	$(BIN)/python -m ruff check impilo_nb tests bench scripts
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) .sandbox reports .pytest_cache .mypy_cache
