"""The edge's SIGTERM bound fits in the grace period its manifests give it."""

from __future__ import annotations

from mlmon.edge.lifecycle import SHUTDOWN_DEADLINE_S
from tests.deploy.conftest import pod_specs

EDGE_WORKLOADS = ("Deployment/mlmon-edge", "CronJob/mlmon-edge-once")
MARGIN_S = 10  # process start-up, the kubelet's own delay, a loaded node


def test_grace_period_covers_the_shutdown_deadline(rendered):
    for target, docs in rendered.items():
        specs = pod_specs(docs)
        for workload in EDGE_WORKLOADS:
            # Kubernetes' default is 30 s; the manifests say it, so a change of either is seen here
            grace = specs[workload].get("terminationGracePeriodSeconds")
            assert grace is not None, f"{target} {workload}: terminationGracePeriodSeconds not set"
            assert grace >= SHUTDOWN_DEADLINE_S + MARGIN_S, (target, workload, grace)
