"""The reports page with Starlette's test client: which reports are listed (by their context),
in which order, and which files are served (only those of listed reports)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlmon.server.reports import REPORT_CSP
from tests.server.lake import RISK, SEPSIS

pytestmark = pytest.mark.xdist_group("server")


def _report(
    folder: Path, stem: str, models: list[str], month: int, formats: dict[str, bytes]
) -> None:
    """A report as mlmon report lays it out: files beside ``{stem}-context/context.json``."""
    ctx = folder / f"{stem}-context"
    ctx.mkdir(parents=True)
    doc = {
        "title": f"Report {stem}",
        "period_start": f"2026-{month:02d}-01T00:00:00+00:00",
        "period_end": f"2026-{month + 1:02d}-01T00:00:00+00:00",
        "generated_at": "2026-11-02T06:00:00+00:00",
        "models": [{"model": m} for m in models],
    }
    (ctx / "context.json").write_text(json.dumps(doc))
    for fmt, body in formats.items():
        (folder / f"{stem}.{fmt}").write_bytes(body)


def test_reports_are_listed_by_context_newest_first_and_only_listed_files_are_served(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    rep = tmp_path / "rep"
    html = b"<!doctype html><title>r</title><p>report</p>"
    _report(rep / "monthly" / "2026-09", "sep", [RISK], 9, {"html": html, "pdf": b"%PDF-1.4\n"})
    _report(rep / "monthly" / "2026-10", "oct", [RISK], 10, {"html": html})
    _report(rep / "icu", "icu", [SEPSIS], 10, {"html": html})
    (rep / "loose").mkdir()
    (rep / "loose" / "orphan.html").write_bytes(html)  # no context: its models are unknown
    (rep / "broken-context").mkdir()
    (rep / "broken-context" / "context.json").write_text("{not json")
    (rep / "broken.html").write_bytes(html)
    # the path in server.yaml is relative to the file (written in tmp_path / "c0")
    c = make_client({"mode": "token"}, reports="../rep")
    alice = {"Authorization": "Bearer alice-token-0123456789abcdef"}
    page = c.get("/reports", headers=alice)
    assert page.status_code == 200
    text = page.text
    assert text.index("monthly/2026-10/oct") < text.index("monthly/2026-09/sep")  # newest first
    assert "2026-09-01 to 2026-09-30" in text
    for absent in ("icu/icu", "orphan", "broken"):
        assert absent not in text, absent
    r = c.get("/reports/files/monthly/2026-09/sep.pdf", headers=alice)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content == b"%PDF-1.4\n"
    r = c.get("/reports/files/monthly/2026-10/oct.html", headers=alice)
    assert r.status_code == 200 and r.content == html
    assert r.headers["content-security-policy"] == REPORT_CSP
    assert (
        r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    )
    missing = c.get("/reports/files/nothing.html", headers=alice)
    for path in (
        "icu/icu.html",  # another team's
        "loose/orphan.html",
        "broken.html",
        "monthly/2026-10/oct-context/context.json",
        "monthly/2026-10/..%2F2026-09/sep.pdf",  # decoded by the server, not the client
    ):
        r = c.get(f"/reports/files/{path}", headers=alice)
        assert (r.status_code, r.content) == (404, missing.content), path
    ian = c.get("/reports", headers={"Authorization": "Bearer ian-token-0123456789abcdef"})
    assert "icu/icu" in ian.text and "monthly" not in ian.text
    assert c.get("/reports").status_code == 401


def test_reports_page_without_a_folder_says_how_to_set_it(make_client: Callable[..., Any]) -> None:
    c = make_client()
    page = c.get("/reports")
    assert page.status_code == 200 and "--reports FOLDER" in page.text
    assert c.get("/reports/files/x.html").status_code == 404
