# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test lint bench setup

setup:
	@scripts/bootstrap.sh all,dev

demo: setup
	@.venv/bin/mlmon demo --lake ./lake

# pytest's exit code 5 (no test collected) must fail, not pass.
test: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy
	@.venv/bin/python -m pytest -n 2 -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy

bench: setup
	@.venv/bin/python -m benchmarks.run_all
