#!/usr/bin/env bash
# The real model servers the protocol tests run (tests/servers/real.py), each in its own
# locked environment because their pins clash with mlmon's:
#   tests/servers/kserve/.venv     KServe's Python ModelServer   (tests/servers/kserve/uv.lock)
#   tests/servers/mlserver/.venv   MLServer + scikit-learn runtime (tests/servers/mlserver/uv.lock)
#   benchmarks/nannyml/.venv       NannyML 0.13.1, the oracle of the statistics tests and benchmarks
#                                  (benchmarks/nannyml/uv.lock; it needs pandas < 3)
# MLflow's scoring server needs nothing here: mlflow is in mlmon's own dev extras.
#
#   scripts/test-servers.sh          create or update both from their locks (uv sync --locked)
#   scripts/test-servers.sh lock     refresh both locks to the newest releases the pins allow
# Safe to run again: uv sync installs only what is missing. Needs .uv/bin/uv (scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_NO_PROGRESS=1
if [ ! -x .uv/bin/uv ]; then
  echo "test-servers: .uv/bin/uv is missing; run scripts/bootstrap.sh first" >&2
  exit 1
fi
for project in tests/servers/kserve tests/servers/mlserver benchmarks/nannyml; do
  if [ "${1:-}" = lock ]; then
    .uv/bin/uv lock --upgrade --python "$py" --project "$project"
  else
    .uv/bin/uv sync --locked --quiet --compile-bytecode --python "$py" --project "$project"
  fi
done
