"""Alert delivery: rules over the lake, a durable outbox, and receivers (docs/alerts.md).

``mlmon alerts deliver --config alerts.yaml`` runs one pass (a CronJob);
``mlmon alerts run`` loops. The delivery reads the lake with the reader role and
never imports the edge (an import-linter contract).
"""

from __future__ import annotations

from mlmon.alerting.config import AlertsConfig, load_config, parse_config
from mlmon.alerting.deliver import PassResult, deliver, run

__all__ = ["AlertsConfig", "PassResult", "deliver", "load_config", "parse_config", "run"]
