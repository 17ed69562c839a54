"""The Starlette application: pages, ``/api/v1`` and the static script; :func:`serve` runs it.

Why Starlette rather than FastAPI: the server needs a handful of explicit GET routes, an
ASGI middleware and jinja2 pages. Starlette is small, already installed with the test
tools, and couples to nothing else; FastAPI would add pydantic models and dependency
injection for an API whose answers are plain polars frames, and generate an OpenAPI
schema we would still have to correct. The schema is built here from the route table
(:mod:`mlmon.server.api`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import logging
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import polars as pl

from mlmon._extras import require
from mlmon.errors import ConfigError, LakeError, MlmonError, UnknownNameError
from mlmon.server.config import ServerConfig
from mlmon.server.data import RANGES, Data, Query, parse_query
from mlmon.server.reports import CONTENT_TYPES, REPORT_CSP, ReportIndex

__all__ = ["AlertDelivery", "RequestAudit", "create_app", "serve"]

log = logging.getLogger("mlmon.server")


class RequestAudit:
    """Every request as one record of the hash-chained audit log (actor: the server).

    The record's ``target`` is the path; ``outcome`` the answer's status code; the
    details name the principal, the HTTP method and the client address. Segments are
    flushed to ``{audit uri}/audit/{actor}/`` every ``flush_every`` and at shutdown.
    """

    def __init__(self, config: ServerConfig) -> None:
        from mlmon.governance.audit import AuditLog

        a = config.audit
        self.log = AuditLog(
            a.uri or config.lake,
            a.state_dir,
            a.actor,
            echo=False,
            storage_options=dict(config.storage_options) or None,
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._every = a.flush_every.total_seconds()
        self._thread: threading.Thread | None = None

    def __call__(self, who: str, method: str, path: str, status: int, client: str) -> None:
        with self._lock:
            self.log.record(
                f"http_{method.lower()}", path[:512], str(status), principal=who, client=client
            )

    def flush(self) -> None:
        with self._lock:
            try:
                self.log.flush()
            except (MlmonError, OSError) as exc:  # kept on the state volume; retried next time
                log.warning("audit segment not written (%s); retrying at the next flush", exc)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self._every):
                self.flush()

        self._thread = threading.Thread(target=loop, name="mlmon-audit-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


class AlertDelivery:
    """``mlmon alerts run`` inside the server (``alerts: {deliver: true}``), in a thread.

    The loop is :func:`mlmon.alerting.deliver.run`, which reads the lake and never imports
    the edge. Its state folder's lock keeps a CronJob and the server from delivering at once:
    the one that does not hold it logs each refused pass and tries again at the next.
    """

    def __init__(self, alerts_config: str | None) -> None:
        from mlmon.alerting import load_config as load_alerts_config

        if alerts_config is None:
            raise ConfigError("alerts.deliver: needs alerts.config, the alerts.yaml to deliver")
        self.config = load_alerts_config(alerts_config)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from mlmon.alerting.deliver import run

        self._thread = threading.Thread(
            target=run, args=(self.config, self._stop), name="mlmon-alerts-delivery", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop between sends (what is queued stays in the outbox for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def _minute() -> int:
    return int(time.time() // 60)


def _status_word(status: str) -> str:
    return {"red": "Act now", "amber": "Watch", "green": "OK", "grey": "No data"}.get(
        status, status
    )


def create_app(config: ServerConfig, *, data: Data | None = None, tls: bool = False) -> Any:
    """The ASGI application for ``config`` (Starlette, wrapped by :class:`~mlmon.server.gate.Gate`)."""
    require("starlette", "server")
    jinja2 = require("jinja2", "server")
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from mlmon.reports.charts import (
        distribution_chart,
        section_charts,
    )
    from mlmon.reports.context import DEFAULT_DATA_HANDLING, method_name, methods_from_registry
    from mlmon.server import api
    from mlmon.server.assets import script_bundle, static_text
    from mlmon.server.charts import drift_heatmap, method_chart, spec_island
    from mlmon.server.gate import Gate, error_body
    from mlmon.server.versions import registry_aliases

    data = data or Data(config)
    from mlmon.server.alert_forms import MARKER as ALERT_MARKER
    from mlmon.server.alert_forms import AlertForms

    alert_forms: AlertForms | None = None  # set below, once the page environment exists
    reports = (
        ReportIndex(config.reports, dict(config.storage_options), config.cache_seconds)
        if config.reports
        else None
    )
    audit = RequestAudit(config) if config.audit.enabled else None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlmon.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # the package's templates do not change while it runs (no stat per page)
    )
    env.globals.update(status_word=_status_word, method_name=method_name, ranges=list(RANGES))
    env.filters["when"] = lambda d: "never" if d is None else f"{d:%Y-%m-%d %H:%M} UTC"
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    env.filters["num"] = lambda v, f=".3g": "n/a" if v is None else format(v, f)

    def principal(request: Request) -> Any:
        return request.scope["state"]["principal"]

    def visible_models(request: Request) -> list[str]:
        return principal(request).visible(data.models())

    def model_of(request: Request) -> str:
        name = request.path_params["model"]
        if not principal(request).can_see(name) or name not in data.models():
            raise HTTPException(404, "There is no model of that name you may see.")
        return str(name)

    if config.alerts_config:  # the silence and acknowledge buttons (mlmon.server.alert_forms)
        alert_forms = AlertForms(
            config.alerts_config, config.operator_groups, principal, model_of, env, tls=tls
        )

    def query(request: Request, models: list[str]) -> Query:
        try:
            return parse_query(dict(request.query_params), data.now(models))
        except ConfigError as exc:
            raise HTTPException(400, str(exc)) from exc

    def render(name: str, request: Request, q: Query | None, **ctx: Any) -> str:
        islands: list[tuple[str, str]] = []

        def chart(c: Any) -> str:
            if c is None:
                return ""
            island_id = f"spec-{len(islands) + 1}"
            islands.append((island_id, spec_island(c)))
            return island_id

        ctx.update(
            request=request,
            q=q,
            chart=chart,
            islands=islands,
            user=principal(request),
            link=lambda path, **kw: path + ("?" + urlencode(q.params(**kw)) if q else ""),
            now=datetime.now().astimezone(),
        )
        return env.get_template(name).render(**ctx)

    def respond(body: str) -> HTMLResponse:
        note = data.note
        if note:  # the lake could not be listed lately: say the figures may be old
            body = body.replace(
                "<main>", f'<main>\n<p class="stale-note" role="status">{html.escape(note)}</p>', 1
            )
        return HTMLResponse(body)

    def page(name: str, request: Request, q: Query | None, **ctx: Any) -> HTMLResponse:
        return respond(render(name, request, q, **ctx))

    # -- pages ---------------------------------------------------------------------------
    def overview(request: Request) -> Response:
        models = visible_models(request)
        q = query(request, models)
        # the whole page, per caller and query, until any model's objects change; rebuilt
        # each minute all the same, because "stale" depends on the clock
        key = ("page", None, "overview", q, principal(request).name, tuple(models), _minute())
        return respond(data.cached(key, lambda: overview_body(request, models, q)))

    def overview_body(request: Request, models: list[str], q: Query) -> str:
        rows = data.overview(models, q)  # first: with worker processes, all models at once
        every = dataclasses.replace(q, version=None)
        seen = {v for m in models for v in data.versions(m, every)["version"].to_list() if v}
        if q.version:
            seen.add(q.version)
        return render("overview.html", request, q, rows=rows, versions=sorted(seen))

    def model_page(request: Request) -> Response:
        model = model_of(request)
        q = query(request, [model])
        method = request.query_params.get("method")
        key = ("page", model, "model", q, method, principal(request).name)
        body = data.cached(key, lambda: model_body(request, model, q))
        if alert_forms is None:  # the alert panel is per request: never in the cached page
            return respond(body.replace(ALERT_MARKER, ""))
        body, cookie = alert_forms.panel(request, model, body)
        answer = respond(body)
        if cookie:
            alert_forms.set_cookie(answer, cookie)
        return answer

    def model_body(request: Request, model: str, q: Query) -> str:
        # drift over time of one measure: the one asked for, by default the report's choice
        # (the measure that flags the most features), so the heatmap and the drift-over-time
        # chart show the same measure
        fig = data.model_page(model, q, request.query_params.get("method") or None)
        section, present, chosen = fig.section, fig.methods, fig.chosen
        methods = methods_from_registry()
        drift = section.drift_over_time
        drawn = section
        if chosen is not None and present:
            # the section's charts drawn once, drift over time for the chosen method only
            # (the other charts do not look at drift)
            drawn = dataclasses.replace(
                section,
                drift=section.drift.filter(pl.col("method") == chosen),
                drift_over_time=drift.filter(pl.col("method") == chosen),
            )
        charts = section_charts(drawn, methods, q.start, q.end)
        heatmap = drift_heatmap(drift, chosen) if chosen else None
        return render(
            "model.html",
            request,
            q,
            model=model,
            s=section,
            charts=charts,
            heatmap=heatmap,
            methods=present,
            chosen=chosen,
            quality=data.data_quality(model, q).to_dicts(),
            versions=data.versions(model, q).to_dicts(),
            open_alerts=data.open_alerts(model, q),
            registry=data.cached(("registry", model), lambda: registry_aliases(data.lake, model)),
            features=fig.features,
        )

    def feature_page(request: Request) -> Response:
        model = model_of(request)
        q = query(request, [model])
        feature = request.path_params["feature"]
        drift = data.drift(model, q, features=[feature])
        if not drift.height and feature not in data.data_quality(model, q)["feature"].to_list():
            raise HTTPException(404, "This model has no feature of that name in the range.")
        dist = data.distribution(model, q, feature)

        return page(
            "feature.html",
            request,
            q,
            model=model,
            feature=feature,
            dist=distribution_chart(dist, width=420) if dist is not None else None,
            methods_chart=method_chart(drift, feature),
            whole=data.drift_whole(model, q, feature).to_dicts(),
        )

    def about(request: Request) -> Response:
        return page(
            "about.html",
            request,
            None,
            handling=DEFAULT_DATA_HANDLING,
            methods=methods_from_registry(),
        )

    def reports_page(request: Request) -> Response:
        can_see = principal(request).can_see
        return page(
            "reports.html",
            request,
            None,
            configured=reports is not None,
            reports=reports.visible(can_see) if reports is not None else [],
        )

    def report_file(request: Request) -> Response:
        path = str(request.path_params["path"])
        found = reports.find(path, principal(request).can_see) if reports is not None else None
        if reports is None or found is None:  # another team's report: as one that does not exist
            raise HTTPException(404, "There is no report of that name you may see.")
        fmt, rel = found
        name = rel.rsplit("/", 1)[-1]
        headers = {"content-disposition": f'inline; filename="{name}"'}
        if fmt == "html":
            headers["content-security-policy"] = REPORT_CSP
        return Response(reports.read(rel), media_type=CONTENT_TYPES[fmt], headers=headers)

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    def script(request: Request) -> Response:
        body, digest = script_bundle()
        if request.headers.get("if-none-match") == f'"{digest}"':
            return Response(status_code=304, headers={"etag": f'"{digest}"'})
        return Response(
            body,
            media_type="text/javascript; charset=utf-8",
            headers={"etag": f'"{digest}"', "cache-control": "public, max-age=3600"},
        )

    def css(request: Request) -> Response:
        return Response(
            static_text("mlmon.css"),
            media_type="text/css; charset=utf-8",
            headers={"cache-control": "public, max-age=3600"},
        )

    def favicon(request: Request) -> Response:
        return Response(
            static_text("favicon.svg"),
            media_type="image/svg+xml",
            headers={"cache-control": "public, max-age=86400"},
        )

    # -- errors: a page or JSON, never a stack trace --------------------------------------
    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        body, ctype = error_body(
            exc.status_code, str(exc.detail), request.url.path.startswith("/api/")
        )
        return Response(body, status_code=exc.status_code, media_type=ctype.decode())

    def bad_query(request: Request, exc: Exception) -> Response:
        return http_error(request, HTTPException(400, str(exc)))

    def lake_error(request: Request, exc: Exception) -> Response:
        log.error("lake error on %s: %s", request.url.path, exc)
        return http_error(
            request,
            HTTPException(500, "The lake could not be read; the error is in the server log."),
        )

    routes = [
        Route("/", overview),
        Route("/models/{model}", model_page),
        Route("/models/{model}/features/{feature}", feature_page),
        Route("/about", about),
        Route("/reports", reports_page),
        Route("/reports/files/{path:path}", report_file),
        Route("/healthz", healthz),
        Route("/static/mlmon.js", script),
        Route("/static/mlmon.css", css),
        Route("/static/favicon.svg", favicon),
        Route("/favicon.ico", favicon),
        *api.routes(data, visible_models, model_of, query, alerts=bool(config.alerts_config)),
    ]
    from mlmon.server.versions import versions_route  # issue 22: the version page

    routes.insert(3, versions_route(data, model_of, page))
    if config.alerts_config:  # silences and acknowledgements (docs/alerts.md)
        from mlmon.server.alerts import routes as alert_routes

        routes += alert_routes(config.alerts_config, config.operator_groups, principal, data.models)
        routes += alert_forms.routes() if alert_forms is not None else []

    delivery = AlertDelivery(config.alerts_config) if config.deliver_alerts else None

    def prepare() -> None:
        # before the port answers: otherwise the first model pages of a cold server all wait
        # for the chart library's import and compile the templates (0.4 s of one core)
        require("altair", "server")
        for name in env.list_templates(extensions=["html"]):
            env.get_template(name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if audit is not None:
            audit.start()
        if delivery is not None:
            delivery.start()
        # first: the compute workers import (polars, the analysis) on the other core while
        # this process imports the chart library and lists the lake
        data.start_workers()
        await asyncio.to_thread(prepare)  # the chart library and the templates, once
        await asyncio.to_thread(data.start)  # the first listing of the lake, then in the background
        try:
            yield
        finally:
            if delivery is not None:
                await asyncio.to_thread(delivery.stop)
            data.stop()
            if audit is not None:
                audit.stop()

    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: http_error,
            ConfigError: bad_query,
            UnknownNameError: bad_query,
            LakeError: lake_error,
        },
        lifespan=lifespan,
    )
    app.state.data = data
    app.state.audit = audit
    return Gate(app, config, audit, tls=tls)


def fast_charts() -> None:
    """Chart objects not checked against the Vega-Lite schema as they are built (altair's
    debug mode off): a third of a model page's rendering time. The specs are the same (the
    check only raises); the tests build every chart with the check on. For the server's own
    process only."""
    from altair.utils import schemapi

    schemapi.disable_debug_mode()


def serve(config: ServerConfig, *, tls_cert: str | None = None, tls_key: str | None = None) -> None:
    """Run the server with uvicorn until SIGTERM / Ctrl-C (the audit log is flushed at exit)."""
    uvicorn = require("uvicorn", "server")
    from mlmon.server.assets import script_bundle

    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    app = create_app(config, tls=bool(tls_cert))
    fast_charts()
    threading.Thread(target=script_bundle, name="mlmon-bundle", daemon=True).start()
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        server_header=False,
        proxy_headers=False,
    )
