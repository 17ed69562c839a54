"""Trigger the ONE designated batch job for golden runs, and wait for it.

Two adapters, each able to start exactly one configured job and read the
status of the run it started, and nothing else:

* :class:`HttpJobAdapter`: a job service with a trigger URL (POST) and a poll
  URL template (``{job_id}`` filled in), a dotted status path in the answers,
  and the status values that mean success or failure.
* :class:`KubernetesJobAdapter`: creates a Job from one named CronJob's
  ``spec.jobTemplate`` in one namespace, as ``kubectl create job --from=cronjob/NAME``
  does, and polls that Job by name. The Role in ``deploy/`` allows ``get`` on
  that CronJob and ``create``/``get`` on Jobs; the adapter never lists, patches
  or deletes anything.

``trigger_and_wait`` never raises for job trouble (service down, job failed,
timeout, odd answers, a refused request): it returns a :class:`BatchRun` whose
``status`` says what happened, ``error`` why (at most :data:`REASON_CHARS`
characters: the HTTP status and, from the Kubernetes API, its fixed ``reason``
and ``message`` texts such as ``exceeded quota: mlmon-edge-jobs``; never a
body of a job service), and ``target`` what was triggered (no pod payload).
Setting its ``cancel`` event ends a wait at once (SIGTERM). Wrong configuration raises :class:`~mlmon.errors.ConfigError`
when the adapter is built. Trigger requests are sent as *not idempotent*:
they are retried only when the request provably never reached the server,
so a job is never started twice by a retry.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from mlmon.edge.http import HttpSettings, check_url, make_client, request_with_retries
from mlmon.edge.protocols import MalformedResponse, extract, parse_path
from mlmon.errors import ConfigError, EdgeError

__all__ = [
    "BatchRun",
    "BatchStatus",
    "HttpJobAdapter",
    "KubernetesJobAdapter",
    "adapter_from_config",
]

BatchStatus = Literal["succeeded", "failed", "timeout", "refused", "error", "stopped"]
REASON_CHARS = 300
"""The longest ``BatchRun.error`` (and so the audit record's ``reason``)."""
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_JOB_SUFFIX = "-mlmon-%Y%m%d%H%M%S"  # 21 characters


@dataclass(frozen=True)
class BatchRun:
    """The outcome of one triggered run.

    ``status`` is ``succeeded`` or ``failed`` (the job said so), ``timeout``
    (still running after the adapter's ``timeout_s``), ``refused`` (the
    service or API server answered a request with an error status:
    ``http_status`` and ``error`` say which and why), ``error`` (the service
    could not be used: unreachable, odd answers) or ``stopped`` (the
    ``cancel`` event ended the wait). ``target`` names what was triggered:
    ``{namespace}/cronjobs/{cronjob}`` or the trigger URL without its query.
    """

    job_id: str | None
    status: BatchStatus
    outputs_location: str | None
    duration_s: float
    error: str | None = None
    target: str = ""
    http_status: int | None = None

    def __post_init__(self) -> None:
        if self.error is not None and len(self.error) > REASON_CHARS:
            object.__setattr__(self, "error", self.error[: REASON_CHARS - 3] + "...")


def _positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} is {value!r}; use a positive number of seconds")


def _json(resp: httpx.Response, what: str) -> Any:
    try:
        return resp.json()
    except ValueError as exc:
        raise MalformedResponse(f"{what} answered {resp.status_code} with a non-JSON body") from exc


class _Failed(EdgeError):
    """Internal: one step of a run failed; the message goes into ``BatchRun.error``."""


