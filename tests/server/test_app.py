"""The server's pages and API on a real lake, through Starlette's test client."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.server.data import Data, jsonable
from tests.server.conftest import RANGE
from tests.server.lake import RISK, SEPSIS

pytestmark = pytest.mark.xdist_group("server")

PAGES = ["/", f"/models/{RISK}", f"/models/{RISK}/features/age", "/about"]


class _Scripts(HTMLParser):
    """Collects every <script> (its attributes and text) and every asset URL of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.urls: list[str] = []
        self.inline_handlers: list[str] = []
        self._in: dict[str, str | None] | None = None
        self._text = ""
        self.chart_divs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.inline_handlers += [k for k in a if k.startswith("on")]
        for k in ("src", "href", "action"):
            if a.get(k):
                self.urls.append(str(a[k]))
        if tag == "script":
            self._in, self._text = a, ""
        if tag == "div" and "chart" in (a.get("class") or ""):
            self.chart_divs.append(str(a.get("data-spec")))

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in is not None:
            self.scripts.append((self._in, self._text))
            self._in = None


def parse(html: str) -> _Scripts:
    p = _Scripts()
    p.feed(html)
    return p


def test_pages_have_no_inline_script_and_send_the_security_headers(make_client: Any) -> None:
    c = make_client()
    for path in PAGES:
        r = c.get(f"{path}?{RANGE}")
        assert r.status_code == 200, (path, r.text[:300])
        csp = r.headers["content-security-policy"]
        script_src = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
        assert script_src.split() == ["script-src", "'self'"]
        assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
        page = parse(r.text)
        assert page.scripts, path
        for attrs, text in page.scripts:
            if attrs.get("src"):
                assert attrs["src"] == "/static/mlmon.js" and not text.strip()
            else:  # a data island: never executed
                assert attrs.get("type") == "application/json", (path, attrs)
        assert not page.inline_handlers, (path, page.inline_handlers)
        assert not [u for u in page.urls if u.startswith(("http:", "https:", "//"))], path
        ids = {attrs.get("id") for attrs, _ in page.scripts}
        assert all(d in ids for d in page.chart_divs), path  # every chart has its data island


def test_overview_shows_every_model_with_its_figures(make_client: Any, server_lake: Path) -> None:
    c = make_client()
    r = c.get(f"/api/v1/overview?{RANGE}")
    rows = {m["model"]: m for m in r.json()["models"]}
    assert set(rows) == {RISK, SEPSIS}
    lake = Lake(str(server_lake))
    risk = rows[RISK]
    profiles = lake.read("profiles", model=RISK, start="2026-10-01", end="2026-10-08")
    records = int(profiles.unique(["window_start", "collector_id"])["rows"].sum())
    assert risk["records"] == records
    golden = lake.read("golden", model=RISK)
    assert risk["golden_checks"] == golden.height
    assert risk["golden_rate"] == pytest.approx(golden["passed"].mean())
    assert risk["performance"]["metric"] == "roc_auc" and 0 < risk["performance"]["coverage"] <= 1
    assert rows[SEPSIS]["performance"] is None
    assert risk["stale"] is True  # the fixture days are long past
    html = c.get(f"/?{RANGE}").text
    assert RISK in html and SEPSIS in html and "stale" in html


def _rows(lake_frame: pl.DataFrame) -> list[dict[str, Any]]:
    return jsonable(lake_frame)


