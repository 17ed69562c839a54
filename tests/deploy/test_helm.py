"""deploy/helm/mlmon, linted and rendered by the real helm binary (v3.17.3, scripts/fetch-k8s-tools.sh).

The chart renders, for values-onprem.yaml and values-cloud.yaml, the very objects of deploy/k8s
(the edge overlays and the server overlays): every check the tests make on deploy/k8s (restricted
profile, admission policy, Job quota, RBAC, NetworkPolicies, KMS fail-closed ...) therefore holds
for the chart too. The chart's own checks (validity, security, identities) are run on its output
as well, in tests/deploy/test_server_manifests.py.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import K8S, one, pod_specs
from tests.deploy.helm import CHART, VALUES, helm, template
from tests.deploy.kustomize import render


def _key(d: dict[str, Any]) -> tuple[str, str, str]:
    return d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]


def _normal(doc: dict[str, Any]) -> dict[str, Any]:
    """What may differ without meaning: YAML text of a ConfigMap (compared parsed), the order of
    environment variables (kustomize appends a patch's), the chart's config checksum annotation."""
    d = copy.deepcopy(doc)
    if d["kind"] == "ConfigMap":
        d["data"] = {k: yaml.safe_load(v) if k.endswith(".yaml") else v for k, v in d["data"].items()}  # fmt: skip

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if isinstance(x.get("env"), list):
                x["env"] = sorted(x["env"], key=lambda e: e["name"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(d)
    meta = ((d.get("spec") or {}).get("template") or {}).get("metadata") or {}
    annotations = meta.get("annotations") or {}
    for k in [k for k in annotations if k.startswith("checksum/")]:
        del annotations[k]
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    return d


def test_the_helm_binary_is_helm_3():
    out = helm("version", "--short").stdout
    assert re.match(r"v3\.\d+\.\d+", out), out


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_lint_strict_passes_for_each_values_file(values):
    res = helm("lint", "--strict", str(CHART), "-f", str(VALUES[values]), check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 chart(s) failed" in res.stdout


def test_helm_lint_catches_a_broken_template(tmp_path):
    """The lint can fail: a copy of the chart with an unclosed action is refused."""
    import shutil

    broken = tmp_path / "mlmon"
    shutil.copytree(CHART, broken)
    path = broken / "templates" / "server" / "service.yaml"
    path.write_text(path.read_text().replace("{{ .Values.namespace }}", "{{ .Values.namespace "))
    res = helm("lint", "--strict", str(broken), "-f", str(VALUES["onprem"]), check=False)
    assert res.returncode != 0 and "service.yaml" in res.stdout + res.stderr


@pytest.mark.parametrize("values", sorted(VALUES))
def test_the_chart_renders_exactly_the_objects_of_deploy_k8s(helm_rendered, values):
    """helm template with values-X.yaml == deploy/k8s/overlays/X + deploy/k8s/server/overlays/X."""
    chart = {_key(d): _normal(d) for d in helm_rendered[values]}
    kustomized = render(K8S / "overlays" / values) + render(K8S / "server" / "overlays" / values)
    expected = {_key(d): _normal(d) for d in kustomized}
    assert sorted(chart) == sorted(expected)
    for key, doc in expected.items():
        assert chart[key] == doc, key
    # the comparison can fail: one changed field is seen
    changed = copy.deepcopy(chart[("Deployment", "mlmon", "mlmon-server")])
    changed["spec"]["template"]["spec"]["serviceAccountName"] = "mlmon-edge"
    assert changed != expected[("Deployment", "mlmon", "mlmon-server")]


def test_the_config_checksum_follows_server_yaml():
    """A change to server.yaml changes the pod template (the pods roll), nothing else does."""
    a = one(template("onprem"), "Deployment", "mlmon-server")
    b = one(template("onprem", "server.config.stale_after=6h"), "Deployment", "mlmon-server")
    ca = a["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    cb = b["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert ca != cb and re.fullmatch(r"[0-9a-f]{64}", ca)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["server.auth.mode=none"], 'server.auth.mode "none": use proxy or token'),
        (["server.config.host=127.0.0.1"], "server.config.host is set by the chart"),
        (["server.auth.mode=token"], "server.oauth2Proxy.enabled needs server.auth.mode proxy"),
        (["server.oauth2Proxy.enabled=false"], "server.ingress.enabled routes to oauth2-proxy"),
        # the edge's Role and API egress exactly when a model's batch job is of kind kubernetes
        (
            ["edge.batch.enabled=false"],
            "run a Kubernetes batch job but edge.batch.enabled is false",
        ),
        (
            ["edge.config.models[0].batch=null"],
            "but no model in edge.config.models has a batch of kind kubernetes",
        ),
        # values.schema.json: a misspelt key, a malformed address or lake, named by their path
        (["sever.enabled=false"], "Additional property sever is not allowed"),
        (["server.bucket.cidr=10.0.0.1"], "server.bucket.cidr: Does not match pattern"),
        (["server.lake.uri=http://minio:9000/lake"], "server.lake.uri: Does not match pattern"),
        (["edge.batch.maxJobs=0"], "edge.batch.maxJobs: Must be greater than or equal to 1"),
    ],
)
def test_the_chart_refuses_unsafe_or_inconsistent_values(sets, message):
    args = ["template", "mlmon", str(CHART), "-f", str(VALUES["onprem"])]
    for s in sets:
        args += ["--set", s]
    res = helm(*args, check=False)
    assert res.returncode != 0 and message in res.stderr, res.stderr


def test_edge_and_server_can_be_installed_alone():
    server_only = template("cloud", "edge.enabled=false")
    assert not [d for d in server_only if "mlmon-edge" in d["metadata"]["name"]]
    assert set(pod_specs(server_only)) == {"Deployment/mlmon-server", "Deployment/mlmon-oauth2-proxy"}  # fmt: skip
    edge_only = template("cloud", "server.enabled=false")
    assert set(pod_specs(edge_only)) == {"Deployment/mlmon-edge", "CronJob/mlmon-edge-once"}
    assert not [d for d in edge_only if d["metadata"]["name"].startswith(("mlmon-server", "mlmon-oauth2"))]  # fmt: skip


def test_token_sign_in_mounts_the_tokens_file_privately():
    docs = template(
        "onprem", "server.auth.mode=token", "server.oauth2Proxy.enabled=false",
        "server.ingress.enabled=false",
    )  # fmt: skip
    cfg = yaml.safe_load(one(docs, "ConfigMap", "mlmon-server-config")["data"]["server.yaml"])
    assert cfg["auth"] == {"mode": "token", "tokens_file": "/run/mlmon/secrets/tokens.yaml"}
    spec = pod_specs(docs)["Deployment/mlmon-server"]
    [init] = spec["initContainers"]
    assert init["command"] == ["install", "-m", "0600", "/etc/mlmon/secret-src/tokens.yaml",
                               "/run/mlmon/secrets/tokens.yaml"]  # fmt: skip
    [src] = [v for v in spec["volumes"] if v["name"] == "secret-src"]
    assert src["secret"]["secretName"] == "mlmon-server-tokens"
    np = one(docs, "NetworkPolicy", "mlmon-server")
    assert np["spec"]["ingress"] == [] and "Ingress" in np["spec"]["policyTypes"]
    assert not [d for d in docs if d["kind"] == "Ingress"]
