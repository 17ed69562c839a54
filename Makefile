# The two commands of the README: `make demo` and `make test`.
# Both install from the lock (uv.lock) first; `make lock` refreshes it to the newest releases.
.PHONY: demo test lint bench setup setup-demo lock test-newest

setup:
	@scripts/bootstrap.sh all,dev

setup-demo:
	@scripts/bootstrap.sh all

demo: setup-demo
	@.venv/bin/mlmon demo --lake ./lake

# pytest's exit code 5 (no test collected) must fail, not pass.
test: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy
	@.venv/bin/python -m compileall -q mlmon >/dev/null  # the suite's subprocesses import it
	@.venv/bin/python -m pytest -n 2 --dist loadgroup -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy

bench: setup
	@.venv/bin/python -m benchmarks.run_all

# Refresh uv.lock to the newest releases PyPI has today; commit it after `make test` passes.
lock:
	@scripts/bootstrap.sh lock

# The suite on the newest releases, without touching uv.lock or .venv (in .venv-newest).
test-newest: setup
	@scripts/test-newest.sh