def _same(api: list[dict[str, Any]], lake: list[dict[str, Any]]) -> None:
    assert len(api) == len(lake)
    for a, b in zip(api, lake, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(b[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-12), k
            else:
                assert a[k] == b[k], k


def test_api_equals_the_lake_methods(make_client: Any, server_lake: Path) -> None:
    c = make_client()
    lake = Lake(str(server_lake))
    s = "2026-10-01"
    api = lambda kind, extra="": c.get(f"/api/v1/models/{RISK}/{kind}?{RANGE}&by=day{extra}").json()  # noqa: E731
    end = "2026-10-08"  # end=2026-10-07 (a date) includes that day
    drift = api("drift")
    assert drift["start"].startswith(s) and drift["end"].startswith(end)
    _same(drift["rows"], _rows(lake.drift(RISK, s, end, by="day")))
    assert any(r["drifted"] for r in drift["rows"])
    _same(
        api("drift", "&method=psi,ks&feature=age")["rows"],
        _rows(lake.drift(RISK, s, end, by="day", methods=["psi", "ks"], features=["age"])),
    )
    _same(
        api("percentiles", "&q=0.5,0.9&source=stream")["rows"],
        _rows(
            lake.percentiles(
                "latency_ms", (0.5, 0.9), model=RISK, start=s, end=end, by="day", source="stream"
            )
        ),
    )
    perf = api("performance")["rows"]
    _same(perf, _rows(lake.performance(RISK, s, end, by="day")))
    assert any(r["realized"] is not None for r in perf)
    _same(api("data-quality")["rows"], _rows(lake.data_quality(RISK, s, end)))
    _same(api("alerts")["rows"], _rows(lake.read("alerts", model=RISK, start=s, end=end)))
    _same(api("golden")["rows"], _rows(lake.read("golden", model=RISK, start=s, end=end)))
    versions = api("versions")["rows"]
    assert [v["version"] for v in versions] == sorted(
        set(lake.read("profiles", model=RISK)["model_version"].to_list())
    )


def test_period_size_and_version_change_the_figures(make_client: Any, server_lake: Path) -> None:
    c = make_client()
    lake = Lake(str(server_lake))
    by_day = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}&by=day&method=psi").json()["rows"]
    by_hour = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}&by=hour&method=psi").json()["rows"]
    assert len({r["period"] for r in by_hour}) > len({r["period"] for r in by_day})
    version = lake.read("profiles", model=RISK)["model_version"].drop_nulls()[0]
    same = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}&method=psi&version={version}").json()["rows"]
    _same(
        same,
        _rows(
            lake.drift(RISK, "2026-10-01", "2026-10-08", by="day", methods=["psi"], version=version)
        ),
    )
    none = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}&version=no-such-version").json()["rows"]
    assert none == [] and same
    page = c.get(f"/models/{RISK}?{RANGE}&version={version}").text
    assert f"version {version} only" in page


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("range=fortnight", "range"),
        ("by=fortnight", "by"),
        ("range=custom&start=x&end=2026-10-02", "start"),
        ("range=custom&start=2026-10-05&end=2026-10-01", "end"),
        ("range=custom&start=2026-01-01&end=2026-12-01&by=hour", "by=hour"),
    ],
)
def test_bad_parameters_answer_400_naming_them(make_client: Any, query: str, named: str) -> None:
    c = make_client()
    r = c.get(f"/api/v1/models/{RISK}/drift?{query}")
    assert r.status_code == 400 and named in r.json()["error"]
    page = c.get(f"/models/{RISK}?{query}")
    assert page.status_code == 400 and "Bad request" in page.text


class _BrokenData(Data):
    """A data layer whose overview fails with an internal error (fault injection)."""

    def overview(self, models: list[str], q: Any) -> Any:
        raise RuntimeError("internal detail /secret/path that must not reach the client")


