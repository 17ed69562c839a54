"""Every rendered manifest is a valid Kubernetes object and says what docs/deploy.md says.

Schemas: kubernetes-validate's bundled OpenAPI schemas for Kubernetes 1.33 (ValidatingAdmissionPolicy
is admissionregistration.k8s.io/v1 since 1.30), strict mode (unknown fields are errors).
"""

from __future__ import annotations

import copy
from pathlib import PurePosixPath

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import (
    K8S,
    TARGETS,
    container,
    container_env,
    edge_config,
    one,
    pod_specs,
)

K8S_VERSION = "1.33.0"
REPORTS_CRONJOB = K8S / "reports-cronjob.yaml"
EDGE_WORKLOADS = ["Deployment/mlmon-edge", "CronJob/mlmon-edge-once"]
SAFE_VOLUMES = {"configMap", "secret", "projected", "emptyDir", "persistentVolumeClaim",
                "downwardAPI", "csi", "ephemeral"}  # fmt: skip


def _all_targets(rendered):
    reports = [d for d in yaml.safe_load_all(REPORTS_CRONJOB.read_text()) if d]
    return {**rendered, "reports-cronjob": reports}


def test_every_manifest_is_valid_for_kubernetes_1_33(rendered):
    checked = 0
    for target, docs in _all_targets(rendered).items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{target}: {doc['kind']} {doc['metadata']['name']}: {exc.message}")
            checked += 1
    # 13 objects per target (the Job ResourceQuota is the 13th), + the overlays' ConfigMap
    # mlmon-edge-lake (the KMS key), + the reports CronJob
    assert checked == 3 * 13 + 2 + 1


def test_the_validator_catches_a_misspelt_field(rendered):
    bad = copy.deepcopy(one(rendered["base"], "Deployment", "mlmon-edge"))
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_the_namespace_enforces_the_restricted_pod_security_profile(rendered):
    for target, docs in rendered.items():
        labels = one(docs, "Namespace", "mlmon")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", target
        namespaced = [d for d in docs if d["kind"] not in
                      {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}]  # fmt: skip
        assert {d["metadata"]["namespace"] for d in namespaced} == {"mlmon", "models"}
        assert {d["kind"] for d in namespaced if d["metadata"]["namespace"] == "models"} == {
            "Role", "RoleBinding", "ResourceQuota"}  # fmt: skip


def _restricted_violations(spec: dict) -> list[str]:
    """The Pod Security Standard 'restricted' (v1.33) checks that apply to a pod spec."""
    out = []
    psc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"{key} is set")
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= SAFE_VOLUMES:
            out.append(f"volume {v['name']} of type {kinds}")
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            out.append(f"{name}: seccompProfile {seccomp}")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities not dropped (ALL)")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds capabilities {caps['add']}")
        if sc.get("readOnlyRootFilesystem") is not True:  # beyond 'restricted': our own rule
            out.append(f"{name}: root filesystem is writable")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out


def test_every_container_is_restricted_profile_compliant(rendered):
    for target, docs in _all_targets(rendered).items():
        specs = pod_specs(docs)
        assert specs, target
        for workload, spec in specs.items():
            assert _restricted_violations(spec) == [], (target, workload)


