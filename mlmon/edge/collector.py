"""The edge collector: scheduled golden checks, stream reads and batch triggers into the lake.

One :class:`Collector` per process, built from a validated
:class:`~mlmon.edge.config.EdgeConfig`. :meth:`Collector.run_once` runs every
task once (``mlmon edge once``, for cron or a Kubernetes CronJob);
:meth:`Collector.run` schedules them until stopped (``mlmon edge run``).
Trouble at an endpoint, a stream or the bucket becomes metrics, log lines,
``/healthz`` reasons and alert rows, never a crash; alerts are written when
they start and when they clear (:mod:`mlmon.edge.alerts`). A task's
``mlmon_edge_last_success_timestamp_seconds`` advances only when it ran
without error, every golden probe got an answer, and everything it wrote is in
the lake: with ``edge run``'s write-behind spool the gauge advances (to the time
the task ended) once the background flush has sent the task's last object. Setting the ``stop`` event (SIGTERM, see
:mod:`mlmon.edge.lifecycle`) abandons probes and batch waits in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import polars as pl

from mlmon.analysis.thresholds import Thresholds
from mlmon.edge.alerts import AlertState, Condition, drift_conditions, golden_conditions
from mlmon.edge.config import EdgeConfig, ModelConfig, Schedule, open_state_dir
from mlmon.edge.observe import EdgeMetrics, MetricsServer
from mlmon.edge.samples import attach_sampler, check_samples
from mlmon.edge.spool import Breaker, Spool, SpoolFull
from mlmon.edge.versions import looks_identifying
from mlmon.errors import ConfigError, EdgeError, MlmonError
from mlmon.lake.freetext import VersionGuard
from mlmon.lake.references import load_reference
from mlmon.lake.storage import Storage, bounded_s3_options, open_storage, sse_of
from mlmon.lake.writer import LakeWriter, WriteRecord
from mlmon.profiles.frame import LATENCY_EDGES_MS, Reference, Window, WindowProfile
from mlmon.profiles.kinds import NumericProfile

__all__ = ["Collector", "CycleReport"]

log = logging.getLogger("mlmon.edge")
T = TypeVar("T")
_PROBLEM_CHARS = 300
#: A running edge writes an audit ``heartbeat`` record after this long without one, so
#: ``mlmon audit verify --max-age`` tells a quiet edge from a removed newest segment.
AUDIT_HEARTBEAT = timedelta(hours=1)
FLUSH_STEP = 50
"""Spooled objects sent per step of the background flush (``edge run``) before it looks again."""


def floor_time(ts: datetime, step: timedelta) -> datetime:
    """Start of the window of length ``step`` (aligned to the UNIX epoch) holding ``ts``."""
    s = step.total_seconds()
    return datetime.fromtimestamp((ts.timestamp() // s) * s, UTC)


def _stamp(ts: datetime) -> str:
    return ts.strftime("%Y%m%dT%H%M%S") + f"{ts.microsecond // 1000:03d}Z"


@dataclass
class CycleReport:
    """What one cycle did, for logs, tests, the demo and ``edge once``'s exit code.

    ``golden_failed`` names the models whose golden checks fell below their
    ``min_pass_rate`` or got no answer; ``errors`` the tasks that failed;
    ``spooled_objects`` counts the objects still waiting in the spool after the
    cycle's last flush (the lake did not take them); ``stopped`` is true when
    the ``stop`` event ended the cycle before every task ran.
    """

    golden_checks: int = 0
    golden_passed: int = 0
    records: int = 0
    windows: int = 0
    objects: int = 0
    batch_runs: int = 0
    errors: list[str] = field(default_factory=list)
    golden_failed: list[str] = field(default_factory=list)
    spooled_objects: int = 0
    stopped: bool = False


class _Stopped(Exception):
    """The stop event was set while a task waited on the network; the wait was abandoned."""


class _InFlight(Exception):
    """A batch job is still running: its outcome is recorded on a later run of the task."""


TaskRun = Callable[[datetime, CycleReport], str | None]
"""A task: does its work; returns None, or what kept it from succeeding (for /healthz)."""


@dataclass
class _Task:
    model: str
    kind: str
    schedule: Schedule
    run: TaskRun
    next_due: datetime | None = None

    def advance(self, now: datetime) -> None:
        interval = self.schedule.interval
        if interval is not None:
            self.next_due = now + interval
        else:
            from croniter import croniter

            self.next_due = croniter(self.schedule.spec, now).get_next(datetime)


class _BatchWait:
    """One batch job's trigger-and-wait, on its own daemon thread beside the scheduler.

    The thread only talks to the job service or API server; the outcome is
    recorded (audit, metrics, /healthz) by the scheduler's thread.
    """

    def __init__(self, fn: Callable[[threading.Event], Any], stop: threading.Event) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: Exception | None = None  # a bug in the adapter: recorded as outcome error
        self.started = datetime.now(UTC)

        def target() -> None:
            try:
                self.result = fn(stop)
            except Exception as exc:  # handed to the scheduler's thread
                self.error = exc
            finally:
                self.done.set()

        threading.Thread(target=target, name="mlmon-batch", daemon=True).start()


@dataclass
class _BatchTask(_Task):
    """The batch task: starts a job, then is due every ``poll`` until the job has ended.

    The next trigger follows the schedule from the time the job was started.
    """

    wait: _BatchWait | None = None
    poll: timedelta = timedelta(seconds=5)
    target: str = ""  # what the adapter triggers, for the record of an abandoned wait
    after: datetime | None = None  # the next trigger by the schedule, while a job runs

    def advance(self, now: datetime) -> None:
        if self.wait is not None:  # a job runs: look again soon
            if self.after is None:
                super().advance(now)
                self.after = self.next_due
            self.next_due = now + self.poll
        elif self.after is not None:
            self.next_due, self.after = self.after, None
        else:
            super().advance(now)

    def finish(self, stop: threading.Event) -> bool:
        """Wait for the running job (``edge once``); False when ``stop`` ended the wait."""
        while self.wait is not None and not self.wait.done.wait(0.1):
            if stop.is_set():
                return False
        return True


class Collector:
    """The edge collector for every model in ``config``."""

    def __init__(self, config: EdgeConfig, *, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))
        self.metrics = EdgeMetrics()
        self.secret = config.hmac_secret()
        # model versions from logs, answers and CloudEvents: checked or HMACed (mlmon.lake.freetext)
        self.versions = VersionGuard(self.secret, identifying=looks_identifying)
        state = open_state_dir(config)  # a file or a read-only folder: ConfigError, at start
        self.state_dir = state
        lake = config.lake
        opts = dict(lake.storage_options)
        if lake.sse_kms_key_id:
            opts["sse_kms_key_id"] = lake.sse_kms_key_id
        if lake.uri.startswith(("s3://", "s3a://")):  # every PUT bounded in time (docs/security.md)
            opts = bounded_s3_options(
                opts,
                connect_timeout_s=lake.connect_timeout.total_seconds(),
                read_timeout_s=lake.read_timeout.total_seconds(),
                attempts=lake.attempts,
            )
        self.storage = open_storage(lake.uri, opts)
        breaker = Breaker(
            retry_min_s=lake.retry_min.total_seconds(), retry_max_s=lake.retry_max.total_seconds()
        )
        self.spool = Spool(
            state / "spool",
            max_bytes=config.buffer_max_bytes,
            breaker=breaker,
            on_response=self._check_sse,
        )
        self._sse_checked = False  # the first PUT answer's SSE header was looked at
        self._unencrypted: list[str] = []  # objects the bucket stored without SSE (at most 1 kept)
        self._unencrypted_n = 0
        self.alerts = AlertState(state / "alerts.json")
        self._stop = threading.Event()  # replaced by the event given to run() / run_once()
        self._spooled = 0  # objects that went to the spool instead of the lake, ever
        # (spool sequence number, model, task, time): successes whose objects still wait to be sent
        self._pending_success: list[tuple[int, str, str, float]] = []
        self._success_lock = threading.Lock()  # the flush thread settles them too
        self._lake_error: str | None = None
        self._on_write_hooks: list[Callable[[WriteRecord], None]] = []
        self.writer = LakeWriter(
            self.storage,
            collector_id=config.collector_id,
            k_anonymity=config.k_anonymity,
            put=self._put,
            on_write=self._written,
            day_rollups=state / "rollups",
            versions=self.versions,
        )
        self.audit = None
        if config.audit:
            from mlmon.governance.audit import AuditLog

            key = None
            if config.audit_signing_key is not None:
                from cryptography.hazmat.primitives.serialization import load_pem_private_key

                from mlmon.edge.config import _read_secret

                key = load_pem_private_key(
                    _read_secret(config.audit_signing_key, "audit_signing_key"), None
                )
            self.audit = AuditLog(
                self.storage,
                state / "audit",
                config.collector_id,
                signing_key=key,
                put=self._put,
            )
            self.audit.record("config_loaded", config.source, sha256=config.sha256)
        self.references: dict[str, Reference] = {}
        for m in config.models:
            try:
                self.references[m.name] = load_reference(m.reference)
            except (OSError, MlmonError) as exc:
                raise type(exc)(f"{config.source}: models[{m.name}].reference: {exc}") from exc
        self.drift_thresholds: dict[str, Thresholds] = {}
        for i, m in enumerate(config.models):  # edge.yaml drift thresholds name real features
            th = Thresholds.parse(m.drift_thresholds)
            try:
                th.check_features(self.references[m.name])
            except MlmonError as exc:
                raise ConfigError(
                    f"{config.source}: models[{i}].drift_thresholds: {exc.args[0]}"
                ) from exc
            self.drift_thresholds[m.name] = th
        for i, m in enumerate(config.models):  # opt-in samples: rules checked against the reference
            check_samples(
                m.samples, self.references[m.name], f"{config.source}: models[{i}].samples"
            )
        self.sinks: dict[str, Any] = {}
        self._sink_runs: dict[str, TaskRun] = {}
        from mlmon.edge.performance import EdgePerformance

        self.performance = EdgePerformance(self)
        self.tasks = self._build_tasks()
        self._update_gauges()
        log.info(
            "collector configured",
            extra={"collector_id": config.collector_id, "config_sha256": config.sha256,
                   "models": [m.name for m in config.models], "tasks": len(self.tasks)},
        )  # fmt: skip

    # -- wiring -------------------------------------------------------------------------
    def add_write_hook(self, hook: Callable[[WriteRecord], None]) -> None:
        """Call ``hook`` for every object written (the audit log subscribes here)."""
        self._on_write_hooks.append(hook)

    def _put(self, storage: Storage, path: str, data: bytes) -> None:
        """PUT through the spool, counting the objects the lake did not take."""
        if not self.spool.put(storage, path, data):
            self._spooled += 1

    def _check_sse(self, path: str, response: dict[str, Any] | None) -> None:
        """Look at the SSE header of a PUT answer; say so when an object landed unencrypted.

        With ``sse_kms_key_id`` every answer must say ``aws:kms``; with ``encryption:
        bucket-default`` any server-side encryption will do. Local lakes are not checked.
        """
        if self.storage.is_local:
            return
        sse = sse_of(response)
        want = "aws:kms" if self.config.lake.encryption == "sse-kms" else None
        if response is None:
            if not self._sse_checked:
                self._sse_checked = True
                log.warning(
                    "cannot check the encryption of %s: the PUT answer carried no headers", path
                )
            return
        first = not self._sse_checked
        self._sse_checked = True
        if sse is not None and (want is None or sse == want):
            if first:
                log.info(
                    "lake encryption checked: the bucket stored %s with %s (%s)",
                    path,
                    sse,
                    "sse_kms_key_id" if want else "the bucket's default encryption",
                )
            return
        self._unencrypted_n += 1
        if not self._unencrypted:
            self._unencrypted.append(path)
        what = "without server-side encryption" if sse is None else f"with {sse}, not {want}"
        log.error(
            "object landed %s: %s",
            what,
            path,
            extra={"objects": self._unencrypted_n, "encryption": self.config.lake.encryption},
        )
        fix = (
            "check the KMS key and the bucket policy"
            if want
            else "turn on the bucket's default encryption or set lake.sse_kms_key_id"
        )
        problem = (
            f"{self._unencrypted_n} objects landed {what} (first: "
            f"{self._unencrypted[0].rsplit('/', 1)[-1]}); {fix}"
        )
        self.metrics.set_problem("lake-encryption", problem[:_PROBLEM_CHARS])

    def _wait_for(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (network waits only, no writes) in a daemon thread; abandon it on stop.

        Raises :class:`_Stopped` as soon as the stop event is set: a probe in
        flight is not waited for, and dies with the process.
        """
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, name=f"mlmon-{what}", daemon=True).start()
        while not done.wait(0.05):
            if self._stop.is_set():
                raise _Stopped(what)
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def _written(self, rec: WriteRecord) -> None:
        self.metrics.objects.labels(rec.table).inc()
        if self.audit is not None:
            self.audit.record(
                "object_written", rec.path, bytes=rec.bytes, sha256=rec.sha256, rows=rec.rows
            )
        for hook in self._on_write_hooks:
            hook(rec)

    def _update_gauges(self) -> None:
        self.metrics.buffer_bytes.set(self.spool.size_bytes)
        self.metrics.buffer_objects.set(len(self.spool))
        self.metrics.buffer_dropped.set(self.spool.dropped)
        self._settle_successes()

    def _succeeded(self, model: str, task: str) -> None:
        """A task succeeded; its last_success advances once all it wrote is in the lake."""
        waiting_for = self.spool.stored_through
        with self._success_lock:
            self._pending_success.append((waiting_for, model, task, time.time()))
        self._settle_successes()

    def _settle_successes(self) -> None:
        """Advance last_success for the tasks whose objects the flush has now sent."""
        with self._success_lock:
            sent_through = self.spool.sent_through
            landed = [p for p in self._pending_success if p[0] <= sent_through]
            self._pending_success = [p for p in self._pending_success if p[0] > sent_through]
            for _, model, task, when in sorted(landed, key=lambda p: p[3]):  # never backwards
                self.metrics.last_success.labels(model, task).set(when)

    def _build_tasks(self) -> list[_Task]:
        tasks = []
        for m in self.config.models:
            if m.endpoint is not None and m.golden is not None:
                tasks.append(_Task(m.name, "golden", m.golden.schedule, self._golden_task(m)))
            for i, s in enumerate(m.streams):
                tasks.append(_Task(m.name, f"stream[{i}]", s.schedule, self._stream_task(m, i)))
            if m.batch is not None:
                tasks.append(self._batch_task(m))
            if m.sink is not None:
                every = Schedule(spec=f"every {m.sink.commit_every.total_seconds():g}s")
                tasks.append(_Task(m.name, "sink", every, self._sink_task(m)))
            if m.performance is not None and m.name in self.performance.configs:
                run = self.performance.labels_task(m)
                tasks.append(_Task(m.name, "labels", m.performance.schedule, run))
            if m.imaging is not None:  # DICOM folder or PACS (docs/imaging.md)
                tasks.append(_Task(m.name, "imaging", m.imaging.schedule, self._imaging_task(m)))
        return tasks

    def _sink_task(self, m: ModelConfig) -> TaskRun:
        """Windows of the HTTP sink: rows arrive on the sink's thread, windows close here.

        Each run cuts the sink's write-ahead log where a snapshot of the state
        ends, writes the windows that closed, commits the snapshot (with the
        log segment to replay from), then drops the log before it: an event
        answered 202 is in the log, in a written window or in the committed
        open windows, at every instant (docs/security.md).
        """
        from mlmon.edge.sink import CloudEventSink
        from mlmon.edge.streams import StreamState

        assert m.sink is not None
        ref = self.references[m.name]
        state = StreamState(ref, self.state_dir / "sinks" / m.name, window=self.config.window,
                            lateness=self.config.lateness)  # fmt: skip
        state.versions = self.versions
        self.performance.attach(m.name, state)
        sampler = attach_sampler(m, state, self.secret, self.config.window, "sink")
        lock = threading.Lock()
        received = {"rows": 0}

        def on_records(model: str, frame: pl.DataFrame) -> None:
            with lock:
                received["rows"] += state.add(frame)

        saved = state.positions.get("sink_wal", {})
        held: dict[str, str | None] = {"since": None}
        self.sinks[m.name] = CloudEventSink(
            {m.name: ref}, self.secret, on_records, model=m.name,
            max_body_bytes=m.sink.max_body_bytes,
            settings=m.sink.serve_settings(m.sink.port, f"models[{m.name}].sink"),
            wal_dir=self.state_dir / "sinks" / m.name / "wal",
            wal_start=int(saved.get("segment", 0)) if isinstance(saved, dict) else 0,
            versions=self.versions,
        )  # fmt: skip

        def run(now: datetime, report: CycleReport) -> str | None:
            sink = self.sinks[m.name]

            def cut(segment: int) -> tuple[list[tuple[Any, str | None]], Any, int]:
                # runs under the sink's lock (taken before ``lock``, as on the sink's thread)
                with lock:
                    rows, received["rows"] = received["rows"], 0
                state.positions["sink_wal"] = {"segment": segment}
                return state.closed_windows(now), state.state(), rows

            windows, snapshot, rows = sink.checkpoint(cut)
            report.records += rows
            report.windows += len(windows)
            self.metrics.records.labels(m.name, "sink").inc(rows)
            try:
                report.objects += self.write_windows(m.name, windows, "sink", now)
                if sampler is not None:
                    report.objects += sampler.write(self.writer, windows, self.audit, self.metrics)
            except Exception:
                held["since"] = held["since"] or now.isoformat()
                raise
            if held["since"]:
                # windows closed since then were not all written: no later snapshot may be
                # committed, or they would be lost; a restart replays the log from the last commit
                return (f"sink commits held back since {held['since']} after a failed write; "
                        "the write-ahead log keeps every event; restart to replay it")  # fmt: skip
            # commit the snapshot, not the live state: rows that came later are in the log
            state.generation = state.checkpoint.commit(snapshot).generation
            sink.release(snapshot.positions["sink_wal"]["segment"])
            return None

        self._sink_runs[m.name] = run
        return run

    def start_sinks(self) -> None:
        """Start listening on every configured sink (``run`` does this itself)."""
        for sink in self.sinks.values():
            if not sink.running:
                sink.start()

    def stop_sinks(self) -> None:
        """Stop every sink (requests in progress finish), then write and commit what they accepted.

        The last sink task run writes the windows that closed and commits the
        open ones with the state, so a SIGTERM loses nothing accepted (and the
        write-ahead log is left nearly empty).
        """
        for name, sink in self.sinks.items():
            if not sink.running:
                continue
            sink.stop()
            report = CycleReport()
            try:
                problem = self._sink_runs[name](self.clock(), report)
            except Exception as exc:  # the write-ahead log still holds every accepted event
                log.error("sink: final commit failed; the write-ahead log keeps the events",
                          extra={"model": name, "error_type": type(exc).__name__})  # fmt: skip
                continue
            if problem is not None:
                log.error("sink: not committed at stop; the write-ahead log keeps the events",
                          extra={"model": name, "problem": problem})  # fmt: skip
            else:
                log.info("sink: accepted events written and committed at stop",
                         extra={"model": name, "records": report.records,
                                "windows": report.windows})  # fmt: skip

    # -- tasks --------------------------------------------------------------------------
    def _golden_task(self, m: ModelConfig) -> TaskRun:
        from mlmon.edge.golden import load_golden_set, run_golden
        from mlmon.edge.protocols import endpoint_from_config

        assert m.golden is not None and m.endpoint is not None
        golden_set = load_golden_set(m.golden.file)
        endpoint = endpoint_from_config(m.endpoint, allow_http=self.config.allow_http)

        def run(now: datetime, report: CycleReport) -> str | None:
            frame = self._wait_for(
                f"golden-{m.name}",
                lambda: run_golden(None, endpoint, golden_set, self.secret, now=now,
                                   cancel=self._stop),
            )  # fmt: skip
            if self._stop.is_set():  # stopped between two samples: an unfinished run is not written
                raise _Stopped("golden")
            return self._record_golden(m, frame, now, report)

        return run

    def _record_golden(
        self, m: ModelConfig, frame: pl.DataFrame, now: datetime, report: CycleReport
    ) -> str | None:
        start = floor_time(now, self.config.window)
        end = start + self.config.window
        checks, passed = frame.height, int(frame.get_column("passed").sum())
        errors = frame.filter(~pl.col("passed")).get_column("error_kind").value_counts()
        error_kinds = dict(zip(errors[:, 0].to_list(), errors[:, 1].to_list(), strict=True))
        # a probe without a readable 2xx answer is a failure, not a latency (latency_ms null)
        failed_kinds = {k: n for k, n in error_kinds.items() if k != "mismatch"}
        failed = sum(failed_kinds.values())
        versions = frame.get_column("model_version").drop_nulls()
        version = versions[-1] if versions.len() else None
        part = f"golden-{_stamp(now)}"
        rows = frame.with_columns(
            pl.lit(start).alias("window_start"),
            pl.lit(end).alias("window_end"),
            pl.lit(self.config.collector_id).alias("collector_id"),
        )
        self.writer.write_table("golden", m.name, rows, start, end, part=part)
        lat = frame.get_column("latency_ms").drop_nulls().to_numpy()
        prof = NumericProfile.from_array(lat, edges=LATENCY_EDGES_MS)
        window = Window(start, end, version, WindowProfile({}, latency=prof, rows=checks))
        self.writer.write_latency(m.name, window, source="probe", errors=failed, part=_stamp(now))
        min_rate = m.golden.min_pass_rate if m.golden else 1.0
        conditions = golden_conditions(checks, passed, error_kinds, min_rate)
        self._alert_changes(m.name, conditions, now, start, end, version, f"golden-{_stamp(now)}")
        if any(c.holds for c in conditions):
            report.golden_failed.append(m.name)
        for kind, n in error_kinds.items():
            self.metrics.probe_failures.labels(m.name, kind).inc(n)
        self.metrics.probes.labels(m.name, "passed").inc(passed)
        self.metrics.probes.labels(m.name, "failed").inc(checks - passed)
        report.golden_checks += checks
        report.golden_passed += passed
        if self.audit is not None:
            self.audit.record("endpoint_probed", m.endpoint.url if m.endpoint else m.name,
                              "ok" if passed == checks else "failed", checks=checks, passed=passed,
                              error_kinds=error_kinds, latency_ms_max=float(lat.max()) if lat.size else None)  # fmt: skip
        if not failed:
            return None
        url = m.endpoint.url if m.endpoint else m.name
        kinds = ", ".join(f"{k}={n}" for k, n in sorted(failed_kinds.items()))
        if failed == checks:
            return f"endpoint {url} unreachable: none of {checks} golden probes got an answer ({kinds})"
        return f"endpoint {url}: {failed} of {checks} golden probes got no answer ({kinds})"

    def _alert_changes(
        self,
        model: str,
        conditions: list[Condition],
        now: datetime,
        start: datetime,
        end: datetime,
        version: str | None,
        part: str,
    ) -> None:
        """Write the alerts that started or cleared with this evaluation (none if nothing changed)."""
        rows = self.alerts.update(model, conditions, now, start)
        self._write_alerts(model, rows, start, end, version, part=part)
        firing: dict[str, int] = {}
        for key in self.alerts.firing(model):
            rule = key.split("|", 1)[0]
            firing[rule] = firing.get(rule, 0) + 1
        for c in conditions:
            self.metrics.alerts_firing.labels(model, c.rule).set(firing.get(c.rule, 0))

    def _write_alerts(
        self,
        model: str,
        alerts: list[dict[str, Any]],
        start: datetime,
        end: datetime,
        version: str | None,
        part: str,
    ) -> None:
        if not alerts:
            return
        rows = pl.DataFrame(alerts).with_columns(
            pl.lit(version, dtype=pl.String).alias("model_version"),
            pl.lit(start).alias("window_start"),
            pl.lit(end).alias("window_end"),
            pl.lit(self.config.collector_id).alias("collector_id"),
        )
        key = "-".join(p for p in (part, self.writer._version_part(version)) if p)
        self.writer.write_table("alerts", model, rows, start, end, part=key)
        for a in alerts:
            log.warning(
                "alert %s %s",
                a["rule"],
                a["state"],
                extra={"model": model, "rule": a["rule"], "severity": a["severity"],
                       "state": a["state"]},
            )  # fmt: skip

    def _stream_task(self, m: ModelConfig, index: int) -> Callable[[datetime, CycleReport], None]:
        from mlmon.edge.streams import open_stream

        cfg = m.streams[index]
        ref = self.references[m.name]
        stream = open_stream(
            cfg, reference=ref, secret=self.secret, state_dir=self.state_dir / "streams" / f"{m.name}-{index}",
            window=self.config.window, lateness=self.config.lateness,
        )  # fmt: skip
        stream.state.versions = self.versions
        self.performance.attach(m.name, stream.state)
        sampler = attach_sampler(m, stream.state, self.secret, self.config.window, f"stream{index}")

        # the second and later streams of a model tag their window keys: two streams' windows
        # of the same hour must not overwrite each other in the lake
        tag = f"s{index}" if index else None

        def run(now: datetime, report: CycleReport) -> None:
            self._drain_stream(m, stream, now, report, sampler, tag=tag)

        return run

    def _imaging_task(self, m: ModelConfig) -> Callable[[datetime, CycleReport], None]:
        """DICOM instances read like a stream (logic in mlmon.edge.imaging.source)."""
        from mlmon.edge.imaging.source import open_imaging

        assert m.imaging is not None  # only models with an imaging: section get this task
        source = open_imaging(
            m.imaging, self.references[m.name], self.secret, self.state_dir / "imaging" / m.name,
            window=self.config.window, lateness=self.config.lateness, clock=self.clock,
            **({"allow_http": self.config.allow_http} if m.imaging.dicomweb else {}),
        )  # fmt: skip
        source.state.versions = self.versions

        def run(now: datetime, report: CycleReport) -> None:
            self._drain_stream(m, source, now, report)
            reason = getattr(source, "unavailable", None)
            if reason:  # a PACS down, refusing access or failing TLS fails the task (edge once: 6)
                raise EdgeError(f"PACS not read ({reason}); its instances wait for the next read")

        return run

    def write_windows(
        self, model: str, windows: list[tuple[Window, str | None]], source: str, now: datetime
    ) -> int:
        """Write closed windows (with their late-part labels), their drift and drift alerts."""
        from mlmon.edge.ingest import drift_rows

        ref = self.references[model]
        n = 0
        for w, part in windows:
            drift = drift_rows(ref, w.profile, thresholds=self.drift_thresholds.get(model))
            n += len(
                self.writer.write_window(model, w, ref, source=source, drift_rows=drift, part=part)
            )
            n += self.performance.window_closed(model, w, source, part, now)
            conditions = drift_conditions(drift, scope=source)
            label = "-".join(p for p in ("drift", source, part) if p)
            self._alert_changes(model, conditions, now, w.start, w.end, w.version, label)
            self.metrics.windows.labels(model).inc()
        return n

    def _drain_stream(
        self,
        m: ModelConfig,
        stream: Any,
        now: datetime,
        report: CycleReport,
        sampler: Any = None,
        *,
        tag: str | None = None,
    ) -> None:
        """Read, write the windows that closed, commit; a backlog in bounded steps.

        A stream with ``read_step`` (a :class:`~mlmon.edge.streams.FileStream`) is
        read ``commit_every_records`` records or ``commit_every_files`` files at a
        time, each step written and committed before the next, so a collector
        killed mid-backlog resumes from its last step; a stop (SIGTERM) ends the
        drain after the step in hand is committed. Windows close by event time
        during the backlog and by the wall clock (``now``) once it is read.
        """
        step = getattr(stream, "read_step", None)
        while True:
            before = dict(stream.bad_records)
            more = False
            if step is None:
                records = stream.read()
            else:
                records, more = step()
            windows = stream.closed_windows(None if more else now)
            if tag is not None:
                windows = [(w, "-".join(p for p in (tag, part) if p)) for w, part in windows]
            report.objects += self.write_windows(m.name, windows, "stream", now)
            if sampler is not None:
                report.objects += sampler.write(self.writer, windows, self.audit, self.metrics)
            stream.commit()
            report.records += records
            report.windows += len(windows)
            self.metrics.records.labels(m.name, "stream").inc(records)
            for reason, n in stream.bad_records.items():
                if n - before.get(reason, 0):
                    self.metrics.bad_records.labels(m.name, reason).inc(n - before.get(reason, 0))
            if not more:
                return
            if self._stop.is_set():
                raise _Stopped("stream")

    def _batch_task(self, m: ModelConfig) -> _BatchTask:
        """Trigger the job and wait for it beside the other tasks (never blocking them).

        The first run starts the job on a thread and returns at once; the task is
        then due at the adapter's poll interval until the job has ended, and that run records the
        outcome: the ``batch_triggered`` audit record (target, outcome, reason,
        duration), the metric, and /healthz (``running`` while it runs; a failed,
        refused or timed-out job is a degraded reason until a job succeeds).
        """
        from mlmon.edge.batch import adapter_from_config

        assert m.batch is not None
        adapter = adapter_from_config(m.batch, allow_http=self.config.allow_http)
        component = f"{m.name}/batch"
        task = _BatchTask(m.name, "batch", m.batch.schedule, lambda now, report: None,
                          poll=timedelta(seconds=adapter.poll_interval_s),
                          target=adapter.target)  # fmt: skip

        def run(now: datetime, report: CycleReport) -> str | None:
            if task.wait is None:
                task.wait = _BatchWait(lambda stop: adapter.trigger_and_wait(cancel=stop),
                                       self._stop)  # fmt: skip
                self.metrics.set_activity(
                    component,
                    f"batch job of {adapter.target} running since "
                    f"{task.wait.started.isoformat(timespec='seconds')}",
                )
                log.info("batch job triggered", extra={"model": m.name, "target": adapter.target})
            if not task.wait.done.is_set():
                if self._stop.is_set():
                    raise _Stopped(f"batch-{m.name}")
                raise _InFlight(component)
            wait, task.wait = task.wait, None
            self.metrics.set_activity(component, None)
            result = wait.result
            if result is None:  # the adapter raised (it should not): still a record
                from mlmon.edge.batch import BatchRun

                took = (datetime.now(UTC) - wait.started).total_seconds()
                result = BatchRun(None, "error", None, took,
                                  f"{type(wait.error).__name__}: {wait.error}", adapter.target)  # fmt: skip
            problem = self._batch_done(m, result, report)
            if result.status == "stopped":  # recorded: the Job runs on, the edge stops
                raise _Stopped(f"batch-{m.name}")
            return problem

        task.run = run
        return task

    def _abandon_batches(self) -> None:
        """At a stop: record each batch wait abandoned (``stopped``; the Job runs on).

        The stop event has already ended the waits (``cancel``); a thread still in
        an HTTP request is given a moment, then recorded without its Job's name.
        """
        from mlmon.edge.batch import BatchRun

        for task in self.tasks:
            if not isinstance(task, _BatchTask) or task.wait is None:
                continue
            wait, task.wait = task.wait, None
            self.metrics.set_activity(f"{task.model}/batch", None)
            result = wait.result if wait.done.wait(2.0) else None
            if result is None:
                took = (datetime.now(UTC) - wait.started).total_seconds()
                result = BatchRun(None, "stopped", None, took, "wait abandoned: stopping",
                                  task.target)  # fmt: skip
            m = next(m for m in self.config.models if m.name == task.model)
            try:
                self._batch_done(m, result, CycleReport())
            except MlmonError as exc:  # stopping: log it, never hold the exit
                log.error("batch: abandoned wait not recorded",
                          extra={"model": m.name, "error_type": type(exc).__name__})  # fmt: skip

    def _batch_done(self, m: ModelConfig, result: Any, report: CycleReport) -> str | None:
        """Record a batch job's outcome: metric, audit record, log line, report, problem."""
        self.metrics.batch_runs.labels(m.name, result.status).inc()
        if self.audit is not None:
            details: dict[str, Any] = {"model": m.name, "job": result.job_id,
                                       "duration_s": round(result.duration_s, 3)}  # fmt: skip
            if result.error is not None:
                details["reason"] = result.error
            if result.http_status is not None:
                details["http_status"] = result.http_status
            self.audit.record("batch_triggered", result.target, result.status, **details)
        report.batch_runs += 1
        log.info(
            "batch job finished",
            extra={"model": m.name, "job": result.job_id, "status": result.status,
                   "duration_s": round(result.duration_s, 3)},
        )  # fmt: skip
        if result.status == "succeeded":
            return None
        problem = f"batch job {result.job_id or 'of ' + result.target} {result.status}"
        if result.error:
            problem += f": {result.error}"
        report.errors.append(f"{m.name}/batch: {problem}")
        return problem

    # -- running ------------------------------------------------------------------------
    def _run_task(self, task: _Task, now: datetime, report: CycleReport) -> None:
        """Run one task; record its outcome in the report, /healthz and last_success."""
        component = f"{task.model}/{task.kind}"
        spooled = self._spooled
        problem: str | None = None
        try:
            problem = task.run(now, report)
        except _Stopped:
            report.stopped = True
            log.info("task abandoned: stopping", extra={"model": task.model, "task": task.kind})
            return
        except _InFlight:  # a batch job runs on: its outcome is recorded when it ends
            return
        except SpoolFull as exc:
            report.errors.append(f"{component}: {exc}")
            problem = f"spool full: {exc}"
            log.error("spool full", extra={"model": task.model, "task": task.kind})
        except Exception as exc:  # a task's failure must not stop the collector
            report.errors.append(f"{component}: {type(exc).__name__}: {exc}")
            problem = f"task failed: {type(exc).__name__}: {exc}"
            log.error(
                "task failed",
                extra={"model": task.model, "task": task.kind, "error_type": type(exc).__name__},
            )
        finally:
            self.alerts.save()
            self._update_gauges()
        if problem is not None and len(problem) > _PROBLEM_CHARS:
            problem = problem[: _PROBLEM_CHARS - 3] + "..."
        self.metrics.set_problem(component, problem)
        if problem is None and self._spooled == spooled:
            self._succeeded(task.model, task.kind)

    def publish_references(self) -> None:
        """Write each model's reference into the lake once per process (idempotent key)."""
        if getattr(self, "_published", False):
            return
        for name, ref in self.references.items():
            try:
                self.writer.write_reference(name, ref)
                self.performance.publish_reference(name)
            except SpoolFull as exc:
                log.error(
                    "spool full: reference not written", extra={"model": name, "error": str(exc)}
                )
        self._published = True

    def run_once(self, stop: threading.Event | None = None) -> CycleReport:
        """Run every task once, then try to flush the spool.

        Parameters
        ----------
        stop
            When set (SIGTERM), probes and batch waits in flight are abandoned,
            no further task starts, and the cycle ends with ``stopped`` true.
        """
        if stop is not None:
            self._stop = stop
        self.publish_references()
        report = CycleReport()
        now = self.clock()
        self.flush_spool()  # what an earlier run left first; a bucket that is down opens the breaker
        for task in self.tasks:
            if self._stop.is_set():
                report.stopped = True
                break
            self._run_task(task, now, report)
        for task in self.tasks:  # batch jobs ran beside the other tasks; collect their outcomes
            if isinstance(task, _BatchTask) and task.wait is not None and not report.stopped:
                if not task.finish(self._stop):
                    report.stopped = True
                    break
                self._run_task(task, self.clock(), report)
        if report.stopped:
            self._abandon_batches()
        if not report.stopped:
            try:  # after the windows they cover (the spool keeps that order)
                report.objects += len(self.writer.write_rollups())
            except Exception as exc:  # readers then read the uncovered windows one by one
                report.errors.append(f"day rollups: {type(exc).__name__}: {exc}")
                log.error("day rollups not written", extra={"error_type": type(exc).__name__})
        self.flush_spool(force=True, stop=self._stop)  # one attempt even during the back-off
        report.spooled_objects = len(self.spool)
        return report

    def flush_audit(self) -> None:
        """PUT the audit log's sealed records (through the spool, like every object)."""
        if self.audit is not None:
            try:
                self.audit.heartbeat(AUDIT_HEARTBEAT)  # a live edge always has a recent seal
                self.audit.flush()
            except MlmonError as exc:  # the records stay on the local volume; flushed next time
                log.error("audit flush failed", extra={"error_type": type(exc).__name__})

    def flush_spool(
        self,
        *,
        force: bool = False,
        stop: threading.Event | None = None,
        max_objects: int | None = None,
        audit: bool = True,
    ) -> int:
        """Send what waits in the spool, oldest first, while the breaker lets it.

        Stops at the first failure (the breaker opens and backs off), when ``stop`` is set,
        or after ``max_objects``. /healthz says ``lake: ...`` while data is only spooled.
        """
        if audit:
            self.flush_audit()
        try:
            sent = self.spool.flush(self.storage, force=force, stop=stop, max_objects=max_objects)
            if not self.spool.breaker.is_open:
                self._lake_error = None
            return sent
        except MlmonError as exc:
            self._lake_error = f"{type(exc).__name__}: {exc}"
            return 0
        finally:
            self._update_gauges()
            self._lake_health()

    def _lake_health(self) -> None:
        spool, breaker = self.spool, self.spool.breaker
        problem = None
        waiting = f"{len(spool)} objects ({spool.size_bytes} bytes) spooled"
        if breaker.is_open:
            since = breaker.since.strftime("%Y-%m-%dT%H:%M:%SZ") if breaker.since else "?"
            problem = (
                f"lake unreachable since {since}, {waiting}; next attempt in "
                f"{breaker.seconds_to_try():.0f} s"
            )
        elif spool.outage_since is not None and len(spool):
            since = spool.outage_since.strftime("%Y-%m-%dT%H:%M:%SZ")
            problem = f"lake reachable again after an outage since {since}, {waiting} being sent"
        if spool.dropped:
            problem = (problem + "; " if problem else "") + (
                f"{spool.dropped} objects refused by the full spool (buffer_max_bytes)"
            )
        if problem is not None:
            if self._lake_error and breaker.is_open:
                problem += f"; last error: {self._lake_error}"
            if len(problem) > _PROBLEM_CHARS:
                problem = problem[: _PROBLEM_CHARS - 3] + "..."
        self.metrics.set_problem("lake", problem)

    def _drain(self, stop: threading.Event) -> None:
        """``edge run``'s background flush: the spool to the bucket in bounded steps.

        While the breaker is open it waits out the back-off, then tries the oldest object;
        the scheduler thread never waits on the bucket.
        """
        spool = self.spool
        while not stop.is_set():
            if not len(spool):
                spool.wakeup.wait(1.0)
                spool.wakeup.clear()
                if not len(spool):
                    self._lake_health()
                    continue
            wait = spool.breaker.seconds_to_try()
            if wait > 0:
                self._lake_health()
                stop.wait(min(wait, 1.0))
                continue
            self.flush_spool(stop=stop, max_objects=FLUSH_STEP, audit=False)

    def run(self, stop: threading.Event, *, serve_metrics: bool = True) -> None:
        """Run tasks on their schedules until ``stop`` is set.

        Setting ``stop`` abandons probes and batch waits in flight and starts no
        further task; ``run`` then stops the sinks and the metrics server and returns.
        """
        self._stop = stop
        server = None
        if serve_metrics and self.config.metrics is not None:
            mc = self.config.metrics
            settings = mc.serve_settings(mc.port, "metrics")
            server = MetricsServer(self.metrics, settings=settings).start()
        drainer = None
        if not self.storage.is_local:  # S3: writes go to the spool, a thread sends them
            self.spool.write_behind = True
            drainer = threading.Thread(
                target=self._drain, args=(stop,), name="mlmon-lake-flush", daemon=True
            )
            drainer.start()
        try:
            self.publish_references()
            self.start_sinks()
            for t in self.tasks:
                t.next_due = self.clock()
            while not stop.is_set():
                now = self.clock()
                due = [t for t in self.tasks if t.next_due is not None and t.next_due <= now]
                report = CycleReport()
                for t in due:
                    if stop.is_set():
                        break
                    self._run_task(t, now, report)
                    t.advance(now)
                if stop.is_set():
                    break
                if due:
                    if drainer is None:
                        self.flush_spool()
                    else:
                        self.flush_audit()
                        self._update_gauges()
                        self._lake_health()
                    log.info(
                        "cycle",
                        extra={
                            "tasks": len(due),
                            "records": report.records,
                            "errors": len(report.errors),
                        },
                    )
                pending = [t.next_due for t in self.tasks if t.next_due is not None]
                wait = min((d - self.clock()).total_seconds() for d in pending) if pending else 60.0
                stop.wait(max(0.05, min(wait, 60.0)))
        finally:
            self._abandon_batches()
            self.stop_sinks()
            if drainer is not None:
                drainer.join(timeout=5.0)
                self.spool.write_behind = False
            # the stop is audited and the open segment sealed and sent (or spooled, when the
            # bucket is down: the state volume keeps it for the next start)
            if self.audit is not None:
                self.audit.record("collector_stopped", self.config.collector_id)
            self.flush_audit()
            if drainer is not None and not self.spool.breaker.is_open:
                # what the last tasks wrote: one bounded pass if the bucket is up (the process
                # is cut off at the shutdown deadline anyway; the spool keeps the rest)
                self.flush_spool(audit=False)
            if server is not None:
                server.stop()
