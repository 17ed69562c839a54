"""Every page in a real browser: Debian's Chromium, driven by Playwright, against ONE real
``mlmon server`` process (token sign-in, two teams) on 127.0.0.1, stopped by its pid.

For every page: no console message at all (a CSP violation, a script error or a failed
load are all console errors), no request to any origin but the server (others are
recorded and aborted), every chart drawn (each ``div.chart`` holds an SVG with Vega marks),
and a screenshot in the artefacts folder (``$PYTEST_ARTIFACTS/browser`` or
``tests/artifacts/browser``). The range picker, driven through the form, changes the
figures; a user of one team cannot see the other team's model or reports.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tests.server.conftest import RANGE, TOKENS
from tests.server.lake import RISK, SEPSIS
from tests.server.live import LiveServer

pytestmark = pytest.mark.xdist_group("server")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS") or ROOT / "tests" / "artifacts") / "browser"

# Per chart: the number of Vega data marks drawn (rect, path, line, symbol... under role-mark
# groups) and the "could not be drawn" text the page script writes on failure.
_CHARTS_JS = """() => Array.from(document.querySelectorAll('div.chart[data-spec]')).map(c => ({
  marks: c.querySelectorAll('svg g.role-mark > *').length,
  text: c.querySelector('svg') ? '' : c.textContent.trim(),
}))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(
            "Debian's chromium is not installed: run scripts/bootstrap.sh --dev "
            "(it runs apt-get install chromium)"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watch:
    """What one browser context logged and asked for."""

    base: str
    console: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.console.clear()
        self.foreign.clear()


@pytest.fixture
def as_user(
    browser: Browser, live_server: LiveServer
) -> Iterator[Callable[[str], tuple[Page, Watch]]]:
    """``as_user("alice")`` -> a page signed in with alice's token, and what it logs."""
    contexts: list[BrowserContext] = []

    def make(user: str) -> tuple[Page, Watch]:
        ctx = browser.new_context(
            viewport={"width": 1280, "height": 900},
            extra_http_headers={"Authorization": f"Bearer {TOKENS[user][0]}"},
        )
        ctx.set_default_timeout(60_000)  # 2 cores shared with the rest of the suite
        contexts.append(ctx)
        watch = Watch(live_server.base)
        origin = urlsplit(live_server.base).netloc

        def route(r: Route) -> None:
            if urlsplit(r.request.url).netloc != origin:
                watch.foreign.append(r.request.url)
                r.abort()
            else:
                r.continue_()

        ctx.route("**/*", route)
        page = ctx.new_page()
        page.on("console", lambda m: watch.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: watch.console.append(f"pageerror: {e}"))
        return page, watch

    yield make
    for ctx in contexts:
        ctx.close()


def visit(
    page: Page, watch: Watch, url: str, shot: str, *, charts: int = 0
) -> list[dict[str, Any]]:
    """Open ``url``; check console, origins and that every chart drew marks; screenshot it."""
    watch.clear()
    answer = page.goto(watch.base + url, wait_until="load")
    assert answer is not None and answer.status == 200, (url, answer and answer.status)
    if charts:
        page.wait_for_function(
            "n => document.querySelectorAll('div.chart[data-spec] svg g.role-mark').length >= n",
            arg=charts,
        )
    drawn: list[dict[str, Any]] = page.evaluate(_CHARTS_JS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    assert len(drawn) >= charts, (url, drawn)
    assert all(c["marks"] > 0 and not c["text"] for c in drawn), (url, drawn)
    assert watch.console == [], (url, watch.console)
    assert watch.foreign == [], (url, watch.foreign)
    return drawn


def test_every_page_draws_without_console_errors_or_foreign_requests(
    as_user: Callable[[str], tuple[Page, Watch]], live_server: LiveServer
) -> None:
    page, watch = as_user("root")
    visit(page, watch, f"/?{RANGE}", "overview")
    rows = page.locator("table.overview tbody tr")
    assert sorted(rows.locator("td:first-child a").all_inner_texts()) == [RISK, SEPSIS]
    # sortable: a click on "Outcomes known" orders by it (sepsis has none: first ascending),
    # a second click reverses
    names = rows.locator("td:first-child a")
    header = page.locator("table.overview thead th", has_text="Outcomes known")
    header.click()
    assert names.all_inner_texts() == [SEPSIS, RISK]
    header.click()
    assert names.all_inner_texts() == [RISK, SEPSIS]
    visit(page, watch, f"/models/{SEPSIS}?{RANGE}", "model-sepsis", charts=3)
    # the model page: drift heatmap, drift over time, latency, golden, performance, alerts
    drawn = visit(page, watch, f"/models/{RISK}?{RANGE}", "model-risk", charts=5)
    assert len(drawn) >= 5
    for title in ("Drift", "Response time", "Golden checks", "Performance"):
        section = page.locator("section", has=page.locator("h2", has_text=title))
        assert section.locator("div.chart svg g.role-mark").count() > 0, title
    # the feature page, reached by the model page's link
    page.locator("a", has_text="age").first.click()
    page.wait_for_url("**/features/age**")
    visit(page, watch, page.url.removeprefix(live_server.base), "feature-age", charts=2)
    assert page.locator("h1").inner_text() == "age"
    visit(page, watch, "/about", "about")
    assert "psi" in page.content()  # method ids on the explanation page
    visit(page, watch, "/reports", "reports")
    # newest first: the three cover the same period, so the last made leads
    keys = page.locator("table.reports tbody tr td:first-child .hint").all_inner_texts()
    assert keys == [
        live_server.reports[s] for s in ("both_2026-10-03", "sepsis_2026-10-01", "risk_2026-10")
    ]


def test_range_picker_changes_the_figures(
    as_user: Callable[[str], tuple[Page, Watch]],
) -> None:
    page, watch = as_user("alice")
    visit(page, watch, f"/models/{RISK}?{RANGE}&by=day", "range-before", charts=5)
    before = page.locator("main > p").first.inner_text()
    heat_before = page.locator("div.chart").first.locator("g.mark-rect.role-mark > path").count()
    # the picker: a custom range of two days, through the form the user sees
    page.select_option("#range", "custom")
    assert page.locator("#custom-dates").is_visible()
    page.fill("input[name=start]", "2026-10-01")
    page.fill("input[name=end]", "2026-10-02")
    page.select_option("select[name=by]", "day")
    with page.expect_navigation():
        page.click("form.range button[type=submit]")
    assert "start=2026-10-01" in page.url and "end=2026-10-02" in page.url
    visit(page, watch, page.url.removeprefix(watch.base), "range-after", charts=4)
    after = page.locator("main > p").first.inner_text()
    heat_after = page.locator("div.chart").first.locator("g.mark-rect.role-mark > path").count()
    n_before = int(before.split(" records")[0].replace(",", ""))
    n_after = int(after.split(" records")[0].replace(",", ""))
    assert 0 < n_after < n_before, (before, after)
    assert 0 < heat_after < heat_before  # two days of cells instead of six
    assert page.locator("select[name=range]").input_value() == "custom"
    # a preset from the picker: "last 24 hours" ends at the clock, after the lake's data
    page.select_option("#range", "24h")
    with page.expect_navigation():
        page.click("form.range button[type=submit]")
    assert "range=24h" in page.url
    assert page.locator("main > p").first.inner_text().startswith("0 records")


def test_a_team_sees_only_its_models_and_reports(
    as_user: Callable[[str], tuple[Page, Watch]], live_server: LiveServer
) -> None:
    for user, mine, theirs, report, other in (
        ("alice", RISK, SEPSIS, "risk_2026-10", "sepsis_2026-10-01"),
        ("ian", SEPSIS, RISK, "sepsis_2026-10-01", "risk_2026-10"),
    ):
        page, watch = as_user(user)
        visit(page, watch, f"/?{RANGE}", f"overview-{user}")
        assert page.locator("table.overview tbody td:first-child").all_inner_texts() == [mine]
        assert theirs not in page.content()
        answer = page.goto(f"{live_server.base}/models/{theirs}?{RANGE}")
        assert answer is not None and answer.status == 404
        assert theirs not in page.content() and "no model of that name" in page.content()
        page.screenshot(path=str(ARTIFACTS / f"other-team-{user}.png"), full_page=True)
        api = page.request.get(f"{live_server.base}/api/v1/models")
        assert api.ok and api.json()["models"] == [mine]
        # reports: only the team's own; the report covering both teams is nobody's but admins'
        visit(page, watch, "/reports", f"reports-{user}")
        links = page.locator("a.report-file")
        hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
        assert hrefs and all(report in (h or "") for h in hrefs), hrefs
        assert "both_" not in page.content() and other not in page.content()
        theirs_file = live_server.reports[other] + ".html"
        assert page.request.get(f"{live_server.base}/reports/files/{theirs_file}").status == 404


def test_reports_open_in_place_sandboxed(
    as_user: Callable[[str], tuple[Page, Watch]], live_server: LiveServer
) -> None:
    page, watch = as_user("alice")
    visit(page, watch, "/reports", "reports-alice-open")
    rows = page.locator("table.reports tbody tr")
    assert rows.count() == 1 and "2026-10-01 to 2026-10-06" in rows.first.inner_text()
    key = live_server.reports["risk_2026-10"]
    # the HTML report opens in this window, under its own sandbox policy: no script runs
    # (the interactive charts' static SVG stays), nothing is fetched
    watch.clear()
    with page.expect_navigation():
        page.locator("a.report-file", has_text="HTML").click()
    assert page.url == f"{live_server.base}/reports/files/{key}.html"
    page.wait_for_load_state("load")
    page.screenshot(path=str(ARTIFACTS / "report-html.png"), full_page=True)
    assert "risk-model" in page.locator("body").inner_text()
    assert page.locator(".chart-static svg").count() > 0  # the static charts stayed
    assert page.evaluate("typeof vegaEmbed") == "undefined"  # its inline scripts did not run
    assert watch.foreign == []
    assert watch.console and all(
        "sandboxed and the 'allow-scripts' permission is not set" in m for m in watch.console
    ), watch.console
    head = page.request.get(f"{live_server.base}/reports/files/{key}.html")
    csp = head.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "script-src" not in csp and "default-src 'none'" in csp
    pdf = page.request.get(f"{live_server.base}/reports/files/{key}.pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline;")
    assert pdf.body()[:5] == b"%PDF-"
    # only listed report files are served: no other object of the folder, no path tricks
    for path in (
        f"{key}-context/context.json",
        f"monthly/..%2F{key}.html",  # decoded by the server
        f"{key}.ipynb",
        "monthly/2026-10/.mlmon-owned.json",
    ):
        assert page.request.get(f"{live_server.base}/reports/files/{path}").status == 404, path


def test_an_operator_silences_then_acknowledges_and_others_see_no_button(
    as_user: Callable[[str], tuple[Page, Watch]], live_server: LiveServer
) -> None:
    # ian (no operator) sees his model's firing alerts, and no button (the page's HTML)
    page, watch = as_user("ian")
    answer = page.request.get(f"{live_server.base}/models/{SEPSIS}?{RANGE}")
    assert answer.status == 200
    panel = answer.text().split('id="alert-actions"', 1)[1].split("</div>", 1)[0]
    assert panel.count('<tr data-rule="drift:psi"') > 0
    assert "<form" not in panel and "<button" not in panel and "needs the operator role" in panel
    # alice (cardiology: operators) silences the first alert of her model, then acknowledges it
    page, watch = as_user("alice")
    # (the range picker test's first page: the server has it cached when that test ran first)
    url = f"{live_server.base}/models/{RISK}?{RANGE}&by=day"
    answer = page.goto(url, wait_until="domcontentloaded")
    assert answer is not None and answer.status == 200
    row = page.locator("#alert-actions tbody tr").first
    rule, subject = row.get_attribute("data-rule"), row.get_attribute("data-subject")
    mine = page.locator(f'#alert-actions tbody tr[data-rule="{rule}"][data-subject="{subject}"]')
    assert mine.locator("td.alert-state").inner_text() == "firing"
    mine.locator("select[name=until]").select_option("1h")
    with page.expect_navigation(wait_until="domcontentloaded"):
        mine.locator("form.alert-silence button").click()
    assert page.url == f"{url}#alert-actions"  # back to the same page, range kept
    assert "silenced until" in mine.locator("td.alert-state").inner_text()
    assert mine.locator("form.alert-silence").count() == 0
    with page.expect_navigation(wait_until="domcontentloaded"):
        mine.locator("form.alert-ack button").click()
    state = mine.locator("td.alert-state").inner_text()
    assert "silenced until" in state and "acknowledged by alice" in state
    assert mine.locator("form").count() == 0
    page.screenshot(path=str(ARTIFACTS / "alert-actions-alice.png"), full_page=True)
    assert watch.console == [] and watch.foreign == []
    api = page.request.get(f"{live_server.base}/api/v1/alerts").json()
    [acked] = [a for a in api["firing"] if (a["rule"], a["subject"] or "") == (rule, subject)]
    assert acked["acknowledged_by"] == "alice"
    assert [s["by"] for s in api["silences"]] == ["alice"]
