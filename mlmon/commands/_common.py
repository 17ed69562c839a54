"""Helpers shared by the command modules and ``mlmon.cli``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mlmon.errors import ConfigError

__all__ = ["storage_options"]


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
