"""The server's Kubernetes objects (deploy/k8s/server and the Helm chart's output): valid, restricted,
the lake READER identity and never the edge writer's, ingress only through oauth2-proxy, egress
only to the bucket and DNS, and a server.yaml that mlmon's own loader accepts."""

from __future__ import annotations

import copy
import json
import os
import re
from urllib.parse import urlsplit

import hcl2
import kubernetes_validate
import pytest
import yaml

from mlmon.errors import ConfigError
from mlmon.server.config import load_config
from tests.deploy.conftest import ROOT, one, pod_specs, server_container
from tests.deploy.test_manifests import K8S_VERSION, _restricted_violations
from tests.deploy.test_networkpolicy import _rules
from tests.deploy.test_terraform import _unquote

SERVER = "Deployment/mlmon-server"
PROXY = "Deployment/mlmon-oauth2-proxy"
# target -> (bucket ipBlock, port, the edge's S3 credentials Secret if any)
BUCKET = {"base": ("192.0.2.10/32", 443), "onprem": ("10.20.0.15/32", 9000),
          "cloud": ("10.0.96.0/27", 443)}  # fmt: skip
IDP = {"base": "192.0.2.20/32", "onprem": "10.30.0.5/32", "cloud": "10.0.112.0/28"}
DNS = ("pods", "kube-system", (("k8s-app", "kube-dns"),))


@pytest.fixture(scope="module")
def targets(rendered_server, helm_rendered):
    """Every rendering that holds the server: kustomize's three and the chart's two."""
    out = {name.removeprefix("server-"): docs for name, docs in rendered_server.items()}
    out |= {f"helm-{name}": docs for name, docs in helm_rendered.items()}
    return out


def _site(target: str) -> str:
    return target.removeprefix("helm-")


def test_every_server_and_chart_object_is_valid_for_kubernetes_1_33(targets):
    checked = 0
    for target, docs in targets.items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{target}: {doc['kind']} {doc['metadata']['name']}: {exc.message}")
            checked += 1
    # 11 server objects in the base, + the KMS ConfigMap in each overlay; the chart: those and the
    # 14 edge objects of an overlay
    assert checked == 11 + 2 * 12 + 2 * (12 + 14)


