"""The edge's Role, checked against what ``KubernetesJobAdapter`` really sends.

No cluster is available here: a loopback HTTP server plays the API server. It authenticates the
edge's token, authorizes every request with the rendered Role and RoleBinding (the RBAC model in
``k8s_checks``), runs the rendered ValidatingAdmissionPolicy on created Jobs (with CEL), then the
rendered ResourceQuotas' ``count/jobs.batch`` (as the ResourceQuota admission plugin does, after
the policy), and answers like Kubernetes. The real adapter runs against it.
"""

from __future__ import annotations

import copy
import re

import httpx
import pytest

from mlmon.edge.batch import KubernetesJobAdapter
from mlmon.edge.http import HttpSettings
from tests.deploy.conftest import edge_config, one
from tests.deploy.k8s_checks import admit, rbac_allows
from tests.deploy.test_admission_policy import CRONJOB, EDGE_USER, NOW, POLICY
from tests.jsonapi import JsonApiServer

TOKEN = "edge-sa-token"
PATH = re.compile(r"^/apis/(?P<group>[a-z.]+)/v1/namespaces/(?P<ns>[a-z0-9-]+)/(?P<res>[a-z]+)(?:/(?P<name>[a-z0-9-]+))?$")  # fmt: skip
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class FakeApiServer(JsonApiServer):
    """RBAC + admission + a tiny store of CronJobs and Jobs, on 127.0.0.1."""

    def __init__(self, docs):
        self.docs = docs
        self.policy = one(docs, "ValidatingAdmissionPolicy", POLICY)
        self.binding = one(docs, "ValidatingAdmissionPolicyBinding", POLICY)
        self.store = {("models", "cronjobs", "risk-batch"): copy.deepcopy(CRONJOB)}
        self.authorized: list[tuple[str, str, str, str | None]] = []
        super().__init__(self.handle)

    def rules_for(self, namespace: str, user: str) -> list[dict]:
        rules = []
        for rb in self.docs:
            if rb["kind"] != "RoleBinding" or rb["metadata"]["namespace"] != namespace:
                continue
            sa = {f"system:serviceaccount:{s['namespace']}:{s['name']}"
                  for s in rb["subjects"] if s["kind"] == "ServiceAccount"}  # fmt: skip
            if user in sa:
                role = one(self.docs, rb["roleRef"]["kind"], rb["roleRef"]["name"])
                assert role["metadata"]["namespace"] == namespace
                rules.extend(role["rules"])
        return rules

    def handle(self, method: str, path: str, headers, body):
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"kind": "Status", "code": 401, "reason": "Unauthorized"}
        m = PATH.match(path.split("?")[0])
        if not m:
            return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
        verb = VERBS[method] if (method != "GET" or m["name"]) else "list"
        ns, res, name = m["ns"], m["res"], m["name"]
        if not rbac_allows(self.rules_for(ns, EDGE_USER), verb, m["group"], res, name):
            return 403, {"kind": "Status", "code": 403, "reason": "Forbidden",
                         "message": f"{EDGE_USER} cannot {verb} {res} {name or ''} in {ns}"}  # fmt: skip
        self.authorized.append((verb, res, ns, name))
        if verb == "create" and res == "jobs":
            params = self.store.get((self.binding["spec"]["paramRef"]["namespace"], "cronjobs",
                                     self.binding["spec"]["paramRef"]["name"]))  # fmt: skip
            request = {"operation": "CREATE", "namespace": ns, "userInfo": {"username": EDGE_USER}}
            denied = admit(self.policy, params, body, request) if params else ["no param"]
            if denied:
                return 403, {"kind": "Status", "code": 403, "reason": "Forbidden",
                             "message": f"ValidatingAdmissionPolicy '{POLICY}' denied: {denied}"}  # fmt: skip
            key = (ns, "jobs", body["metadata"]["name"])
            if key in self.store:
                return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
            used = sum(1 for (n, r, _) in self.store if (n, r) == (ns, "jobs"))
            for q in self.docs:
                if q["kind"] != "ResourceQuota" or q["metadata"]["namespace"] != ns:
                    continue
                limit = q["spec"]["hard"].get("count/jobs.batch")
                if limit is not None and used + 1 > int(limit):
                    return 403, {"kind": "Status", "code": 403, "reason": "Forbidden",
                                 "message": f"jobs.batch is forbidden: exceeded quota: "
                                 f"{q['metadata']['name']}, requested: count/jobs.batch=1, "
                                 f"used: count/jobs.batch={used}, limited: "
                                 f"count/jobs.batch={limit}"}  # fmt: skip
            self.store[key] = {**body, "status": {"succeeded": 1, "conditions": [
                {"type": "Complete", "status": "True"}]}}  # fmt: skip
            return 201, body
        if verb == "get" and (ns, res, name) in self.store:
            return 200, self.store[(ns, res, name)]
        return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}


def _adapter(url: str, batch, tmp_path) -> KubernetesJobAdapter:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    return KubernetesJobAdapter(url, batch.namespace, batch.cronjob, poll_interval_s=0.01,
                                timeout_s=5, token_file=token,
                                settings=HttpSettings(timeout_s=2, retries=0, allow_http=True))  # fmt: skip


def _batch(docs, tmp_path):
    cfg = edge_config(docs, "Deployment/mlmon-edge", tmp_path)
    [batch] = [m.batch for m in cfg.models if m.batch is not None]
    assert batch.kind == "kubernetes"
    return batch


