"""The edge's SIGTERM bound fits in the grace period its manifests give it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlmon.edge.lifecycle import SHUTDOWN_DEADLINE_S
from tests.deploy.conftest import pod_specs

EDGE_WORKLOADS = ("Deployment/mlmon-edge", "CronJob/mlmon-edge-once")
MARGIN_S = 10  # process start-up, the kubelet's own delay, a loaded node
DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "container" / "Dockerfile"


def _runs_the_edge(spec: dict) -> bool:
    """A pod that runs ``mlmon edge ...`` (the image's entrypoint is ``mlmon``)."""
    for c in spec.get("containers") or []:
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        if "edge" in argv[:3]:
            return True
    return False


def test_grace_period_covers_the_shutdown_deadline(rendered):
    for target, docs in rendered.items():
        specs = pod_specs(docs)
        for workload in EDGE_WORKLOADS:
            # Kubernetes' default is 30 s; the manifests say it, so a change of either is seen here
            grace = specs[workload].get("terminationGracePeriodSeconds")
            assert grace is not None, f"{target} {workload}: terminationGracePeriodSeconds not set"
            assert grace >= SHUTDOWN_DEADLINE_S + MARGIN_S, (target, workload, grace)


def test_every_workload_running_the_edge_sets_the_grace_period(rendered):
    """Issue 18 item 4: every pod running `mlmon edge` (a new CronJob too) says its grace period.

    tests/edge/test_batch_beside.py sends SIGTERM during a batch wait and waits at most
    this grace period for the process to be gone.
    """
    for target, docs in rendered.items():
        edge = {w: s for w, s in pod_specs(docs).items() if _runs_the_edge(s)}
        assert set(EDGE_WORKLOADS) <= set(edge), (target, sorted(edge))  # the search finds them
        for workload, spec in edge.items():
            grace = spec.get("terminationGracePeriodSeconds")
            assert isinstance(grace, int) and grace >= SHUTDOWN_DEADLINE_S + MARGIN_S, (
                target,
                workload,
                grace,
            )


def test_sigterm_reaches_the_edge_process_in_the_image():
    """The entrypoint is exec form (no shell as PID 1 swallowing SIGTERM), no STOPSIGNAL change."""
    text = DOCKERFILE.read_text()
    entries = re.findall(r"^ENTRYPOINT\s+(.+)$", text, re.M)
    assert len(entries) == 2  # the server's and the edge's
    for entry in entries:
        assert json.loads(entry) == ["mlmon"], entry
    assert not re.search(r"^STOPSIGNAL", text, re.M)