def test_the_restricted_check_itself_finds_violations(rendered):
    spec = copy.deepcopy(pod_specs(rendered["base"])["Deployment/mlmon-edge"])
    spec["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True,
                                                   capabilities={"add": ["SYS_ADMIN"]})  # fmt: skip
    spec["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
    found = _restricted_violations(spec)
    assert len(found) == 4, found


def test_no_secret_value_is_in_git_only_references(rendered):
    expected = {"base": {"mlmon-hmac"}, "onprem": {"mlmon-hmac", "mlmon-minio-edge"},
                "cloud": {"mlmon-hmac"}}  # fmt: skip
    for target, docs in rendered.items():
        assert not [d for d in docs if d["kind"] == "Secret"], target
        refs = set()
        for spec in pod_specs(docs).values():
            for v in spec.get("volumes") or []:
                for src in (v.get("projected") or {}).get("sources") or []:
                    if "secret" in src:
                        refs.add(src["secret"]["name"])
                if "secret" in v:
                    refs.add(v["secret"]["secretName"])
            for c in spec["containers"]:
                for e in c.get("env") or []:
                    if "secretKeyRef" in (e.get("valueFrom") or {}):
                        refs.add(e["valueFrom"]["secretKeyRef"]["name"])
        assert refs == expected[target], target
        text = yaml.safe_dump(docs).lower()
        for word in ("aws_secret_access_key:", "hmac_key: {env", "password"):
            assert word not in text, (target, word)


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("workload", EDGE_WORKLOADS)
def test_the_edge_config_validates_and_every_file_it_names_is_mounted(rendered, tmp_path, target, workload):  # fmt: skip
    docs = rendered[target]
    cfg = edge_config(docs, workload, tmp_path)
    spec = pod_specs(docs)[workload]
    c = container(docs, workload)
    assert c["args"] == ["edge", "run" if workload.startswith("Deployment") else "once",
                         "--config", "/etc/mlmon/edge.yaml"]  # fmt: skip
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    provided = set()
    for path, m in mounts.items():
        for src in (volumes[m["name"]].get("projected") or {}).get("sources") or []:
            for item in (src.get("configMap") or src.get("secret") or {}).get("items") or []:
                provided.add(str(PurePosixPath(path) / item["path"]))
    needed = {str(cfg.hmac_key.file)}
    for m in cfg.models:
        needed.add(str(m.reference))
        if m.golden:
            needed.add(str(m.golden.file))
    assert needed <= provided, needed - provided
    assert "/etc/mlmon/edge.yaml" in provided
    state = mounts[str(cfg.state_dir)]
    assert not state.get("readOnly") and "persistentVolumeClaim" in volumes[state["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert mounts["/etc/mlmon"]["readOnly"] is True
    storage = dict(cfg.lake.storage_options)
    if target == "onprem":
        assert storage == {"endpoint_url": "https://minio.storage.hospital.internal:9000"}
    elif target == "cloud":
        assert storage["endpoint_url"].endswith(".s3.eu-west-1.vpce.amazonaws.com")
    else:
        assert storage == {}
    assert cfg.lake.uri.startswith("s3://")


def test_probes_hit_healthz_on_the_metrics_port_the_config_opens(rendered, tmp_path):
    docs = rendered["base"]
    cfg = edge_config(docs, "Deployment/mlmon-edge", tmp_path)
    c = container(docs, "Deployment/mlmon-edge")
    [port] = c["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", cfg.metrics.port)
    # loopback: no TLS or token in the base, so nothing outside the pod reaches it (issue 17)
    assert cfg.metrics.host == "127.0.0.1"
    for probe in ("livenessProbe", "readinessProbe"):
        code = c[probe]["exec"]["command"][2]
        assert f"http://127.0.0.1:{cfg.metrics.port}/healthz" in code
        compile(code, probe, "exec")


def test_service_account_token_is_mounted_only_where_the_batch_adapter_needs_it(rendered, tmp_path):
    for target, docs in _all_targets(rendered).items():
        for workload, spec in pod_specs(docs).items():
            if workload in EDGE_WORKLOADS:
                cfg = edge_config(docs, workload, tmp_path)
                needs = any(
                    m.batch is not None and m.batch.kind == "kubernetes" for m in cfg.models
                )
                assert spec.get("automountServiceAccountToken") is needs, (target, workload)
                assert spec["serviceAccountName"] == "mlmon-edge"
            else:
                assert spec.get("automountServiceAccountToken") is False, (target, workload)
        if target != "reports-cronjob":
            assert one(docs, "ServiceAccount", "mlmon-edge")["automountServiceAccountToken"] is False  # fmt: skip


def test_one_collector_at_a_time_on_the_state_volume(rendered):
    for target, docs in rendered.items():
        dep = one(docs, "Deployment", "mlmon-edge")
        assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
        cj = one(docs, "CronJob", "mlmon-edge-once")
        assert cj["spec"]["suspend"] is True and cj["spec"]["concurrencyPolicy"] == "Forbid"
        claims = {w: [v["persistentVolumeClaim"]["claimName"] for v in s["volumes"]
                      if "persistentVolumeClaim" in v] for w, s in pod_specs(docs).items()}  # fmt: skip
        assert claims == {w: ["mlmon-edge-state"] for w in EDGE_WORKLOADS}, target


def test_cloud_service_account_uses_irsa_and_onprem_does_not(rendered):
    cloud = one(rendered["cloud"], "ServiceAccount", "mlmon-edge")["metadata"]
    assert cloud["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::111122223333:role/mlmon-edge-writer")  # fmt: skip
    for target in ("base", "onprem"):
        meta = one(rendered[target], "ServiceAccount", "mlmon-edge")["metadata"]
        assert "annotations" not in meta, target
    for workload in EDGE_WORKLOADS:
        env = {e["name"] for e in container(rendered["cloud"], workload)["env"]}
        assert not env & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, workload


@pytest.mark.parametrize("workload", EDGE_WORKLOADS)
def test_the_kms_key_fails_closed_when_missing_or_empty(rendered, tmp_path, workload):
    """MLMON_SSE_KMS_KEY_ID comes from a ConfigMap key that is not optional (no key: the kubelet
    does not start the pod); the base alone has no such ConfigMap; each overlay has one with a
    key; and the edge refuses the shipped s3:// config when the variable is absent or empty."""
    from mlmon.edge.config import load_config
    from mlmon.errors import ConfigError

    for target, docs in rendered.items():
        [var] = [e for e in container(docs, workload)["env"] if e["name"] == "MLMON_SSE_KMS_KEY_ID"]
        assert set(var) == {"name", "valueFrom"}, (target, var)  # never an inline default
        ref = var["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == "mlmon-edge-lake" and ref["key"] == "sse-kms-key-id"
        assert ref.get("optional", False) is False, target
        maps = [
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["name"]
        ]
        if target == "base":
            assert maps == [], "the base must not start without a site's key"
        else:
            assert maps[0]["data"]["sse-kms-key-id"].strip(), target
            assert (
                edge_config(docs, workload, tmp_path).lake.sse_kms_key_id
                == (maps[0]["data"]["sse-kms-key-id"])
            )
        cm = one(docs, "ConfigMap", "mlmon-edge-config")
        path = tmp_path / f"{target}.yaml"
        path.write_text(cm["data"]["edge.yaml"])
        env = {k: v for k, v in container_env(docs, workload).items() if k != var["name"]}
        for missing in (env, {**env, var["name"]: ""}):
            with pytest.raises(ConfigError, match=r"lake\.sse_kms_key_id") as exc:
                load_config(path, env=missing)
            assert str(path) in str(exc.value) and "lake.encryption: bucket-default" in str(
                exc.value
            )
