"""The alert delivery and registry watch CronJobs (deploy/k8s/workflow and the Helm chart with
``workflow.enabled``): the same objects both ways, valid and restricted, the workflow identity
(the lake reader plus deploy/iam/workflow.json, never the edge writer), configs that mlmon's own
loaders accept, and egress only to what the jobs reach."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import hcl2
import kubernetes_validate
import pytest
import yaml

from mlmon.alerting import parse_config
from mlmon.commands._watch_config import load_watch_config
from tests.deploy.conftest import K8S, ROOT, one, pod_specs
from tests.deploy.helm import template
from tests.deploy.kustomize import render
from tests.deploy.test_helm import _key, _normal
from tests.deploy.test_manifests import K8S_VERSION, _restricted_violations
from tests.deploy.test_networkpolicy import _rules
from tests.deploy.test_terraform import _unquote

JOBS = {"CronJob/mlmon-alerts": ("alerts", "alerts.yaml", "/var/lib/mlmon-alerts"),
        "CronJob/mlmon-registry-watch": ("watch", "registry-watch.yaml", "/var/lib/mlmon-registry")}  # fmt: skip
WORKFLOW = ("mlmon-workflow", "mlmon-alerts", "mlmon-registry-watch")


def _workflow(docs):
    return [d for d in docs if d["metadata"]["name"].startswith(WORKFLOW)]


@pytest.fixture(scope="module")
def targets():
    """kustomize's deploy/k8s/workflow and the chart's workflow objects (defaults, on-prem, cloud)."""
    out = {"kustomize": render(K8S / "workflow")}
    for values in (None, "onprem", "cloud"):
        out[f"helm-{values or 'defaults'}"] = _workflow(template(values, "workflow.enabled=true"))
    return out


def test_the_chart_renders_exactly_deploy_k8s_workflow(targets, helm_rendered):
    chart = {_key(d): _normal(d) for d in targets["helm-defaults"]}
    expected = {_key(d): _normal(d) for d in targets["kustomize"]}
    assert sorted(chart) == sorted(expected) and len(expected) == 7
    for key, doc in expected.items():
        assert chart[key] == doc, key
    changed = copy.deepcopy(chart[("CronJob", "mlmon", "mlmon-alerts")])
    changed["spec"]["concurrencyPolicy"] = "Allow"  # the comparison can fail
    assert changed != expected[("CronJob", "mlmon", "mlmon-alerts")]
    # off by default: the site values render no workflow object
    assert _workflow(helm_rendered["onprem"]) == [] and _workflow(helm_rendered["cloud"]) == []


def test_workflow_objects_are_valid_restricted_and_bounded(targets):
    for target, docs in targets.items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{target}: {doc['kind']} {doc['metadata']['name']}: {exc.message}")
        specs = pod_specs(docs)
        assert set(specs) == set(JOBS), target
        for workload, spec in specs.items():
            assert _restricted_violations(spec) == [], (target, workload)
            [c] = spec["containers"]
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) <= set(c["resources"]["limits"])  # fmt: skip
            job = one(docs, "CronJob", workload.split("/")[1])["spec"]
            # one pass at a time: the outbox and the watch's state file have one writer
            assert job["concurrencyPolicy"] == "Forbid" and job["jobTemplate"]["spec"]["backoffLimit"] == 0  # fmt: skip


def test_the_workflow_runs_its_own_identity_never_the_edge_writers(targets):
    for target, docs in targets.items():
        sa = one(docs, "ServiceAccount", "mlmon-workflow")
        assert sa["automountServiceAccountToken"] is False
        role = (sa["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")
        assert role == ("arn:aws:iam::111122223333:role/mlmon-workflow" if target == "helm-cloud" else None)  # fmt: skip
        for workload, spec in pod_specs(docs).items():
            assert spec["serviceAccountName"] == "mlmon-workflow", (target, workload)
            assert spec["automountServiceAccountToken"] is False  # no Kubernetes API call
            [c] = spec["containers"]
            keys = {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                    if "secretKeyRef" in (e.get("valueFrom") or {})}  # fmt: skip
            assert keys == ({"mlmon-minio-workflow"} if target == "helm-onprem" else set())
            refs = {r["secretRef"]["name"] for r in c["envFrom"]}
            assert refs <= {"mlmon-alerts-receivers", "mlmon-registry-reader"}
        text = yaml.safe_dump(docs)
        for edge in ("mlmon-edge\n", "mlmon-minio-edge", "mlmon-hmac", "mlmon-edge-writer"):
            assert edge not in text, (target, edge)
        assert not [d for d in docs if d["kind"] == "Secret"]


def test_the_workflow_role_is_the_reader_plus_its_own_writes_and_trusts_its_sa_only(targets):
    policy = json.loads((ROOT / "deploy" / "iam" / "workflow.json").read_text())
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:PutObject", "kms:GenerateDataKey"}  # no read, list or delete of its own
    puts = sorted(r for s in policy["Statement"] if s["Action"] == ["s3:PutObject"] for r in s["Resource"])  # fmt: skip
    lake = "arn:aws:s3:::${bucket}/${prefix}/"
    assert puts == sorted(lake + p for p in ("v1/registry_events/*", "v1/version_checks/*",
                          "v1/alerts/*", "audit/registry-watch/*", "audit/mlmon-alerts/*"))  # fmt: skip
    with (ROOT / "deploy" / "terraform" / "main.tf").open() as fh:
        parsed = hcl2.load(fh)
    with (ROOT / "deploy" / "terraform" / "variables.tf").open() as fh:
        variables = {_unquote(k): v for b in hcl2.load(fh)["variable"] for k, v in b.items()}
    [trust] = [b['"workflow_trust"'] for d in parsed["data"] for b in d.values() if '"workflow_trust"' in b]  # fmt: skip
    subs = [[_unquote(v) for v in c["values"]] for s in trust["statement"] for c in s["condition"]
            if _unquote(c["variable"]).endswith(":sub")]  # fmt: skip
    assert subs == [["system:serviceaccount:${var.edge_namespace}:${var.workflow_service_account}"]]
    assert _unquote(variables["workflow_service_account"]["default"]) == "mlmon-workflow"
    roles = {_unquote(k): v for r in parsed["resource"] for t, b in r.items()
             if _unquote(t) == "aws_iam_role" for k, v in b.items()}  # fmt: skip
    assert _unquote(roles["workflow"]["name"]) == "mlmon-workflow"


def test_the_configs_load_with_mlmons_loaders_and_their_state_is_a_volume(targets, tmp_path, monkeypatch):  # fmt: skip
    monkeypatch.setenv("MLMON_OPS_WEBHOOK", "https://hooks.example.org/x")
    monkeypatch.setenv("MLMON_OPS_WEBHOOK_HMAC", "k" * 32)
    for target, docs in targets.items():
        data = one(docs, "ConfigMap", "mlmon-workflow-config")["data"]
        specs = pod_specs(docs)
        for workload, (container, key, state_dir) in JOBS.items():
            spec = specs[workload]
            [c] = spec["containers"]
            assert c["name"] == container and c["args"][-2:] == ["--config", f"/etc/mlmon/{key}"]
            if key == "alerts.yaml":
                cfg = parse_config(yaml.safe_load(data[key]), Path("/etc/mlmon"))
                assert {r.name for r in cfg.receivers} == {"ops", "alertmanager"}
                assert cfg.audit_uri and cfg.outbox_max_messages == 1000
            else:
                path = tmp_path / target / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(data[key])
                cfg = load_watch_config(path)
                assert cfg.models[0].test is not None
                golden = str(cfg.models[0].test.golden)
                mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
                assert golden.startswith("/etc/mlmon/model-files/") and mounts["/etc/mlmon/model-files"]["readOnly"]  # fmt: skip
            assert str(cfg.state_dir) == state_dir, (target, key)
            lake = cfg.lake if key == "alerts.yaml" else cfg.lake.uri
            opts = cfg.storage_options if key == "alerts.yaml" else cfg.lake.storage_options
            if target == "helm-onprem":  # the site's MinIO, as the edge and the server use
                assert lake == "s3://mlmon-lake/prod", key
                assert opts == {"endpoint_url": "https://minio.storage.hospital.internal:9000"}
            else:
                assert lake == "s3://hospital-mlmon/lake" and not opts, (target, key)
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            state = mounts[state_dir]
            assert not state.get("readOnly") and "persistentVolumeClaim" in volumes[state["name"]]
            assert mounts["/etc/mlmon"]["readOnly"]


def test_the_workflow_reaches_only_dns_bucket_registry_receivers_and_model_endpoints(targets):
    dns = ("pods", "kube-system", (("k8s-app", "kube-dns"),))
    am = ("pods", "monitoring", (("app.kubernetes.io/name", "alertmanager"),))
    bucket = {"helm-onprem": ("10.20.0.15/32", 9000), "helm-cloud": ("10.0.96.0/27", 443)}
    for target, docs in targets.items():
        np = one(docs, "NetworkPolicy", "mlmon-workflow")
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"] and np["spec"]["ingress"] == []
        cidr, port = bucket.get(target, ("192.0.2.10/32", 443))
        assert _rules(np["spec"]["egress"], "to") == {
            (dns, "UDP", 53), (dns, "TCP", 53), (("ip", cidr), "TCP", port),
            (("ip", "192.0.2.30/32"), "TCP", 443), (("ip", "192.0.2.40/32"), "TCP", 443),
            (("pods", "models", ()), "TCP", 8443), (am, "TCP", 9093)}, target  # fmt: skip
        for workload in JOBS:
            labels = one(docs, "CronJob", workload.split("/")[1])["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]  # fmt: skip
            assert labels["app.kubernetes.io/name"] == "mlmon-workflow"