def test_an_internal_error_shows_no_stack_trace(make_client: Any, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from mlmon.server.app import create_app

    config = make_client().config
    with TestClient(
        create_app(config, data=_BrokenData(config)),
        raise_server_exceptions=False,
        client=("127.0.0.1", 1),
    ) as c:
        for path in ("/", "/api/v1/overview"):
            r = c.get(path)
            assert r.status_code == 500
            for leak in ("Traceback", "secret", 'File "', "RuntimeError", ".py"):
                assert leak not in r.text, (path, leak)
            assert r.headers["x-frame-options"] == "DENY"
            assert "content-security-policy" in r.headers


def test_openapi_lists_every_api_route(make_client: Any) -> None:
    c = make_client()
    doc = c.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    routes = {r.path for r in c.app.app.routes if r.path.startswith("/api/v1/")} - {
        "/api/v1/openapi.json"
    }
    assert set(doc["paths"]) == routes
    for path, item in doc["paths"].items():
        assert "404" in item["get"]["responses"] or "{model}" not in path
    r = c.get(f"/api/v1/models/{RISK}/percentiles?{RANGE}&q=0.5,2")
    assert r.status_code == 400 and "q must be" in r.json()["error"]
    assert math.isfinite(
        c.get(f"/api/v1/models/{RISK}/percentiles?{RANGE}").json()["rows"][0]["value"]
    )


def test_model_page_draws_every_part_and_the_range_changes_the_figures(make_client: Any) -> None:
    c = make_client()
    page = parse(c.get(f"/models/{RISK}?{RANGE}").text)
    islands = {attrs["id"]: json.loads(text) for attrs, text in page.scripts if attrs.get("id")}
    titles = " | ".join(str(spec.get("title", "")) for spec in islands.values())
    for part in ("each period against the reference", "per period (dashed", "Latency",
                 "Golden", "erformance", "lert"):  # fmt: skip
        assert part in titles, (part, titles)
    assert len(page.chart_divs) >= 6
    one_day = c.get("/api/v1/overview?range=custom&start=2026-10-02&end=2026-10-02").json()
    six_days = c.get(f"/api/v1/overview?{RANGE}").json()
    records = lambda doc: {m["model"]: m["records"] for m in doc["models"]}  # noqa: E731
    assert 0 < records(one_day)[RISK] < records(six_days)[RISK]
    html_one_day = c.get("/?range=custom&start=2026-10-02&end=2026-10-02").text
    assert f"{records(one_day)[RISK]:,}" in html_one_day


def test_preset_ranges_end_at_the_clock_or_at_the_newest_data(make_client: Any) -> None:
    clock = make_client().get("/api/v1/overview?range=7d").json()["models"]
    assert {m["status"] for m in clock} == {"grey"} and all(m["records"] == 0 for m in clock)
    data = make_client(range_anchor="data", stale_after="100000d").get("/api/v1/overview?range=7d")
    rows = data.json()["models"]
    assert all(m["records"] > 0 for m in rows) and not any(m["stale"] for m in rows)
    assert data.json()["end"].startswith("2026-10-0")


def test_the_server_charts_are_valid_vega_lite(server_lake: Path) -> None:
    from mlmon.server.charts import drift_heatmap, method_chart

    drift = Lake(str(server_lake)).drift(RISK, "2026-10-01", "2026-10-07", by="day")
    for chart in (drift_heatmap(drift, "psi"), method_chart(drift, "age")):
        assert chart is not None
        chart.to_dict(validate=True)  # raises on a schema error
    assert drift_heatmap(drift.head(0), "psi") is None and method_chart(drift, "nope") is None


def test_unknown_paths_and_methods_get_the_plain_error_page(make_client: Any) -> None:
    c = make_client()
    for r, status in ((c.get("/no/such/page"), 404), (c.post("/"), 405),
                      (c.get("/api/v1/nothing"), 404)):  # fmt: skip
        assert r.status_code == status
        assert "Traceback" not in r.text and r.headers["x-frame-options"] == "DENY"
    assert c.get("/api/v1/nothing").json()["status"] == 404


def test_hsts_is_sent_only_when_the_server_speaks_tls(make_client: Any) -> None:
    from starlette.testclient import TestClient

    from mlmon.server.app import create_app

    c = make_client()
    assert "strict-transport-security" not in c.get("/healthz").headers
    with TestClient(create_app(c.config, tls=True), client=("127.0.0.1", 1)) as tls:
        assert tls.get("/healthz").headers["strict-transport-security"].startswith("max-age=")


def test_last_data_is_never_in_the_future(tmp_path: Path, server_lake: Path) -> None:
    """A window still open ends ahead of the clock; the overview's last data stops at now."""
    import shutil
    from datetime import UTC, datetime, timedelta

    from starlette.testclient import TestClient

    from mlmon.lake.writer import LakeWriter
    from mlmon.profiles.frame import Window
    from mlmon.server.app import create_app
    from mlmon.server.config import load_config
    from tests.server.conftest import write_config

    lake_dir = tmp_path / "lake"
    shutil.copytree(server_lake, lake_dir)
    lake = Lake(str(lake_dir))
    ref_id = lake.read("profiles", model=RISK)["reference_id"][0]
    reference = lake.reference(ref_id, model=RISK)
    now = datetime.now(UTC).replace(microsecond=0)
    window = Window(
        now - timedelta(hours=1), now + timedelta(hours=3), None, reference.empty_window()
    )
    LakeWriter(str(lake_dir), collector_id="open").write_window(
        RISK, window, reference, part="open"
    )
    config = load_config(write_config(tmp_path / "cfg", lake_dir, {"mode": "none"}), env={})
    with TestClient(create_app(config), client=("127.0.0.1", 50000)) as c:
        rows = {m["model"]: m for m in c.get(f"/api/v1/overview?{RANGE}").json()["models"]}
    last = datetime.fromisoformat(rows[RISK]["last_data"])
    assert now - timedelta(minutes=5) <= last <= datetime.now(UTC)


def test_overview_version_filter_gives_that_versions_figures(
    make_client: Any, server_lake: Path
) -> None:
    from mlmon.reports.context import p_value_methods

    c = make_client()
    lake = Lake(str(server_lake))
    profiles = lake.read("profiles", model=RISK, start="2026-10-01", end="2026-10-08")
    versions = sorted(set(profiles["model_version"].drop_nulls().to_list()))
    assert len(versions) >= 2  # the fixture's risk model reports two versions
    every = {m["model"]: m for m in c.get(f"/api/v1/overview?{RANGE}").json()["models"]}
    total = 0
    for v in versions:
        rows = {
            m["model"]: m for m in c.get(f"/api/v1/overview?{RANGE}&version={v}").json()["models"]
        }
        mine = profiles.filter(pl.col("model_version") == v)
        records = int(mine.unique(["window_start", "collector_id"])["rows"].sum())
        assert rows[RISK]["records"] == records
        total += records
        drift = lake.drift(RISK, "2026-10-01", "2026-10-08", by="all", version=v)
        flagged = drift.filter(pl.col("drifted") & ~pl.col("method").is_in(list(p_value_methods())))
        assert rows[RISK]["drifted"] == sorted(set(flagged["feature"].to_list()))
    assert total == every[RISK]["records"]
    none = c.get(f"/api/v1/overview?{RANGE}&version=no-such-version").json()["models"]
    assert {m["status"] for m in none} == {"grey"} and all(m["records"] == 0 for m in none)
    assert all("no-such-version has no data" in m["reasons"][0] for m in none)
    html = c.get(f"/?{RANGE}&version={versions[0]}").text
    assert f"version {versions[0]} only" in html
    assert all(f'<option value="{v}"' in html for v in versions)


def test_status_names_the_alerts_still_open_from_before_the_range(
    make_client: Any, server_lake: Path
) -> None:
    """An alert raised before the range that nothing resolved is named with its day, and a
    range that alone is OK is not shown OK while it is open."""
    import dataclasses
    from datetime import UTC, datetime

    lake = Lake(str(server_lake))
    alerts = lake.read("alerts", model=RISK)
    assert alerts.height and set(alerts["state"]) == {"firing"}  # the fixture resolves none
    day = alerts["window_start"].min()
    after = "range=custom&start=2026-10-05&end=2026-10-06"  # after every alert's window
    c = make_client()
    row = {m["model"]: m for m in c.get(f"/api/v1/overview?{after}").json()["models"]}[RISK]
    still = [r for r in row["reasons"] if "still open from" in r]
    assert still and f"still open from {day:%Y-%m-%d}" in still[0] and row["status"] != "green"
    assert set(row["firing"]) and all(f.split(" (")[1][:-1] in still[0] for f in row["firing"])
    page = c.get(f"/models/{RISK}?{after}").text
    assert f"still open from {day:%Y-%m-%d}" in page
    assert (
        f"No alert was raised in this range. {alerts.height} raised before it are still open"
        in page
    )
    before = {m["model"]: m for m in c.get("/api/v1/overview?range=custom&start=2026-10-01&end=2026-10-02").json()["models"]}  # fmt: skip
    assert (
        not any("still open" in r for r in before[RISK]["reasons"]) and not before[RISK]["firing"]
    )
    # a range whose own figures are OK: "Watch" while the alerts are open, and says why
    data = Data(c.config)  # type: ignore[attr-defined]
    from mlmon.server.data import parse_query

    q = parse_query(
        {"range": "custom", "start": "2026-10-05", "end": "2026-10-06"}, datetime.now(UTC)
    )
    ok = dataclasses.replace(data.section(RISK, q), status="green",
                             status_reasons=["no drift, all golden checks passed"])  # fmt: skip
    status, reasons = data.status(ok, q)
    assert status == "amber"
    assert reasons[0] == "no drift, all golden checks passed in this range"
    assert reasons[1].startswith(f"{alerts.height} alerts still open from {day:%Y-%m-%d}")


def test_records_and_versions_from_day_rollups_equal_the_windows(server_lake: Path) -> None:
    from datetime import UTC, datetime

    from polars.testing import assert_frame_equal

    from mlmon.reports.context import window_counts
    from mlmon.server.counts import rollup_counts

    lake = Lake(str(server_lake))
    assert lake.files("profiles", model=RISK, rollup=True) != lake.files("profiles", model=RISK)
    for start, end in ((datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 8, tzinfo=UTC)),
                       (datetime(2026, 10, 2, 7, tzinfo=UTC), datetime(2026, 10, 6, 13, tzinfo=UTC))):  # fmt: skip
        for model in (RISK, SEPSIS):
            windows = window_counts(lake, model, start, end).sort("day", "version", nulls_last=True)
            assert windows.height and windows["count"].sum() > 0
            assert_frame_equal(rollup_counts(lake, model, start, end), windows)


