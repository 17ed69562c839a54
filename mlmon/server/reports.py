"""The reports page: the rendered reports under the configured reports folder, newest first.

``mlmon report --out FOLDER`` and ``mlmon schedule run`` (``{output}/{schedule}/{period}/``)
write, for each report stem, ``{stem}.pdf`` and/or ``{stem}.html`` beside
``{stem}-context/context.json`` (:mod:`mlmon.reports.runner`). The context names the report's
title, period, generation time and **models**; that is how the server knows whose a report is.
A report is listed to a caller only if the caller may see **every** model it covers; a report
without its context is not listed (its models are unknown). Files are served only by the
relative path of a listed report, so no other object under the folder can be read.

HTML reports are served with their own, stricter policy (:data:`REPORT_CSP`): a sandbox with
no scripts (the report's interactive charts fall back to the static SVG it embeds), no
network, no forms; PDF reports with ``Content-Type: application/pdf`` and
``Content-Disposition: inline``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mlmon.errors import LakeError
from mlmon.lake.storage import Storage, open_storage

__all__ = ["CONTENT_TYPES", "REPORT_CSP", "Report", "ReportIndex"]

log = logging.getLogger("mlmon.server")

#: The policy of an HTML report: sandboxed (opaque origin, no scripts, no forms, no popups),
#: no request to anything (its styles are inline, its images ``data:``).
REPORT_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CONTENT_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


@dataclass(frozen=True)
class Report:
    """One rendered report: its stem's path under the folder, what it covers, its files."""

    key: str
    title: str
    models: tuple[str, ...]
    period_start: datetime | None
    period_end: datetime | None
    generated_at: datetime | None
    files: dict[str, str]  # "pdf" / "html" -> path relative to the reports folder

    @property
    def last_day(self) -> date | None:
        """The period's last day (``period_end`` is exclusive)."""
        return None if self.period_end is None else (self.period_end - timedelta(seconds=1)).date()


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class ReportIndex:
    """The reports under ``uri``, listed at most every ``ttl`` seconds (a background-free cache)."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None, ttl: float) -> None:
        self.uri = uri
        self._opts = dict(storage_options or {}) if uri.startswith(("s3://", "s3a://")) else {}
        self._ttl = ttl
        self._lock = threading.Lock()
        self._at = -1e18
        self._reports: list[Report] = []

    def _storage(self) -> Storage:
        return open_storage(self.uri, self._opts)

    def _scan(self) -> list[Report]:
        st = self._storage()
        root = st.root.rstrip("/")
        try:
            contexts = sorted(st.fs.glob(f"{root}/**/*-context/context.json"))
        except FileNotFoundError:
            return []
        reports = []
        for ctx_path in contexts:
            ctx_dir = ctx_path.rsplit("/", 1)[0]
            folder, _, dirname = ctx_dir.rpartition("/")
            stem = dirname[: -len("-context")]
            try:
                doc = json.loads(st.fs.cat_file(ctx_path))
                models = tuple(str(m["model"]) for m in doc["models"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("report context %s not readable (%s); not listed", ctx_path, exc)
                continue
            files = {}
            for fmt in CONTENT_TYPES:
                p = f"{folder}/{stem}.{fmt}"
                if st.fs.isfile(p):
                    files[fmt] = p[len(root) + 1 :]
            if not files or not models:
                continue
            rel_folder = folder[len(root) + 1 :]
            reports.append(
                Report(
                    key=f"{rel_folder}/{stem}" if rel_folder else stem,
                    title=str(doc.get("title") or stem),
                    models=models,
                    period_start=_time(doc.get("period_start")),
                    period_end=_time(doc.get("period_end")),
                    generated_at=_time(doc.get("generated_at")),
                    files=files,
                )
            )
        old = datetime.min.replace(tzinfo=UTC)
        reports.sort(key=lambda r: (r.period_end or old, r.generated_at or old), reverse=True)
        return reports

    def all(self) -> list[Report]:
        """Every listed report, newest period first (then newest generated)."""
        with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                try:
                    self._reports = self._scan()
                except OSError as exc:
                    raise LakeError(f"the reports folder {self.uri} could not be listed") from exc
                self._at = time.monotonic()
            return list(self._reports)

    def visible(self, can_see: Callable[[str], bool]) -> list[Report]:
        """The reports whose every model the caller may see."""
        return [r for r in self.all() if all(can_see(m) for m in r.models)]

    def find(self, path: str, can_see: Callable[[str], bool]) -> tuple[str, str] | None:
        """``(format, relative path)`` of a visible report's file, or None."""
        for r in self.visible(can_see):
            for fmt, p in r.files.items():
                if p == path:
                    return fmt, p
        return None

    def read(self, path: str) -> bytes:
        """The bytes of a file found by :meth:`find`."""
        st = self._storage()
        try:
            return bytes(st.fs.cat_file(st.path(path)))
        except OSError as exc:
            raise LakeError(f"report file {path} could not be read") from exc
