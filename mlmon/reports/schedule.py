"""Scheduled reports: ``mlmon schedule run --config reports.yaml``.

Example ``reports.yaml``::

    lake: {uri: s3://hospital-mlmon/lake}
    output: s3://hospital-mlmon/reports      # or a local folder
    schedules:
      - {name: monthly-board-pdf, cron: "0 6 1 * *", period: previous_month, models: [risk-model], formats: [pdf]}
      - {name: weekly-ml-html, cron: "0 7 * * 1", period: previous_week, models: [risk-model], formats: [html]}

Each run writes ``{output}/{name}/{period}/`` (the rendered files, the executed
notebook and the context) and updates ``{output}/index.json`` and
``index.html``, a small listing of every report written. Relative local paths
(``lake.uri``, ``output``) are taken from the folder of ``reports.yaml``. Only
files mlmon wrote are replaced (see :mod:`mlmon.lake.owned`): an ``index.html``
or a report of the same name that someone else put there stops the run, named.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlmon.errors import ConfigError
from mlmon.lake.owned import check_free, record_owned
from mlmon.lake.storage import open_storage, put_object

__all__ = [
    "ReportSchedule",
    "ScheduleConfig",
    "load_schedule_config",
    "period_for",
    "run_due",
    "run_forever",
]

log = logging.getLogger("mlmon.reports.schedule")


class ReportSchedule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    cron: str
    period: Literal["previous_month", "previous_week", "previous_day"] = "previous_month"
    models: tuple[str, ...] = Field(min_length=1)
    formats: tuple[Literal["pdf", "html"], ...] = ("pdf", "html")
    title: str = "Model monitoring report"

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f'"{v}" is not a cron expression like "0 6 1 * *"')
        return v


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lake: dict[str, Any]
    output: str
    schedules: tuple[ReportSchedule, ...] = Field(min_length=1)


def load_schedule_config(path: str | Path) -> ScheduleConfig:
    """Read and validate ``reports.yaml``; relative local paths are resolved against its folder.

    Raises
    ------
    ConfigError
        Naming the file, the field and what is wrong.
    """
    from mlmon.reports.runner import resolve_location

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read the schedule config: {exc}") from exc
    try:
        cfg = ScheduleConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{p}: {'.'.join(str(x) for x in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from exc
    if not isinstance(cfg.lake.get("uri"), str) or not cfg.lake["uri"]:
        raise ConfigError(
            f"{p}: lake.uri is missing; give the lake, e.g. lake: {{uri: s3://bucket/lake}}"
        )
    base = p.resolve().parent
    return cfg.model_copy(
        update={
            "lake": {**cfg.lake, "uri": resolve_location(cfg.lake["uri"], base)},
            "output": resolve_location(cfg.output, base),
        }
    )


def period_for(kind: str, now: datetime) -> tuple[datetime, datetime, str]:
    """The complete period before ``now``: (start, end, label)."""
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if kind == "previous_day":
        return day - timedelta(days=1), day, f"{day - timedelta(days=1):%Y-%m-%d}"
    if kind == "previous_week":
        monday = day - timedelta(days=day.weekday())
        start = monday - timedelta(days=7)
        iso = start.isocalendar()
        return start, monday, f"{iso.year}-W{iso.week:02d}"
    first = datetime(now.year, now.month, 1, tzinfo=UTC)
    prev = datetime(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1, tzinfo=UTC)
    return prev, first, f"{prev:%Y-%m}"


@dataclass
class _Index:
    output: str
    storage_options: dict[str, Any]

    NAMES = ("index.json", "index.html")

    def _read(self) -> list[dict[str, Any]]:
        st = open_storage(self.output, self.storage_options)
        try:
            with st.fs.open(st.path("index.json"), "rb") as fh:
                return list(json.loads(fh.read()))
        except FileNotFoundError:
            return []

    def add(self, entry: dict[str, Any]) -> None:
        entries = [
            e
            for e in self._read()
            if (e["schedule"], e["period"]) != (entry["schedule"], entry["period"])
        ]
        entries.append(entry)
        entries.sort(key=lambda e: (e["period_start"], e["schedule"]), reverse=True)
        st = open_storage(self.output, self.storage_options)
        put_object(st, st.path("index.json"), json.dumps(entries, indent=1).encode())
        rows = "".join(
            f"<tr><td>{html.escape(e['schedule'])}</td><td>{html.escape(e['period'])}</td>"
            f"<td>{', '.join(html.escape(m) for m in e['models'])}</td><td>"
            + " ".join(
                f'<a href="{html.escape(f)}">{html.escape(k)}</a>'
                for k, f in e["files"].items()
                if k in ("pdf", "html")
            )
            + f"</td><td>{html.escape(e['generated_at'])}</td></tr>"
            for e in entries
        )
        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>mlmon reports</title></head><body>"
                "<h1>Monitoring reports</h1><table border='1' cellpadding='4'><tr><th>Schedule</th><th>Period</th>"
                f"<th>Models</th><th>Files</th><th>Generated</th></tr>{rows}</table></body></html>")  # fmt: skip
        put_object(st, st.path("index.html"), page.encode())


def run_schedule(cfg: ScheduleConfig, sched: ReportSchedule, now: datetime) -> dict[str, Any]:
    """Render one schedule's report for the last complete period and index it."""
    from mlmon.reports.runner import run_report

    start, end, label = period_for(sched.period, now)
    opts = dict(cfg.lake.get("storage_options") or {})
    index_opts = opts if cfg.output.startswith("s3://") else {}
    index = open_storage(cfg.output, index_opts)
    check_free(
        index,
        _Index.NAMES,
        hint="Choose another output folder (output: in the schedule config) or move those entries away.",
    )
    folder = cfg.output.rstrip("/") + f"/{sched.name}/{label}"
    done = run_report(cfg.lake["uri"], list(sched.models), start, end, folder, formats=sched.formats,
                      title=sched.title, storage_options=opts or None, stem=f"{sched.name}_{label}")  # fmt: skip
    rel = {k: f"{sched.name}/{label}/{Path(v).name}" for k, v in done.items()}
    entry = {"schedule": sched.name, "period": label, "period_start": start.isoformat(), "models": list(sched.models),
             "files": rel, "generated_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    record_owned(index, _Index.NAMES, by="mlmon schedule run")
    _Index(cfg.output, index_opts).add(entry)
    log.info("report written", extra={"schedule": sched.name, "period": label})
    return entry


def run_due(
    cfg: ScheduleConfig, now: datetime, *, names: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run the given schedules (all by default) for their last complete period."""
    return [run_schedule(cfg, s, now) for s in cfg.schedules if names is None or s.name in names]


def run_forever(cfg: ScheduleConfig, stop: threading.Event, clock: Any = None) -> None:
    """Run each schedule at its cron times until ``stop`` is set."""
    from croniter import croniter

    clock = clock or (lambda: datetime.now(UTC))
    due = {s.name: croniter(s.cron, clock()).get_next(datetime) for s in cfg.schedules}
    while not stop.is_set():
        now = clock()
        for s in cfg.schedules:
            if due[s.name] <= now:
                try:
                    run_schedule(cfg, s, now)
                except Exception:
                    log.exception("scheduled report failed", extra={"schedule": s.name})
                due[s.name] = croniter(s.cron, now).get_next(datetime)
        stop.wait(max(1.0, min((d - clock()).total_seconds() for d in due.values())))
