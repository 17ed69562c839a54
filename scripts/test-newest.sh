#!/usr/bin/env bash
# The whole test suite on the newest releases of every dependency (what a fresh, unlocked
# `pip install mlmon[all,dev]` would take today), in .venv-newest; uv.lock and .venv stay as
# they are. Run by `make test-newest` before `make lock`.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_NO_PROGRESS=1
py="${PYTHON:-python3}"
[ -x .venv-newest/bin/python ] || .uv/bin/uv venv --quiet --python "$py" .venv-newest
.uv/bin/uv pip install --quiet --upgrade --python .venv-newest/bin/python -e ".[all,dev]"
.uv/bin/uv pip list --python .venv-newest/bin/python --format freeze | grep -i -E "^(moto|duckdb|polars|pyarrow|numpy|mlflow)=" || true
set +e
.venv-newest/bin/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider; rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