def test_the_overviews_lighter_section_has_the_reports_status_and_figures(
    server_lake: Path,
) -> None:
    """What the server leaves out (per-period parts, drift's p-values) changes no figure it shows."""
    from datetime import UTC, datetime

    from mlmon.reports.context import DETAIL_PARTS, collect

    lake = Lake(str(server_lake))
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 8, tzinfo=UTC)
    for model in (RISK, SEPSIS):
        full = collect(lake, [model], start, end).models[0]
        light = collect(lake, [model], start, end, skip=DETAIL_PARTS).models[0]
        assert (light.status, light.status_reasons) == (full.status, full.status_reasons)
        assert light.records == full.records and light.golden_overall == full.golden_overall
        assert light.latency_overall == full.latency_overall
        assert light.multivariate == full.multivariate
        shown = ["feature", "method", "value", "threshold", "drifted", "count"]
        assert light.drift.select(shown).equals(full.drift.select(shown))
        assert light.drift["p_value"].null_count() == light.drift.height
        assert full.drift["p_value"].drop_nulls().len() > 0  # the report keeps them
        assert not light.distributions and full.distributions
        assert not light.null_rates.height and full.null_rates.height
    with pytest.raises(ValueError, match="skip: charts is not one of"):
        collect(lake, [RISK], start, end, skip=frozenset({"charts"}))


def test_model_page_says_when_response_times_are_the_golden_probes(make_client: Any) -> None:
    """With no logged requests in the range the latency chart shows the golden probes' times
    (the overview's response time, which is the logged requests', is then n/a): the page says
    so, and says nothing when the chart is the logged requests'."""
    c = make_client()
    probes_only = c.get(f"/models/{RISK}?range=custom&start=2026-10-07&end=2026-10-07").text
    logged = c.get(f"/models/{RISK}?{RANGE}").text
    assert "Latency percentiles" in probes_only and "Latency percentiles" in logged
    assert "From the golden probes" in probes_only
    assert "From the golden probes" not in logged
    overview = c.get("/api/v1/overview?range=custom&start=2026-10-07&end=2026-10-07").json()
    [risk] = [m for m in overview["models"] if m["model"] == RISK]
    assert risk["latency_p95"] is None