class _Refused(_Failed):
    """Internal: a request was answered with an error status (``BatchRun.status`` ``refused``)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class _Cancelled(EdgeError):
    """Internal: the ``cancel`` event was set during a wait."""


def _expect_2xx(resp: httpx.Response, what: str, *, kube: bool = False) -> None:
    """Raise :class:`_Refused` for a non-2xx answer.

    With ``kube``, the answer is a Kubernetes ``metav1.Status``: its ``reason``
    and ``message`` are fixed texts of the API server (``Forbidden``, ``jobs.batch
    is forbidden: exceeded quota: ...``) and are kept; a job service's body is not.
    """
    if 200 <= resp.status_code < 300:
        return
    why = f"{what} answered HTTP {resp.status_code}"
    if kube:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            texts = [str(body[k]) for k in ("reason", "message") if isinstance(body.get(k), str)]
            if texts:
                why += " " + ": ".join(texts)
    raise _Refused(why, resp.status_code)


def _pause(cancel: threading.Event | None, seconds: float) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise _Cancelled("stopped")


def _ended(exc: Exception, job_id: str | None, t0: float, target: str) -> BatchRun:
    """The :class:`BatchRun` of a run that ended with ``exc``."""
    took = time.monotonic() - t0
    if isinstance(exc, _Cancelled):
        return BatchRun(job_id, "stopped", None, took, "wait abandoned: stopping", target)
    if isinstance(exc, _Refused):
        return BatchRun(job_id, "refused", None, took, str(exc), target, exc.status_code)
    return BatchRun(job_id, "error", None, took, f"{type(exc).__name__}: {exc}", target)


@dataclass(frozen=True)
class HttpJobAdapter:
    """Trigger a job on an HTTP job service and poll it until it ends.

    Parameters
    ----------
    trigger_url
        POSTed once (empty body) to start the job.
    poll_url
        GET URL template of one run, containing ``{job_id}``.
    status_path, job_id_path, outputs_path
        Dotted/indexed paths (e.g. ``state.phase``) of the status in poll
        answers, of the job id in the trigger answer, and of the outputs
        location in the final poll answer (optional).
    success, failure
        Status values that end the run (compared case-insensitively).
    poll_interval_s, timeout_s
        Wait between polls; overall limit from the trigger on.
    settings
        HTTP settings (TLS, token, per-request timeout, retries).

    Examples
    --------
    >>> HttpJobAdapter("https://jobs.internal/run", "https://jobs.internal/runs/{job_id}").success
    ('succeeded', 'success', 'completed', 'done')
    """

    trigger_url: str
    poll_url: str
    status_path: str = "status"
    job_id_path: str = "id"
    outputs_path: str | None = None
    success: tuple[str, ...] = ("succeeded", "success", "completed", "done")
    failure: tuple[str, ...] = ("failed", "error", "cancelled")
    poll_interval_s: float = 2.0
    timeout_s: float = 3600.0
    settings: HttpSettings = field(default_factory=HttpSettings)

    def __post_init__(self) -> None:
        check_url(self.trigger_url, self.settings, "batch trigger_url")
        check_url(self.poll_url, self.settings, "batch poll_url")
        if "{job_id}" not in self.poll_url:
            raise ConfigError(
                f"batch poll_url {self.poll_url!r} has no {{job_id}} placeholder; "
                "expected e.g. 'https://jobs.internal/runs/{job_id}'"
            )
        for path in (self.status_path, self.job_id_path, self.outputs_path):
            if path is not None:
                parse_path(path)
        success = tuple(str(s).casefold() for s in self.success)
        failure = tuple(str(s).casefold() for s in self.failure)
        if not success or not failure or set(success) & set(failure):
            raise ConfigError(
                f"batch success {self.success} and failure {self.failure} values must be "
                "non-empty and disjoint"
            )
        object.__setattr__(self, "success", success)
        object.__setattr__(self, "failure", failure)
        _positive(self.poll_interval_s, "batch poll_interval_s")
        _positive(self.timeout_s, "batch timeout_s")

    @property
    def target(self) -> str:
        """What is triggered: the trigger URL without query or fragment (they may hold tokens)."""
        return self.trigger_url.split("?", 1)[0].split("#", 1)[0]

    def trigger_and_wait(self, cancel: threading.Event | None = None) -> BatchRun:
        """Start the job once, then poll until it ends or ``timeout_s`` passes.

        Parameters
        ----------
        cancel
            When set, the wait ends at once (status ``stopped``).

        Returns
        -------
        BatchRun
            Never raises for trouble with the job service or the job.
        """
        t0 = time.monotonic()
        job_id: str | None = None
        body: Any = None
        with make_client(self.settings) as client:
            try:
                r = request_with_retries(
                    client, "POST", self.trigger_url, self.settings, idempotent=False
                )
                _expect_2xx(r, f"trigger POST {self.target}")
                raw_id = extract(_json(r, "trigger"), self.job_id_path)
                if not isinstance(raw_id, str | int) or isinstance(raw_id, bool) or raw_id == "":
                    raise _Failed(f"trigger answer has job id {raw_id!r} at {self.job_id_path!r}")
                job_id = str(raw_id)
                url = self.poll_url.replace("{job_id}", quote(job_id, safe=""))
                while True:
                    r = request_with_retries(client, "GET", url, self.settings)
                    _expect_2xx(r, f"poll GET {url.split('?', 1)[0]}")
                    body = _json(r, "poll")
                    status = str(extract(body, self.status_path)).casefold()
                    if status in self.success or status in self.failure:
                        break
                    remaining = self.timeout_s - (time.monotonic() - t0)
                    if remaining <= 0:
                        return BatchRun(job_id, "timeout", None, time.monotonic() - t0,
                                        f"still {status!r} after {self.timeout_s:g} s",
                                        self.target)  # fmt: skip
                    _pause(cancel, min(self.poll_interval_s, remaining))
            except (httpx.HTTPError, EdgeError) as exc:
                return _ended(exc, job_id, t0, self.target)
        outputs = None
        if self.outputs_path is not None:
            try:
                outputs = str(extract(body, self.outputs_path))
            except MalformedResponse:
                outputs = None
        final: BatchStatus = "succeeded" if status in self.success else "failed"
        return BatchRun(job_id, final, outputs, time.monotonic() - t0,
                        None if final == "succeeded" else f"job status {status!r}",
                        self.target)  # fmt: skip


@dataclass(frozen=True)
class KubernetesJobAdapter:
    """Create one Job from one CronJob's template and wait for it.

    Requests, and the only ones (the Role needs ``get`` on that CronJob,
    ``create`` and ``get`` on Jobs in that namespace)::

        GET  {api_url}/apis/batch/v1/namespaces/{namespace}/cronjobs/{cronjob}
        POST {api_url}/apis/batch/v1/namespaces/{namespace}/jobs
        GET  {api_url}/apis/batch/v1/namespaces/{namespace}/jobs/{cronjob}-mlmon-{timestamp}

    Parameters
    ----------
    api_url
        The API server, in a pod ``https://kubernetes.default.svc``.
    namespace, cronjob
        The one designated CronJob.
    poll_interval_s, timeout_s
        Wait between polls; overall limit.
    settings
        TLS (``ca_bundle``: the service-account ``ca.crt``) and, if no
        ``token_file``, the bearer token.
    token_file
        Read before every run (service-account tokens are rotated).

    Examples
    --------
    >>> KubernetesJobAdapter("https://kubernetes.default.svc", "models", "risk-batch").job_name(
    ...     datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    'risk-batch-mlmon-20260102030405'
    """

    api_url: str
    namespace: str
    cronjob: str
    poll_interval_s: float = 5.0
    timeout_s: float = 3600.0
    settings: HttpSettings = field(default_factory=HttpSettings)
    token_file: Path | None = None

    def __post_init__(self) -> None:
        check_url(self.api_url, self.settings, "kubernetes api_url")
        for name, value, limit in (
            ("namespace", self.namespace, 63),
            ("cronjob", self.cronjob, 52),
        ):
            if not isinstance(value, str) or len(value) > limit or not _DNS_LABEL.fullmatch(value):
                raise ConfigError(
                    f"kubernetes {name} {value!r} is not a valid name; expected lower-case "
                    f"letters, digits and '-', at most {limit} characters"
                )
        _positive(self.poll_interval_s, "kubernetes poll_interval_s")
        _positive(self.timeout_s, "kubernetes timeout_s")

    @property
    def target(self) -> str:
        """What is triggered: ``{namespace}/cronjobs/{cronjob}``."""
        return f"{self.namespace}/cronjobs/{self.cronjob}"

    @property
    def _base(self) -> str:
        return f"{self.api_url.rstrip('/')}/apis/batch/v1/namespaces/{self.namespace}"

    def job_name(self, now: datetime) -> str:
        """``{cronjob}-mlmon-{YYYYmmddHHMMSS}`` (UTC), cut to Kubernetes' 63 characters."""
        prefix = self.cronjob[: 63 - len("-mlmon-YYYYmmddHHMMSS")].rstrip("-")
        return prefix + now.astimezone(UTC).strftime(_JOB_SUFFIX)

    def job_from_cronjob(self, cronjob: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The Job body: the CronJob's ``jobTemplate``, owned by the CronJob, marked manual.

        Raises
        ------
        MalformedResponse
            ``cronjob`` is not the designated CronJob or has no ``spec.jobTemplate.spec``.
        """
        try:
            meta = cronjob["metadata"]
            template = cronjob["spec"]["jobTemplate"]
            spec = template["spec"]
            uid = meta["uid"]
        except (KeyError, TypeError) as exc:
            raise MalformedResponse(
                f"CronJob {self.namespace}/{self.cronjob} answer lacks {exc}; expected "
                "metadata.uid and spec.jobTemplate.spec"
            ) from exc
        if cronjob.get("kind", "CronJob") != "CronJob" or meta.get("name") != self.cronjob:
            raise MalformedResponse(
                f"asked for CronJob {self.cronjob!r}, got {cronjob.get('kind')} "
                f"{meta.get('name')!r}"
            )
        template_meta = template.get("metadata") or {}
        annotations = dict(template_meta.get("annotations") or {})
        annotations["cronjob.kubernetes.io/instantiate"] = "manual"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": self.job_name(now),
                "namespace": self.namespace,
                "labels": dict(template_meta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": self.cronjob,
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }

    def _settings(self) -> HttpSettings:
        if self.token_file is None:
            return self.settings
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise _Failed(
                f"cannot read the service-account token {self.token_file}: {exc}"
            ) from exc
        return replace(self.settings, bearer_token=token)

    @staticmethod
    def _outcome(job: Any) -> tuple[BatchStatus | None, str | None]:
        status = job.get("status") if isinstance(job, dict) else None
        if not isinstance(status, dict):
            return None, None
        for cond in status.get("conditions") or []:
            if not isinstance(cond, dict) or cond.get("status") != "True":
                continue
            if cond.get("type") == "Complete":
                return "succeeded", None
            if cond.get("type") == "Failed":
                return "failed", f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}"
        spec = job.get("spec") if isinstance(job.get("spec"), dict) else {}
        completions = spec.get("completions") or 1
        if int(status.get("succeeded") or 0) >= completions:
            return "succeeded", None
        return None, None

    def trigger_and_wait(
        self, now: datetime | None = None, cancel: threading.Event | None = None
    ) -> BatchRun:
        """Create the Job from the CronJob's template, then poll it until it ends.

        Parameters
        ----------
        now
            Names the Job (default: the current UTC time).
        cancel
            When set, the wait ends at once (status ``stopped``; the Job runs on).

        Returns
        -------
        BatchRun
            ``job_id`` is the Job's name (None when it was not created). Never raises
            for API or job trouble.
        """
        t0 = time.monotonic()
        name: str | None = None
        created: str | None = None  # the Job's name once the API server created it
        try:
            settings = self._settings()
            with make_client(settings) as client:
                url = f"{self._base}/cronjobs/{self.cronjob}"
                r = request_with_retries(client, "GET", url, settings)
                _expect_2xx(r, f"GET {self.target}", kube=True)
                body = self.job_from_cronjob(_json(r, "GET cronjob"), now or datetime.now(UTC))
                name = body["metadata"]["name"]
                r = request_with_retries(
                    client, "POST", f"{self._base}/jobs", settings, idempotent=False, json=body
                )
                if r.status_code == 409:
                    raise _Refused(f"Job {name} already exists (409); was it triggered twice?", 409)
                _expect_2xx(r, f"POST {self.namespace}/jobs", kube=True)
                created = name
                url = f"{self._base}/jobs/{name}"
                while True:
                    r = request_with_retries(client, "GET", url, settings)
                    _expect_2xx(r, f"GET {self.namespace}/jobs/{name}", kube=True)
                    outcome, reason = self._outcome(_json(r, "GET job"))
                    if outcome is not None:
                        return BatchRun(name, outcome, None, time.monotonic() - t0, reason,
                                        self.target)  # fmt: skip
                    remaining = self.timeout_s - (time.monotonic() - t0)
                    if remaining <= 0:
                        return BatchRun(name, "timeout", None, time.monotonic() - t0,
                                        f"Job {name} still running after {self.timeout_s:g} s",
                                        self.target)  # fmt: skip
                    _pause(cancel, min(self.poll_interval_s, remaining))
        except (httpx.HTTPError, EdgeError) as exc:
            return _ended(exc, created, t0, self.target)


def adapter_from_config(
    cfg: Any, *, allow_http: bool = False
) -> HttpJobAdapter | KubernetesJobAdapter:
    """Build the adapter of a :class:`~mlmon.edge.config.BatchConfig`.

    A ``kubernetes`` job uses the pod's service account: its ``ca.crt`` as CA
    bundle and its token, read again before every run.
    """
    timeout = cfg.timeout.total_seconds()
    poll = getattr(cfg, "poll_interval", None)
    extra: dict[str, Any] = {} if poll is None else {"poll_interval_s": poll.total_seconds()}
    if cfg.kind == "http":
        return HttpJobAdapter(
            trigger_url=cfg.trigger_url, poll_url=cfg.poll_url, status_path=cfg.status_path,
            outputs_path=cfg.outputs_path, timeout_s=timeout, settings=HttpSettings(allow_http=allow_http),
            **extra,
        )  # fmt: skip
    token = SERVICE_ACCOUNT / "token"
    ca = SERVICE_ACCOUNT / "ca.crt"
    return KubernetesJobAdapter(
        api_url=cfg.api_url, namespace=cfg.namespace, cronjob=cfg.cronjob, timeout_s=timeout,
        settings=HttpSettings(ca_bundle=ca if ca.exists() else None, allow_http=allow_http),
        token_file=token if token.exists() else None, **extra,
    )  # fmt: skip