def test_role_rules_are_exactly_what_the_adapter_needs(rendered):
    for target, docs in rendered.items():
        role = one(docs, "Role", "mlmon-edge-batch")
        got = {(g, r, v, tuple(rule.get("resourceNames") or ()))
               for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}  # fmt: skip
        assert got == {
            ("batch", "cronjobs", "get", ("risk-batch",)),
            ("batch", "jobs", "create", ()),
            ("batch", "jobs", "get", ()),
        }, target
        assert role["metadata"]["namespace"] == "models"
        assert not any("*" in str(rule) for rule in role["rules"]), target
        kinds = {d["kind"] for d in docs}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, target
        rb = one(docs, "RoleBinding", "mlmon-edge-batch")
        assert rb["metadata"]["namespace"] == "models"
        assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": "mlmon-edge-batch"}  # fmt: skip
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "mlmon-edge", "namespace": "mlmon"}]  # fmt: skip


def test_the_adapter_runs_under_the_role_and_the_policy(rendered, tmp_path):
    docs = rendered["base"]
    batch = _batch(docs, tmp_path)
    assert (batch.namespace, batch.cronjob) == ("models", "risk-batch")
    with FakeApiServer(docs) as api:
        run = _adapter(api.url, batch, tmp_path).trigger_and_wait(now=NOW)
    assert (run.status, run.error) == ("succeeded", None), run
    assert api.authorized == [
        ("get", "cronjobs", "models", "risk-batch"),
        ("create", "jobs", "models", None),
        ("get", "jobs", "models", "risk-batch-mlmon-20261123020000"),
    ]


@pytest.mark.parametrize("drop", [("cronjobs", "get"), ("jobs", "create"), ("jobs", "get")])
def test_every_grant_of_the_role_is_needed(rendered, tmp_path, drop):
    docs = copy.deepcopy(rendered["base"])
    role = one(docs, "Role", "mlmon-edge-batch")
    for rule in role["rules"]:
        if drop[0] in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != drop[1]]
    with FakeApiServer(docs) as api:
        run = _adapter(api.url, _batch(docs, tmp_path), tmp_path).trigger_and_wait(now=NOW)
    assert run.status == "refused" and "403" in run.error, run


FORBIDDEN = [
    ("GET", "/apis/batch/v1/namespaces/models/jobs"),  # list
    ("GET", "/apis/batch/v1/namespaces/models/cronjobs"),  # list cronjobs
    ("GET", "/apis/batch/v1/namespaces/models/cronjobs/etl-nightly"),  # another CronJob
    ("PATCH", "/apis/batch/v1/namespaces/models/cronjobs/risk-batch"),  # change the template
    ("DELETE", "/apis/batch/v1/namespaces/models/jobs/risk-batch-mlmon-20261123020000"),
    ("POST", "/apis/batch/v1/namespaces/mlmon/jobs"),  # jobs elsewhere
    ("POST", "/apis/batch/v1/namespaces/default/jobs"),
]


@pytest.mark.parametrize(("method", "path"), FORBIDDEN)
def test_anything_else_is_forbidden_to_the_edge(rendered, method, path):
    with FakeApiServer(rendered["base"]) as api:
        r = httpx.request(method, api.url + path, headers={"Authorization": f"Bearer {TOKEN}"},
                          json={} if method in {"POST", "PATCH"} else None)  # fmt: skip
    assert r.status_code == 403, (method, path, r.text)
    assert r.json()["reason"] == "Forbidden"


def test_a_forged_job_is_refused_by_admission_after_rbac_allowed_it(rendered):
    from tests.deploy.test_admission_policy import genuine_job

    forged = genuine_job()
    forged["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "id"]
    with FakeApiServer(rendered["base"]) as api:
        r = httpx.post(api.url + "/apis/batch/v1/namespaces/models/jobs", json=forged,
                       headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert r.status_code == 403
        assert "pod template unchanged" in r.json()["message"]
        assert api.authorized == [("create", "jobs", "models", None)]  # RBAC said yes
        r = httpx.post(api.url + "/apis/batch/v1/namespaces/models/jobs", json=genuine_job(),
                       headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert r.status_code == 201, r.text


def test_the_quota_bounds_how_many_jobs_the_edge_can_create(rendered, tmp_path):
    """Before: nothing limited the number of Jobs; each admitted Job runs the CronJob's pods."""
    from datetime import timedelta

    docs = rendered["base"]
    quota = one(docs, "ResourceQuota", "mlmon-edge-jobs")
    limit = int(quota["spec"]["hard"]["count/jobs.batch"])
    batch = _batch(docs, tmp_path)
    from tests.deploy.test_admission_policy import genuine_job

    with FakeApiServer(docs) as api:
        adapter = _adapter(api.url, batch, tmp_path)
        runs = [adapter.trigger_and_wait(now=NOW + timedelta(minutes=i)) for i in range(limit + 1)]
        job = genuine_job()
        job["metadata"]["name"] = "risk-batch-mlmon-20991231000000"
        r = httpx.post(api.url + "/apis/batch/v1/namespaces/models/jobs", json=job,
                       headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert [r.status for r in runs[:limit]] == ["succeeded"] * limit, runs
    last = runs[limit]
    assert last.status == "refused" and "HTTP 403" in last.error, last
    assert "exceeded quota: mlmon-edge-jobs" in last.error, last  # the API's reason, kept
    assert r.status_code == 403 and "exceeded quota: mlmon-edge-jobs" in r.json()["message"]
    assert sum(1 for (ns, res, _) in api.store if (ns, res) == ("models", "jobs")) == limit