def test_the_validator_sees_a_wrong_server_field(targets):
    bad = copy.deepcopy(one(targets["onprem"], "Deployment", "mlmon-server"))
    bad["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"]["path"] = 8400
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_every_pod_is_restricted_with_a_read_only_root_and_bounded_resources(targets):
    for target, docs in targets.items():
        specs = pod_specs(docs)
        assert {SERVER, PROXY} <= set(specs), target
        for workload, spec in specs.items():
            assert _restricted_violations(spec) == [], (target, workload)
            for c in spec.get("initContainers", []) + spec["containers"]:
                res = c["resources"]
                assert {"cpu", "memory"} <= set(res["requests"]) <= set(res["limits"]), (target, c["name"])  # fmt: skip
                assert c["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
                assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_server_runs_the_reader_identity_never_the_edge_writers(targets):
    for target, docs in targets.items():
        spec = pod_specs(docs)[SERVER]
        assert spec["serviceAccountName"] == "mlmon-server", target
        assert spec["automountServiceAccountToken"] is False  # it never calls the Kubernetes API
        sa = one(docs, "ServiceAccount", "mlmon-server")
        assert sa["automountServiceAccountToken"] is False
        role = (sa["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")
        secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in server_container(docs)["env"]
                   if "secretKeyRef" in (e.get("valueFrom") or {})}  # fmt: skip
        volumes = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        if _site(target) == "cloud":
            assert role == "arn:aws:iam::111122223333:role/mlmon-lake-reader", target
            assert secrets == set()  # no static keys: IRSA
        else:
            assert role is None, target
            assert secrets == ({"mlmon-minio-reader"} if _site(target) == "onprem" else set())
        # nothing of the edge: not its keys, its HMAC key, its service account or its role
        assert volumes == {"mlmon-server-proxy-secret"}, target
        assert not {"mlmon-minio-edge", "mlmon-hmac"} & (secrets | volumes)
        if any(
            d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "mlmon-edge" for d in docs
        ):
            edge_role = (one(docs, "ServiceAccount", "mlmon-edge")["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")  # fmt: skip
            assert edge_role != role or role is None
            assert edge_role is None or edge_role.endswith(":role/mlmon-edge-writer")


def test_the_reader_role_trusts_the_servers_service_account_only(targets):
    """deploy/terraform: the role the cloud ServiceAccount names is mlmon-lake-reader, with the
    reader policy, and its web-identity trust names system:serviceaccount:mlmon:mlmon-server."""
    tf = ROOT / "deploy" / "terraform"
    main = (tf / "main.tf").read_text()
    with (tf / "main.tf").open() as fh:
        parsed = hcl2.load(fh)
    with (tf / "variables.tf").open() as fh:
        variables = {_unquote(k): v for block in hcl2.load(fh)["variable"] for k, v in block.items()}  # fmt: skip
    sa = _unquote(variables["server_service_account"]["default"])
    ns = _unquote(variables["edge_namespace"]["default"])
    assert (ns, sa) == ("mlmon", "mlmon-server")
    [reader_trust] = [
        body['"reader_trust"'] for d in parsed["data"]
        for body in d.values() if '"reader_trust"' in body
    ]  # fmt: skip
    web = [s for s in reader_trust["statement"]
           if [_unquote(a) for a in s["actions"]] == ["sts:AssumeRoleWithWebIdentity"]]  # fmt: skip
    assert len(web) == 1
    subs = [[_unquote(v) for v in c["values"]] for c in web[0]["condition"]
            if _unquote(c["variable"]).endswith(":sub")]  # fmt: skip
    assert subs == [["system:serviceaccount:${var.edge_namespace}:${var.server_service_account}"]]
    assert re.search(r'resource "aws_iam_role" "reader" \{\s*name\s*=\s*"mlmon-lake-reader"', main)
    for docs in targets.values():
        meta = one(docs, "ServiceAccount", "mlmon-server")["metadata"]
        assert meta["namespace"] == ns and meta["name"] == sa


def test_the_reader_policy_lets_the_server_write_only_its_own_audit(targets):
    policy = (ROOT / "deploy" / "iam" / "reader.json").read_text()
    puts = [s for s in yaml.safe_load(policy)["Statement"] if "s3:PutObject" in s["Action"]]
    resources = [r for s in puts for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]  # fmt: skip
    audit = [r for r in resources if "/audit/" in r]
    assert audit == ["arn:aws:s3:::${bucket}/${prefix}/audit/mlmon-server/*"]
    for target, docs in targets.items():
        cfg = yaml.safe_load(one(docs, "ConfigMap", "mlmon-server-config")["data"]["server.yaml"])
        assert cfg["audit"].get("actor", "mlmon-server") == "mlmon-server", target
        assert "uri" not in cfg["audit"]  # the lake itself: audit/mlmon-server/ under its prefix


def _server_config(docs, tmp_path, mode=0o600):
    """load_config on the rendered server.yaml, with the container's environment and the secret
    file the init container writes stood in for under tmp_path."""
    text = one(docs, "ConfigMap", "mlmon-server-config")["data"]["server.yaml"]
    secrets = tmp_path / "run" / "mlmon" / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    secret = secrets / "proxy-secret"
    secret.write_text("s" * 64)
    os.chmod(secret, mode)
    path = tmp_path / "server.yaml"
    path.write_text(text.replace("/run/mlmon/secrets/", f"{secrets}/"))
    env = {e["name"]: e.get("value", "<from-secret>") for e in server_container(docs)["env"]}
    return load_config(path, env=env)


def test_server_yaml_loads_with_proxy_sign_in_by_shared_secret(targets, tmp_path):
    for target, docs in targets.items():
        cfg = _server_config(docs, tmp_path / target)
        c = server_container(docs)
        assert cfg.auth.mode == "proxy" and cfg.auth.proxy.secret == "s" * 64, target
        assert cfg.auth.proxy.trusted == ()  # believed only with the secret, not by address
        assert (cfg.host, cfg.port) == ("0.0.0.0", 8400)
        assert c["args"][c["args"].index("--port") + 1] == str(cfg.port)
        assert str(cfg.audit.state_dir) == "/var/lib/mlmon-server"
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_specs(docs)[SERVER]["volumes"]}
        state = mounts[str(cfg.audit.state_dir)]
        assert not state.get("readOnly") and "persistentVolumeClaim" in volumes[state["name"]]
        assert volumes[mounts["/tmp"]["name"]]["emptyDir"]
        assert mounts["/etc/mlmon"]["readOnly"] and mounts["/run/mlmon/secrets"]["readOnly"]
        site = _site(target)
        lake = {"onprem": "s3://mlmon-lake/prod"}.get(site, "s3://hospital-mlmon/lake")
        assert cfg.lake == lake, target
        if site != "base":
            s3 = urlsplit({e["name"]: e.get("value") for e in c["env"]}["MLMON_S3_ENDPOINT"])
            assert (s3.port or 443) == BUCKET[site][1]


def test_the_secret_is_copied_private_because_fsgroup_makes_it_group_readable(targets, tmp_path):
    """fsGroup gives Secret volume files group read (0440 whatever defaultMode says); the server
    refuses such a file, so the init container installs a 0600 copy where server.yaml points."""
    with pytest.raises(ConfigError, match="readable by group or others"):
        _server_config(targets["onprem"], tmp_path, mode=0o440)
    for target, docs in targets.items():
        spec = pod_specs(docs)[SERVER]
        assert spec["securityContext"]["fsGroup"] == 10001
        [init] = spec["initContainers"]
        assert init["command"] == ["install", "-m", "0600", "/etc/mlmon/secret-src/proxy-secret",
                                   "/run/mlmon/secrets/proxy-secret"], target  # fmt: skip
        assert init["image"] == server_container(docs)["image"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["secrets"]["emptyDir"]["medium"] == "Memory"
        assert volumes["secret-src"]["secret"]["secretName"] == "mlmon-server-proxy-secret"
        # oauth2-proxy sends the same secret
        env = {e["name"]: e for e in pod_specs(docs)[PROXY]["containers"][0]["env"]}
        assert env["MLMON_PROXY_SECRET"]["valueFrom"]["secretKeyRef"] == {
            "name": "mlmon-server-proxy-secret", "key": "proxy-secret"}  # fmt: skip
        alpha = yaml.safe_load(one(docs, "ConfigMap", "mlmon-oauth2-proxy")["data"]["alpha.yaml"])
        injected = {h["name"]: h["values"] for h in alpha["injectRequestHeaders"]}
        cfg = _server_config(docs, tmp_path / target)
        assert injected[cfg.auth.proxy.secret_header] == [{"fromEnv": "MLMON_PROXY_SECRET"}]
        assert {cfg.auth.proxy.user_header, cfg.auth.proxy.groups_header} <= set(injected)
        [upstream] = alpha["upstreamConfig"]["upstreams"]
        assert upstream["uri"] == f"http://mlmon-server.mlmon.svc:{cfg.port}"


def test_the_server_network_policy_admits_only_oauth2_proxy_and_reaches_only_bucket_and_dns(targets):  # fmt: skip
    for target, docs in targets.items():
        np = one(docs, "NetworkPolicy", "mlmon-server")
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert np["spec"]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "mlmon-server"
        }
        proxy = ("pods", "mlmon", (("app.kubernetes.io/name", "mlmon-oauth2-proxy"),))
        assert _rules(np["spec"]["ingress"], "from") == {(proxy, "TCP", 8400)}, target
        cidr, port = BUCKET[_site(target)]
        assert _rules(np["spec"]["egress"], "to") == {
            (DNS, "UDP", 53), (DNS, "TCP", 53), (("ip", cidr), "TCP", port)}, target  # fmt: skip
        # the server pods carry the label the policy selects; oauth2-proxy's pods the peer's
        labels = one(docs, "Deployment", "mlmon-server")["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "mlmon-server"
        plabels = one(docs, "Deployment", "mlmon-oauth2-proxy")["spec"]["template"]["metadata"]["labels"]  # fmt: skip
        assert plabels["app.kubernetes.io/name"] == "mlmon-oauth2-proxy"


def test_oauth2_proxy_is_reached_only_from_the_ingress_controller(targets):
    for target, docs in targets.items():
        np = one(docs, "NetworkPolicy", "mlmon-oauth2-proxy")
        nginx = ("pods", "ingress-nginx", (("app.kubernetes.io/name", "ingress-nginx"),))
        assert _rules(np["spec"]["ingress"], "from") == {(nginx, "TCP", 4180)}, target
        server = ("pods", "mlmon", (("app.kubernetes.io/name", "mlmon-server"),))
        assert _rules(np["spec"]["egress"], "to") == {
            (DNS, "UDP", 53), (DNS, "TCP", 53), (server, "TCP", 8400),
            (("ip", IDP[_site(target)]), "TCP", 443)}, target  # fmt: skip
        for rule in np["spec"]["egress"] + one(docs, "NetworkPolicy", "mlmon-server")["spec"]["egress"]:  # fmt: skip
            for peer in rule["to"]:
                assert not peer.get("ipBlock", {}).get("cidr", "").endswith("/0")


def test_the_ingress_sends_every_request_through_oauth2_proxy_over_tls(targets):
    for target, docs in targets.items():
        [ing] = [d for d in docs if d["kind"] == "Ingress"]
        backends = {p["backend"]["service"]["name"] for r in ing["spec"]["rules"]
                    for p in r["http"]["paths"]}  # fmt: skip
        assert backends == {"mlmon-oauth2-proxy"}, target  # never the server's Service directly
        assert ing["spec"]["tls"][0]["hosts"] == [r["host"] for r in ing["spec"]["rules"]]
        svc = one(docs, "Service", "mlmon-server")
        assert svc["spec"]["type"] == "ClusterIP" and [p["port"] for p in svc["spec"]["ports"]] == [8400]  # fmt: skip


def test_one_server_writes_the_audit_chain_head(targets):
    for target, docs in targets.items():
        dep = one(docs, "Deployment", "mlmon-server")
        assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod_specs(docs)[SERVER]["volumes"]
                  if "persistentVolumeClaim" in v]  # fmt: skip
        assert claims == ["mlmon-server-state"], target


def test_no_secret_value_in_the_server_objects(targets):
    for target, docs in targets.items():
        assert not [d for d in docs if d["kind"] == "Secret"], target
        text = yaml.safe_dump(docs).lower()
        for word in ("aws_secret_access_key:", "password", "client_secret:", "cookie_secret:"):
            assert word not in text, (target, word)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_real_server_with_the_charts_server_yaml_keeps_the_proxy_contract(helm_rendered, tmp_path):  # fmt: skip
    """`mlmon server` started with the chart's server.yaml (paths moved under tmp_path, bound to
    127.0.0.1, a local lake): the probe path answers without identity, oauth2-proxy's headers are
    believed only with the shared secret, and the access audit lands under audit/mlmon-server/,
    the one folder the reader policy lets it write."""
    import signal
    import subprocess
    import sys
    import time

    import httpx

    docs = helm_rendered["onprem"]
    text = one(docs, "ConfigMap", "mlmon-server-config")["data"]["server.yaml"]
    secrets, state, lake = tmp_path / "secrets", tmp_path / "state", tmp_path / "lake"
    for d in (secrets, state, lake):
        d.mkdir()
    secret = "p" * 40
    (secrets / "proxy-secret").write_text(secret)
    os.chmod(secrets / "proxy-secret", 0o600)
    config = tmp_path / "server.yaml"
    config.write_text(
        text.replace("/run/mlmon/secrets/", f"{secrets}/").replace(
            "/var/lib/mlmon-server", str(state)
        )
    )
    port = _free_port()
    env = {**os.environ, "MLMON_LAKE": lake.as_uri()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "server", "--config", str(config),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    user = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "cardiology"}
    try:
        for _ in range(300):  # up to 30 s to start
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.1)
        else:
            pytest.fail("mlmon server did not answer /healthz")
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.get("/healthz").text == "ok"  # the kubelet's probe: no identity
            assert c.get("/api/v1/models", headers=user).status_code == 401  # no secret
            wrong = {**user, "X-Mlmon-Proxy-Secret": "q" * 40}
            assert c.get("/api/v1/models", headers=wrong).status_code == 401
            right = {**user, "X-Mlmon-Proxy-Secret": secret}
            assert c.get("/api/v1/models", headers=right).status_code == 200
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err and secret not in err
    segments = sorted((lake / "audit").rglob("segment-*.jsonl"))
    assert segments and {p.parent.name for p in segments} == {"mlmon-server"}
    records = [json.loads(ln) for p in segments for ln in p.read_text().splitlines() if ln.strip()]
    assert secret not in json.dumps(records)
    assert any(r.get("principal") == "alice" or "alice" in json.dumps(r) for r in records)
