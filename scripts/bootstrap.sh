#!/usr/bin/env bash
# Installs what mlmon needs on a fresh Debian machine: system packages (only
# the missing ones, with apt-get) and a virtual environment in ./.venv with
# mlmon and its extras. Safe to run again: it skips what is already there.
#   scripts/bootstrap.sh [extras]      default extras: all,dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all,dev}"

# System libraries: weasyprint (pango, harfbuzz subset, a font), poppler for
# PDF-to-PNG checks, and a PACS for the imaging tests: Orthanc with its
# DICOMweb plugin (the tests start their own instance on 127.0.0.1 with
# RemoteAccessAllowed false; the package's own service is not used).
pkgs=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils
      orthanc orthanc-dicomweb)
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
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=".venv/.mlmon-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing mlmon[$extras] into .venv"
  # (pip repeats a harmless warning per package about this machine's extra index folders)
  set +e +o pipefail
  .venv/bin/python -m pip install -q -e ".[${extras}]" 2>&1 | grep -v "^WARNING: Location"
  rc=${PIPESTATUS[0]}
  set -e -o pipefail
  if [ "$rc" -ne 0 ]; then echo "bootstrap: pip install failed (exit $rc)" >&2; exit "$rc"; fi
  rm -f .venv/.mlmon-installed-*
  touch "$stamp"
fi
