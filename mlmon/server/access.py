"""The periodic access review the data policy promises: who used the server, when, and what.

``mlmon audit access-review --lake URI --since DATE`` reads the server's audit segments
(``{uri}/audit/{actor}/segment-*.jsonl``, one record per request, written by
:class:`mlmon.server.app.RequestAudit`) and prints one CSV line per principal. Run
``mlmon audit verify`` first: this review trusts the records it reads.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import polars as pl

from mlmon.errors import GovernanceError
from mlmon.lake.storage import open_storage

__all__ = ["REVIEW_COLUMNS", "access_review"]

#: The review's columns, in order.
REVIEW_COLUMNS = ("principal", "first_access", "last_access", "requests", "answered", "refused",
                  "not_found", "rate_limited", "errors", "models", "clients")  # fmt: skip
_MODEL = re.compile(r"^/(?:api/v1/)?models/([^/?]+)")


def _records(uri: str, actor: str, storage_options: dict[str, Any] | None) -> list[dict[str, Any]]:
    st = open_storage(uri, storage_options)
    folder = st.path("audit", actor)
    try:
        paths = sorted(p for p in st.fs.ls(folder, detail=False) if p.endswith(".jsonl"))
    except FileNotFoundError as exc:
        raise GovernanceError(
            f"no audit segments of actor {actor!r} under {uri}/audit/{actor}/; check --lake "
            "(the server's audit.uri) and --actor"
        ) from exc
    out = []
    for path in paths:
        with st.fs.open(path, "rb") as fh:
            for n, line in enumerate(fh.read().decode("utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    raise GovernanceError(
                        f"{path} line {n} is not JSON; run mlmon audit verify"
                    ) from exc
                if "seq" in rec:  # a seal line has no sequence number
                    out.append(rec)
    return out


def access_review(
    uri: str,
    since: datetime,
    until: datetime | None = None,
    *,
    actor: str = "mlmon-server",
    storage_options: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """One row per principal over ``[since, until)``: :data:`REVIEW_COLUMNS`.

    ``answered`` counts 2xx/3xx answers, ``refused`` 401/403 (sign-in failed), ``not_found``
    404 (also another team's model), ``rate_limited`` 429, ``errors`` 5xx; ``models`` lists
    the model names in the paths asked for (``;``-separated), ``clients`` the addresses.

    Raises
    ------
    GovernanceError
        No segments of ``actor`` under ``uri``, or a line that is not JSON.
    """
    rows = []
    for r in _records(uri, actor, storage_options):
        if not str(r.get("action", "")).startswith("http_"):
            continue
        when = datetime.fromisoformat(r["time"])
        if when < since or (until is not None and when >= until):
            continue
        details = r.get("details") or {}
        m = _MODEL.match(str(r.get("target", "")))
        rows.append({"principal": details.get("principal", "?"), "time": when,
                     "status": int(r.get("outcome") or 0), "model": m.group(1) if m else None,
                     "client": details.get("client", "")})  # fmt: skip
    if not rows:
        return pl.DataFrame(schema=dict.fromkeys(REVIEW_COLUMNS, pl.String))
    df = pl.DataFrame(rows)
    s = pl.col("status")
    return (
        df.group_by("principal")
        .agg(
            pl.col("time").min().alias("first_access"),
            pl.col("time").max().alias("last_access"),
            pl.len().alias("requests"),
            ((s >= 200) & (s < 400)).sum().alias("answered"),
            s.is_in([401, 403]).sum().alias("refused"),
            (s == 404).sum().alias("not_found"),
            (s == 429).sum().alias("rate_limited"),
            (s >= 500).sum().alias("errors"),
            pl.col("model").drop_nulls().unique().sort().str.join(";").alias("models"),
            pl.col("client").unique().sort().str.join(";").alias("clients"),
        )
        .sort("principal")
        .select(REVIEW_COLUMNS)
    )
