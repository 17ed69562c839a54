"""The edge's NetworkPolicies allow exactly: the model endpoint, the bucket, DNS (and the API
server, only because the configured batch job is a Kubernetes CronJob); ingress only to the
metrics port from the monitoring namespace."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.deploy.conftest import edge_config, one, pod_specs

BUCKET = {  # target -> (ipBlock, port) of the bucket rule
    "base": ("192.0.2.10/32", 443),
    "onprem": ("10.20.0.15/32", 9000),
    "cloud": ("10.0.96.0/27", 443),
}
APISERVER = {"base": ("192.0.2.1/32", 443), "onprem": ("10.0.0.10/32", 6443),
             "cloud": ("10.0.16.0/28", 443)}  # fmt: skip


def _peer(p: dict) -> tuple:
    if "ipBlock" in p:
        assert not p["ipBlock"].get("except"), p
        return ("ip", p["ipBlock"]["cidr"])
    ns = p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    pods = tuple(sorted((p.get("podSelector") or {}).get("matchLabels", {}).items()))
    assert set(p) <= {"namespaceSelector", "podSelector"}
    assert set(p["namespaceSelector"]) == {"matchLabels"}, p
    return ("pods", ns, pods)


def _rules(rules: list[dict], side: str) -> set[tuple]:
    out = set()
    for rule in rules:
        # a rule without peers or without ports would allow everything on that axis
        assert rule.get(side) and rule.get("ports"), rule
        for peer in rule[side]:
            for port in rule["ports"]:
                out.add((_peer(peer), port["protocol"], port["port"]))
    return out


def _edge_pods_labels(docs) -> list[dict]:
    labels = []
    for d in docs:
        if d["kind"] == "Deployment":
            labels.append(d["spec"]["template"]["metadata"]["labels"])
        elif d["kind"] == "CronJob" and d["metadata"]["name"].startswith("mlmon-edge"):
            labels.append(d["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    return labels


def test_egress_is_exactly_endpoint_bucket_and_dns(rendered, tmp_path):
    for target, docs in rendered.items():
        cfg = edge_config(docs, "Deployment/mlmon-edge", tmp_path)
        np = one(docs, "NetworkPolicy", "mlmon-edge")
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
        endpoint = urlsplit(cfg.models[0].endpoint.url)
        service, namespace, _ = endpoint.hostname.split(".", 2)
        assert (service, namespace) == ("risk", "models")
        cidr, port = BUCKET[target]
        s3 = cfg.lake.storage_options.get("endpoint_url", "https://s3.amazonaws.com")
        assert (urlsplit(s3).port or 443) == port, target
        dns = ("pods", "kube-system", (("k8s-app", "kube-dns"),))
        assert _rules(np["spec"]["egress"], "to") == {
            (dns, "UDP", 53),
            (dns, "TCP", 53),
            (("pods", "models", (("app.kubernetes.io/name", "risk-model"),)), "TCP", endpoint.port),
            (("ip", cidr), "TCP", port),
        }, target


def test_ingress_is_only_the_metrics_port_from_monitoring(rendered, tmp_path):
    for target, docs in rendered.items():
        cfg = edge_config(docs, "Deployment/mlmon-edge", tmp_path)
        np = one(docs, "NetworkPolicy", "mlmon-edge")
        assert _rules(np["spec"]["ingress"], "from") == {
            (("pods", "monitoring", ()), "TCP", cfg.metrics.port)
        }, target


def test_apiserver_egress_exists_only_for_the_kubernetes_batch_job(rendered, tmp_path):
    for target, docs in rendered.items():
        cfg = edge_config(docs, "Deployment/mlmon-edge", tmp_path)
        assert any(m.batch and m.batch.kind == "kubernetes" for m in cfg.models)
        np = one(docs, "NetworkPolicy", "mlmon-edge-apiserver")
        assert np["spec"]["policyTypes"] == ["Egress"] and "ingress" not in np["spec"]
        cidr, port = APISERVER[target]
        assert _rules(np["spec"]["egress"], "to") == {(("ip", cidr), "TCP", port)}, target


def test_the_policies_select_every_edge_pod_and_nothing_opens_more(rendered):
    for target, docs in rendered.items():
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        assert {p["metadata"]["name"] for p in policies} == {"mlmon-edge", "mlmon-edge-apiserver"}
        for p in policies:
            selector = p["spec"]["podSelector"]["matchLabels"]
            assert selector == {"app.kubernetes.io/name": "mlmon-edge"}
            for labels in _edge_pods_labels(docs):
                assert selector.items() <= labels.items(), (target, labels)
            for rule in p["spec"].get("egress", []) + p["spec"].get("ingress", []):
                for peer in rule.get("to", []) + rule.get("from", []):
                    cidr = peer.get("ipBlock", {}).get("cidr", "")
                    assert not cidr.endswith("/0"), (target, cidr)
        assert len(pod_specs(docs)) == 2
