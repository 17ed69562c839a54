"""Helpers shared by the command modules and ``mlmon.cli``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mlmon.errors import ConfigError, MlmonError

__all__ = ["add_audit_args", "audit_record", "storage_options"]


def storage_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--storage-option k=v`` flags, over ``MLMON_S3_ENDPOINT`` / ``MLMON_SSE_KMS_KEY_ID``."""
    opts: dict[str, Any] = {}
    if os.environ.get("MLMON_S3_ENDPOINT"):
        opts["endpoint_url"] = os.environ["MLMON_S3_ENDPOINT"]
    if os.environ.get("MLMON_SSE_KMS_KEY_ID"):
        opts["sse_kms_key_id"] = os.environ["MLMON_SSE_KMS_KEY_ID"]
    for item in getattr(args, "storage_option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--storage-option {item!r} is not key=value")
        opts[key] = value
    return opts


def add_audit_args(p: argparse.ArgumentParser, actor: str) -> None:
    """``--audit-lake``, ``--state-dir``, ``--actor`` and ``--no-audit`` for a command."""
    p.add_argument("--audit-lake", help="where the audit record goes (default: --lake)")
    p.add_argument("--state-dir", default=f".mlmon-{actor}", help="audit chain head of this actor")
    p.add_argument("--actor", default=actor)
    p.add_argument("--no-audit", action="store_true", help="write no audit record")


def audit_record(
    args: argparse.Namespace,
    lake: str | None,
    action: str,
    target: str,
    outcome: str = "ok",
    **details: Any,
) -> None:
    """Write one audit record into ``--audit-lake`` (or ``lake``)'s ``audit/`` prefix.

    A refused write (a reader credential may not PUT under ``audit/``) is a warning
    on stderr: the record is still emitted as a JSON log line, for the cluster's own
    audit collection.
    """
    if getattr(args, "no_audit", False):
        return
    uri = getattr(args, "audit_lake", None) or lake
    if not uri:
        return
    from mlmon.governance.audit import AuditLog

    try:
        audit = AuditLog(uri, Path(args.state_dir), args.actor,
                         storage_options=storage_options(args) or None)  # fmt: skip
        audit.record(action, target, outcome, **details)
        audit.flush()
    except (MlmonError, OSError) as exc:
        print(f"mlmon: warning: the {action} audit record was not written to {uri}: {exc} "
              "(use --audit-lake URI with write access, or --no-audit)", file=sys.stderr)  # fmt: skip
