"""Rendered manifests of deploy/k8s: the base and each overlay, by the test-side renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TARGETS = {
    "base": K8S / "base",
    "onprem": K8S / "overlays" / "onprem",
    "cloud": K8S / "overlays" / "cloud",
}
SERVER_TARGETS = {
    "server-base": K8S / "server" / "base",
    "server-onprem": K8S / "server" / "overlays" / "onprem",
    "server-cloud": K8S / "server" / "overlays" / "cloud",
}


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of this kind and name."""
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind} {name}, found {len(hits)}"
    return hits[0]


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod template's spec, keyed by ``Kind/name``."""
    out = {}
    for d in docs:
        spec = d.get("spec") or {}
        if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            out[f"{d['kind']}/{d['metadata']['name']}"] = spec["template"]["spec"]
        elif d["kind"] == "CronJob":
            out[f"CronJob/{d['metadata']['name']}"] = spec["jobTemplate"]["spec"]["template"][
                "spec"
            ]
        elif d["kind"] == "Pod":
            out[f"Pod/{d['metadata']['name']}"] = spec
    return out


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(path) for name, path in TARGETS.items()}


@pytest.fixture(scope="session")
def rendered_server() -> dict[str, list[dict[str, Any]]]:
    """deploy/k8s/server: the base and each overlay."""
    return {name: render(path) for name, path in SERVER_TARGETS.items()}


@pytest.fixture(scope="session")
def helm_rendered() -> dict[str, list[dict[str, Any]]]:
    """``helm template`` of deploy/helm/mlmon with values-onprem.yaml and values-cloud.yaml."""
    from tests.deploy.helm import VALUES, template

    return {name: template(name) for name in VALUES}


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``server`` container of the Deployment mlmon-server."""
    [c] = [c for c in pod_specs(docs)["Deployment/mlmon-server"]["containers"] if c["name"] == "server"]  # fmt: skip
    return c


def container(docs: list[dict[str, Any]], workload: str, name: str = "edge") -> dict[str, Any]:
    """The container ``name`` of the pod template of ``Kind/name``."""
    [c] = [c for c in pod_specs(docs)[workload]["containers"] if c["name"] == name]
    return c


def edge_config(docs: list[dict[str, Any]], workload: str, folder: Path):
    """``load_config`` on the ConfigMap's edge.yaml with the workload container's environment.

    Values from Secrets (``valueFrom``) are stood in for by a placeholder: they are never in git.
    A ``configMapKeyRef`` takes the value of the rendered ConfigMap's key, or a placeholder when
    the ConfigMap is created outside these manifests.
    """
    from mlmon.edge.config import load_config

    cm = one(docs, "ConfigMap", "mlmon-edge-config")
    path = folder / "edge.yaml"
    path.write_text(cm["data"]["edge.yaml"])
    return load_config(path, env=container_env(docs, workload))


def container_env(docs: list[dict[str, Any]], workload: str) -> dict[str, str]:
    """The edge container's environment: values, ConfigMap keys resolved, Secrets stood in for."""
    env = {}
    for e in container(docs, workload).get("env") or []:
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
        if ref is not None:
            maps = [
                d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref["name"]
            ]
            env[e["name"]] = maps[0]["data"][ref["key"]] if maps else "<from-configmap>"
        else:
            env[e["name"]] = e.get("value", "<from-secret>")
    return env
