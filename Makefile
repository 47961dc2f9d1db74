# The two Quick start commands: `make serve` and `make test`.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test deps lint pytest bench

serve:
	$(PYTHON) -m pip install -q --disable-pip-version-check -e .
	$(PYTHON) -m kpk_io serve --host $(HOST) --port $(PORT)

test: deps lint pytest

deps:
	bash .ci/deps.sh

lint:
	$(PYTHON) -m ruff check kpk_io tests benchmarks
	$(PYTHON) -m mypy

pytest:
	$(PYTHON) -m pytest -q -p no:cacheprovider

bench:
	$(PYTHON) -m benchmarks.commits
	$(PYTHON) -m benchmarks.fanout
