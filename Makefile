# Two commands on a fresh machine with Python 3.11 and git:
#   make run    set up .venv, start Postgres (embedded) + web + worker, print the webhook URL
#   make test   the whole test suite on a real Postgres (embedded unless DATABASE_URL is set),
#               browser tests included when Chromium is installed (said loudly when skipped)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test demo demo-alpaca bench bench-worker bench-execution bench-hooks bench-dashboard bench-notify soak lint migrate clean

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

bench-hooks: $(STAMP)
	$(BIN)/python scripts/bench_hooks.py

bench-dashboard: $(STAMP)
	$(BIN)/python scripts/bench_dashboard.py

bench-notify: $(STAMP)
	$(BIN)/python scripts/bench_notify.py

# Endurance: SOAK_MINUTES (default 30) of mixed traffic on PORT (default 8105), sampled each minute.
soak: $(STAMP)
	$(BIN)/python scripts/soak.py

lint: $(STAMP)
	$(BIN)/ruff check .

migrate: $(STAMP)
	$(BIN)/flask --app wsgi migrate

clean:
	rm -rf $(VENV) .data .pytest_cache
