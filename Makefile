# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/aim-etl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/aim-etl
	rm -rf demo
	@# Exit 3 is expected: the fixtures hold invalid lines on purpose, and the report lists them.
	$(BIN)/aim-etl migrate fixtures/ --repo demo --report demo/report.md || test $$? -eq 3
	@echo
	$(BIN)/aim-etl validate --repo demo --rules fixtures/demo_rules.toml --report demo/validation.html
	@echo
	@echo "Reports: demo/report.md (import), demo/validation.html (governance). Look at the runs with:"
	@echo "  $(BIN)/aim up --repo demo"
	@echo "and search for: run.validation.status == \"FAIL\""

test: $(BIN)/aim-etl
	$(BIN)/ruff check etl tests
	$(BIN)/python -m pytest -q tests --ignore=tests/benchmarks

bench: $(BIN)/aim-etl
	$(BIN)/python tests/benchmarks/bench_migrate.py
	$(BIN)/python tests/benchmarks/bench_sync.py --lines 10000
	$(BIN)/python tests/benchmarks/bench_validate.py --runs 10000
	$(BIN)/python tests/benchmarks/bench_writers.py

clean:
	rm -rf demo $(VENV) .pytest_cache
