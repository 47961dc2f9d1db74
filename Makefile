# The two Quick start commands: `make serve` and `make test`. Both run in a virtualenv of the
# project's own (.venv), made on first use, so they work where pip may not touch the system
# Python (PEP 668: Debian 12 and later). Everything below runs .venv's python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test deps lint pytest bench soak

serve: $(VENV)/.serve
	$(PY) -m kpk_io serve --host $(HOST) --port $(PORT)

test: deps $(VENV)/.test lint pytest

# Debian packages (redis-server, chromium, nginx, node) and the browser client's npm packages.
deps:
	bash .ci/deps.sh

$(PY):
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "python3 -m venv needs ensurepip: apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Editable, so the service and the tests run the code of this checkout; the tests run with
# the speed extra (uvloop, hiredis, orjson), as the Docker image does. Installed again
# whenever pyproject.toml changes.
$(VENV)/.serve: pyproject.toml | $(PY)
	$(PIP) -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(PY)
	$(PIP) -e '.[test,speed]'
	touch $@ $(VENV)/.serve

lint: $(VENV)/.test
	$(PY) -m ruff check kpk_io tests benchmarks
	$(PY) -m mypy

pytest: $(VENV)/.test
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(VENV)/.serve
	(cd benchmarks/node && npm ci --no-audit --no-fund --loglevel=error)
	$(PY) -m benchmarks.suite
	$(PY) -m benchmarks.commits
	$(PY) -m benchmarks.fanout
	$(PY) -m benchmarks.signals

# The reliability soak (docs/reliability.md); e.g. make soak SOAK_ARGS="--duration 900 --nodes 3"
soak: $(VENV)/.serve
	$(PY) -m benchmarks.soak $(SOAK_ARGS)
