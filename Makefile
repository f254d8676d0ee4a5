# `make run` brings the whole shop up; `make test` runs every check. See README.md.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint clean

run: $(VENV)/.run-installed
	$(BIN)/python scripts/devstack.py run

test: $(VENV)/.dev-installed
	sh scripts/ensure-test-programs.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/devstack.py exec test -- sh -c '\
		DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run && \
		$(BIN)/pytest $(PYTEST_ARGS)'

bench: $(VENV)/.run-installed
	$(BIN)/python bench/storm.py $(BENCH_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: $(VENV)/bin/python requirements.txt requirements-services.txt
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-services.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/bin/python requirements.txt requirements-services.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .run staticfiles .pytest_cache .ruff_cache
