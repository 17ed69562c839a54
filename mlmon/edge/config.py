"""The edge collector's configuration: one frozen, validated object per process.

:func:`load_config` is the only reader of the config file and of the
environment. Precedence: arguments > ``MLMON_*`` environment > file >
defaults. Secrets (the HMAC key, bearer tokens) are never in the YAML: the
file names an environment variable or a mounted file holding them, and they
are redacted in ``repr``.

Example ``edge.yaml``::

    collector_id: edge-icu-1
    lake:
      uri: s3://hospital-mlmon/lake
      sse_kms_key_id: arn:aws:kms:eu-west-1:111122223333:key/abcd
    hmac_key: {env: MLMON_HMAC_KEY}            # or {file: /etc/mlmon/hmac.key}; >= 32 bytes
    state_dir: /var/lib/mlmon                  # a writable folder (checked at start)
    window: 5m                                 # 1m to 1d; lateness 0s to 1d (default 1m)
    models:
      - name: risk-model
        reference: /etc/mlmon/risk-model.reference.parquet
        endpoint:                                # request shapes: docs/protocols.md
          url: https://risk.models.svc:8443
          protocol: oip_v2
          model_name: risk
          request_shape: tensor                  # one [n, k] tensor in this feature order
          features: [age, bmi, creatinine, heart_rate]
          model_version: "3"                     # or version_alias: {registry: ..., alias: champion}
        golden: {file: /etc/mlmon/golden.jsonl, schedule: every 15m}
        streams:
          - {path: /var/log/inference/risk, format: jsonl, kind: tabular, schedule: every 1m}
        samples:                                 # opt-in, per model: docs/samples.md
          rate: 0.05
          k: 5
          low_risk: [ward]
          fields: {age: {rule: generalise, width: 5, top: 90}, ward: keep, note: redact}
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlmon.durations import parse_duration
from mlmon.edge.imaging.config import ImagingConfig
from mlmon.errors import ConfigError, MlmonDeprecationWarning
from mlmon.governance.samples import SamplesConfig

__all__ = [
    "BatchConfig",
    "EdgeConfig",
    "EndpointConfig",
    "GoldenConfig",
    "LakeConfig",
    "ModelConfig",
    "Schedule",
    "SecretRef",
    "StreamConfig",
    "VersionAliasConfig",
    "load_config",
    "open_state_dir",
    "parse_duration",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MIN_HMAC_KEY_BYTES = 32
"""The edge refuses a shorter HMAC key at start: ids and versions are hashed under it."""
MIN_WINDOW, MAX_WINDOW = timedelta(minutes=1), timedelta(days=1)


def _show_duration(v: timedelta) -> str:
    seconds = v.total_seconds()
    return f"{seconds:g}s"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretRef(_Frozen):
    """Where a secret lives: an environment variable or a mounted file (never inline)."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, v: Any) -> Any:
        if not isinstance(v, Mapping | SecretRef):
            raise ValueError(
                "a secret is never written in the YAML (and is not repeated here); give "
                "{env: VARIABLE} or {file: /path/to/secret} and put the value there"
            )
        return v

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env: VARIABLE or file: /path/to/secret")
        return self


class Schedule(_Frozen):
    """``every 5m`` (an interval) or a five-field cron expression (``*/15 * * * *``)."""

    spec: str

    @field_validator("spec")
    @classmethod
    def _valid(cls, v: str) -> str:
        text = v.strip()
        if text.startswith("every "):
            parse_duration(text[6:])
            return text
        from croniter import croniter

        if not croniter.is_valid(text):
            raise ValueError(
                f'"{v}" is neither "every <duration>" nor a cron expression like "*/15 * * * *"'
            )
        return text

    @property
    def interval(self) -> timedelta | None:
        return parse_duration(self.spec[6:]) if self.spec.startswith("every ") else None


def _schedule(v: Any) -> Any:
    return {"spec": v} if isinstance(v, str) else v


class LakeConfig(_Frozen):
    """Where the edge writes, how objects are encrypted, and how hard it tries while the bucket
    is away (docs/security.md, "Outages and encryption").

    An ``s3://`` lake needs ``sse_kms_key_id`` (every PUT asks for SSE-KMS with that key) unless
    ``encryption: bucket-default`` says explicitly that the bucket's default encryption is
    relied on; the edge then checks the SSE header of the PUT answers and says so in /healthz
    when an object landed without one. Each PUT is bounded (``connect_timeout``,
    ``read_timeout``, ``attempts``); after a failure the bucket counts as down, objects go to
    the spool at once, and the bucket is tried again after ``retry_min``, doubling up to
    ``retry_max``.
    """

    uri: str
    sse_kms_key_id: str | None = None
    encryption: Literal["sse-kms", "bucket-default"] = "sse-kms"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    connect_timeout: timedelta = timedelta(seconds=3)
    read_timeout: timedelta = timedelta(seconds=15)
    attempts: int = Field(default=2, ge=1, le=10)
    retry_min: timedelta = timedelta(seconds=2)
    retry_max: timedelta = timedelta(minutes=1)

    _lake_durations = field_validator(
        "connect_timeout", "read_timeout", "retry_min", "retry_max", mode="before"
    )(lambda v: parse_duration(v))

    @field_validator("connect_timeout", "read_timeout", "retry_min", "retry_max")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() <= 0:
            raise ValueError(f"{v.total_seconds():g}s is not a positive duration; use e.g. 5s")
        return v

    @field_validator("sse_kms_key_id")
    @classmethod
    def _key_not_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError(
                "lake.sse_kms_key_id is empty (is MLMON_SSE_KMS_KEY_ID set to nothing?); give the "
                "KMS key id or ARN, or remove it and set lake.encryption: bucket-default"
            )
        return v

    @model_validator(mode="after")
    def _encrypted(self) -> LakeConfig:
        if not self.uri.startswith(("s3://", "s3a://")):
            return self
        if self.encryption == "sse-kms" and not self.sse_kms_key_id:
            raise ValueError(
                "lake.sse_kms_key_id is missing: an s3:// lake is written with SSE-KMS only. Set "
                "lake.sse_kms_key_id (or the MLMON_SSE_KMS_KEY_ID environment variable) to the "
                "KMS key id or ARN, or set lake.encryption: bucket-default to rely on the "
                "bucket's default encryption (the edge then checks the objects' SSE header)"
            )
        if self.encryption == "bucket-default" and self.sse_kms_key_id:
            raise ValueError(
                "lake.encryption is bucket-default but lake.sse_kms_key_id (or "
                "MLMON_SSE_KMS_KEY_ID) is set too; keep one: the key (SSE-KMS on every PUT) or "
                "bucket-default"
            )
        if self.retry_max < self.retry_min:
            raise ValueError("lake.retry_max is below lake.retry_min; make it at least as long")
        return self

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(_secret_keys(v))
        if bad:
            raise ValueError(
                f"credentials ({', '.join(bad)}) do not belong in the YAML; use the workload's IAM role "
                "or AWS_* environment variables"
            )
        return v


_SECRET_KEY = re.compile(r"^(key|secret)$|secret|token|password|passwd|credential|private", re.I)


def _secret_keys(options: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The (dotted) keys of ``options`` that name a credential, nested mappings included."""
    out = []
    for k, v in options.items():
        if _SECRET_KEY.search(str(k)):
            out.append(prefix + str(k))
        elif isinstance(v, Mapping):
            out += _secret_keys(v, f"{prefix}{k}.")
    return out


def _version_text(v: Any) -> Any:
    """YAML reads ``model_version: 2`` as a number; a version is text."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        raise ValueError(
            f'model_version {v!r} was read as a number; quote it (model_version: "{v}") so '
            "that e.g. 1.10 stays 1.10"
        )
    return v


class VersionAliasConfig(_Frozen):
    """The registry alias an endpoint follows (read-only, re-read every ``refresh``).

    The version written is the aliased version's endpoint version under ``match``
    (see :class:`mlmon.registry.AttributionRule`): its ``tag`` when set, else its number.
    """

    registry: str  # the MLflow tracking server, e.g. https://mlflow.internal
    model: str  # the registered model name
    alias: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$")
    match: Literal["auto", "tag", "version", "run_id"] = "auto"
    tag: str = "mlmon.endpoint_version"
    refresh: timedelta = timedelta(minutes=5)
    token: SecretRef | None = None  # else MLFLOW_TRACKING_TOKEN / _USERNAME + _PASSWORD
    ca_bundle: Path | None = None

    _r = field_validator("refresh", mode="before")(lambda v: parse_duration(v))

    @field_validator("registry")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError(
                f"registry {v!r} is not an http(s) URL; give the MLflow tracking server, e.g. "
                "https://mlflow.internal"
            )
        return v


class EndpointConfig(_Frozen):
    url: str
    protocol: Literal["kserve_v1", "oip_v2", "mlflow", "generic_json"] = "oip_v2"
    model_name: str | None = None
    # request shapes and outputs (docs/protocols.md); None keeps each protocol's default
    request_shape: str | None = None
    features: tuple[str, ...] | None = None
    tensor_name: str = Field(default="input-0", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$")
    tensor_datatype: str | None = None
    output: str | None = None
    output_column: int | str | None = None
    # which version answers: declared, or the registry alias it follows (docs/protocols.md)
    model_version: str | None = None
    version_alias: VersionAliasConfig | None = None
    timeout: timedelta = timedelta(seconds=5)
    retries: int = Field(default=2, ge=0, le=10)
    backoff: timedelta = timedelta(milliseconds=200)
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    bearer_token: SecretRef | None = None
    request_template: str | None = None
    response_path: str | None = None

    _durations = field_validator("timeout", "backoff", mode="before")(lambda v: parse_duration(v))
    _v = field_validator("model_version", mode="before")(lambda v: _version_text(v))

    @field_validator("model_version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from mlmon.edge.versions import is_version

        if not is_version(v):
            raise ValueError(
                f"model_version is not a version string ({len(v)} characters); use 1-64 letters, "
                "digits or '.', '_', '+', '-', starting with a letter or digit, e.g. \"3\""
            )
        return v

    @model_validator(mode="after")
    def _generic(self) -> EndpointConfig:
        if self.protocol == "generic_json" and not (self.request_template and self.response_path):
            raise ValueError("protocol generic_json needs request_template and response_path")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("mTLS needs both client_cert and client_key")
        if self.model_version is not None and self.version_alias is not None:
            raise ValueError(
                "give model_version (the version this endpoint serves) or version_alias (the "
                "registry alias it follows), not both"
            )
        from mlmon.edge.protocols import shape_problem

        problem = shape_problem(
            self.protocol,
            self.request_shape,
            self.features,
            tensor_datatype=self.tensor_datatype,
            output=self.output,
            output_column=self.output_column,
        )
        if problem:
            raise ValueError(problem)
        return self


class GoldenConfig(_Frozen):
    file: Path
    schedule: Schedule = Schedule(spec="every 15m")
    min_pass_rate: float = Field(default=1.0, ge=0, le=1)

    _s = field_validator("schedule", mode="before")(lambda v: _schedule(v))


class StreamConfig(_Frozen):
    path: str
    format: Literal["jsonl", "csv", "parquet"] = "jsonl"
    kind: str = "tabular"
    schedule: Schedule = Schedule(spec="every 1m")
    request_id_column: str | None = "request_id"
    # issue 17: how tabular timestamps are written; lines too long to read; backlog steps
    timestamp_format: Literal["iso8601", "epoch_s", "epoch_ms"] = "iso8601"
    max_line_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    commit_every_records: int = Field(default=100_000, ge=1)
    commit_every_files: int = Field(default=10, ge=1)
    settle: timedelta = timedelta(hours=1)  # unchanged this long: a file is complete

    _s = field_validator("schedule", mode="before")(lambda v: _schedule(v))
    _settle = field_validator("settle", mode="before")(lambda v: parse_duration(v))


class BatchConfig(_Frozen):
    kind: Literal["http", "kubernetes"]
    schedule: Schedule
    trigger_url: str | None = None
    poll_url: str | None = None
    status_path: str = "status"
    outputs_path: str | None = None
    namespace: str | None = None
    cronjob: str | None = None
    api_url: str = "https://kubernetes.default.svc"
    timeout: timedelta = timedelta(hours=1)
    poll_interval: timedelta | None = None  # between status polls (default: http 2 s, k8s 5 s)

    _s = field_validator("schedule", mode="before")(lambda v: _schedule(v))
    _t = field_validator("timeout", mode="before")(lambda v: parse_duration(v))
    _p = field_validator("poll_interval", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )

    @model_validator(mode="after")
    def _fields(self) -> BatchConfig:
        if self.kind == "http" and not (self.trigger_url and self.poll_url):
            raise ValueError("an http batch job needs trigger_url and poll_url")
        if self.kind == "kubernetes" and not (self.namespace and self.cronjob):
            raise ValueError(
                "a kubernetes batch job needs namespace and cronjob (the one designated CronJob)"
            )
        return self


class _HttpSurface(_Frozen):
    """Where and how an HTTP surface of the edge listens (the sink, ``/metrics``).

    A non-loopback ``host`` needs TLS (``tls_cert`` + ``tls_key``) and a client
    credential (a bearer ``token`` from a secret file or variable, or
    ``client_ca`` for client certificates), unless ``allow_insecure_bind: true``
    says that something else protects it (a TLS sidecar, a service mesh).
    """

    host: str = "127.0.0.1"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None  # client certificates signed by this CA are required
    token: SecretRef | None = None  # Authorization: Bearer <token>, e.g. {file: /etc/mlmon/token}
    allow_insecure_bind: bool = False
    backlog: int = Field(default=1024, ge=1, le=65535)
    idle_timeout: timedelta = timedelta(seconds=5)
    read_timeout: timedelta = timedelta(seconds=10)
    max_connections: int = Field(default=4096, ge=1)

    _t = field_validator("idle_timeout", "read_timeout", mode="before")(lambda v: parse_duration(v))

    @model_validator(mode="after")
    def _secure(self) -> _HttpSurface:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValueError("client_ca needs TLS: give tls_cert and tls_key too")
        for name in ("idle_timeout", "read_timeout"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        from mlmon.edge.serve import is_loopback

        credential = self.token is not None or self.client_ca is not None
        exposed = not is_loopback(self.host) and not self.allow_insecure_bind
        if exposed and (self.tls_cert is None or not credential):
            raise ValueError(
                "host is not a loopback address (127.0.0.1, ::1, localhost), and this listener has "
                + ("no TLS (tls_cert, tls_key)" if self.tls_cert is None else "TLS but")
                + ("" if credential else " no bearer token (token) or client_ca")
                + "; configure them, or set allow_insecure_bind: true if a TLS sidecar "
                "or mesh in front of it does"
            )
        return self

    def serve_settings(self, port: int, what: str) -> Any:
        """The :class:`~mlmon.edge.serve.ServeSettings` (reads the token from its secret)."""
        from mlmon.edge.serve import ServeSettings

        token = _read_secret(self.token, f"{what}.token") if self.token is not None else None
        try:
            return ServeSettings(
                host=self.host, port=port, tls_cert=self.tls_cert, tls_key=self.tls_key,
                client_ca=self.client_ca, token=token, backlog=self.backlog,
                idle_timeout_s=self.idle_timeout.total_seconds(),
                read_timeout_s=self.read_timeout.total_seconds(),
                max_connections=self.max_connections,
            )  # fmt: skip
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from exc


class SinkConfig(_HttpSurface):
    port: int = Field(default=8088, ge=0, le=65535)
    max_body_bytes: int = 16 * 1024 * 1024
    commit_every: timedelta = timedelta(seconds=10)  # hand-over, window close and commit

    _c = field_validator("commit_every", mode="before")(lambda v: parse_duration(v))


class PerformanceConfig(_Frozen):
    """Delayed labels joined at the edge (issue 7; docs/performance.md).

    The task, classes, thresholds and score bins come from the model's reference
    (``mlmon reference build --task ...``); this section says how labels arrive.
    """

    store_predictions: bool = False  # opt-in local store of (HMAC id, window, prediction)
    label_horizon: timedelta = timedelta(days=60)
    labels_folder: str | None = None  # watched read-only folder or s3:// prefix of labels files
    labels_storage_options: dict[str, Any] = Field(default_factory=dict)  # fsspec, for a prefix
    schedule: Schedule = Schedule(spec="every 15m")
    id_column: str = "request_id"
    label_column: str = "label"
    time_column: str | None = "event_time"
    score_column: str | None = None  # labels that carry the model's score
    prediction_time_column: str | None = None
    version_column: str | None = None

    _h = field_validator("label_horizon", mode="before")(lambda v: parse_duration(v))
    _s = field_validator("schedule", mode="before")(lambda v: _schedule(v))


class ModelConfig(_Frozen):
    name: str = Field(pattern=_NAME)
    reference: Path
    endpoint: EndpointConfig | None = None
    golden: GoldenConfig | None = None
    streams: tuple[StreamConfig, ...] = ()
    batch: BatchConfig | None = None
    sink: SinkConfig | None = None
    samples: SamplesConfig | None = None  # opt-in de-identified samples (docs/samples.md)
    performance: PerformanceConfig | None = None  # delayed labels (docs/performance.md)
    imaging: ImagingConfig | None = None  # DICOM folder or DICOMweb PACS (docs/imaging.md)
    # Drift thresholds of this model's windows: {method: value} and {feature: {method: value}},
    # over the reference's data-driven ones and the defaults (mlmon.analysis.thresholds).
    drift_thresholds: dict[str, float | dict[str, float]] = Field(default_factory=dict)

    @field_validator("drift_thresholds")
    @classmethod
    def _known_drift_methods(
        cls, v: dict[str, float | dict[str, float]]
    ) -> dict[str, float | dict[str, float]]:
        from mlmon.analysis.thresholds import Thresholds
        from mlmon.errors import MlmonError

        try:
            Thresholds.parse(v)
        except MlmonError as exc:  # UnknownNameError is a KeyError: pydantic wants ValueError
            raise ValueError(exc.args[0]) from exc
        return v

    @model_validator(mode="after")
    def _golden_needs_endpoint(self) -> ModelConfig:
        if self.golden is not None and self.endpoint is None:
            raise ValueError(
                "golden: is set but endpoint: is not, so the golden samples have nowhere to go; "
                "add endpoint: {url: ..., protocol: ...} (docs/protocols.md) or remove golden:"
            )
        return self


class MetricsConfig(_HttpSurface):
    port: int = Field(default=9108, ge=0, le=65535)


class EdgeConfig(_Frozen):
    """Everything one edge collector process needs."""

    collector_id: str = Field(pattern=_NAME)
    lake: LakeConfig
    hmac_key: SecretRef
    state_dir: Path
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    window: timedelta = timedelta(minutes=5)
    lateness: timedelta = timedelta(minutes=1)
    # accepted so existing edge.yaml files load; windows keep exact allow-listed counts and
    # small counts are folded where shown (docs/security.md section 16, issue 19)
    k_anonymity: int = Field(default=5, ge=1)
    buffer_max_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    allow_http: bool = False
    metrics: MetricsConfig | None = MetricsConfig()
    audit: bool = True
    audit_signing_key: SecretRef | None = None
    source: str = Field(default="<arguments>", exclude=True)
    sha256: str = Field(default="", exclude=True)

    _d = field_validator("window", "lateness", mode="before")(lambda v: parse_duration(v))

    @field_validator("window")
    @classmethod
    def _window(cls, v: timedelta) -> timedelta:
        if not MIN_WINDOW <= v <= MAX_WINDOW:
            raise ValueError(
                f"must be from 1m to 1d (every window is one object per table and model), "
                f"got {_show_duration(v)}; use e.g. 5m or 1h"
            )
        return v

    @field_validator("lateness")
    @classmethod
    def _lateness(cls, v: timedelta) -> timedelta:
        if not timedelta(0) <= v <= MAX_WINDOW:
            raise ValueError(f"must be from 0s to 1d, got {_show_duration(v)}; use e.g. 1m")
        return v

    @model_validator(mode="after")
    def _checks(self) -> EdgeConfig:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        if not self.allow_http:
            for i, m in enumerate(self.models):
                for what, url in (("endpoint.url", m.endpoint and m.endpoint.url),
                                  ("batch.trigger_url", m.batch and m.batch.trigger_url)):  # fmt: skip
                    if url and not str(url).startswith("https://"):
                        raise ValueError(
                            f"models[{i}].{what} {url!r} is not https; production mode accepts TLS "
                            "endpoints only (set allow_http: true for a loopback test setup)"
                        )
        return self

    def hmac_secret(self) -> bytes:
        """Read the HMAC key from where the config points (environment or mounted file).

        Raises
        ------
        ConfigError
            It cannot be read, or is shorter than :data:`MIN_HMAC_KEY_BYTES` (the message
            gives its length, never its value).
        """
        key = _read_secret(self.hmac_key, f"{self.source}: hmac_key")
        if len(key) < MIN_HMAC_KEY_BYTES:
            ref = self.hmac_key
            where = f"environment variable {ref.env}" if ref.env else f"file {ref.file}"
            raise ConfigError(
                f"{self.source}: hmac_key: the key in {where} is {len(key)} bytes; use at least "
                f"{MIN_HMAC_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`"
            )
        return key


def _read_secret(ref: SecretRef, what: str) -> bytes:
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigError(
                f"{what}: environment variable {ref.env} is not set; export the secret there"
            )
        return value.encode()
    assert ref.file is not None
    try:
        data = ref.file.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read secret file {ref.file}: {exc.strerror}") from exc
    if not data:
        raise ConfigError(f"{what}: secret file {ref.file} is empty")
    return data


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = []
    errors = exc.errors()
    nested = {e["loc"][0] for e in errors if len(e["loc"]) > 1}
    for err in errors:
        if err["type"] == "too_short" and len(err["loc"]) == 1 and err["loc"][0] in nested:
            continue  # pydantic repeats a list's item errors as "too short"; the item errors say more
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        # a nested model's error text repeats its input: hide it
        msg = _INPUT_VALUE.sub("input_value=<not shown>", msg)
        # never the input itself: it may be a secret written inline; its type is enough
        got = err.get("input")
        shown = "" if isinstance(got, Mapping | list) or got is None else f" (got {_kind(got)})"
        lines.append(f"{source}: {loc or '(top level)'}: {msg}{shown}")
    return "\n".join(lines)


_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]|$)", re.S)


def _kind(value: Any) -> str:
    """What a refused value is, without the value: ``text``, ``a number``, ``true/false``."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what a YAML syntax error is, without the snippet PyYAML quotes from the file."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def open_state_dir(config: EdgeConfig) -> Path:
    """Create ``state_dir`` if needed and check the edge can write there.

    Raises
    ------
    ConfigError
        Naming the file and ``state_dir``: it is a file, or cannot be created or written.
    """
    path = Path(config.state_dir)
    where = f"{config.source}: state_dir {path}"
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{where} is not a folder; point state_dir at a writable folder (a volume)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mlmon-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"{where} cannot be used ({exc.strerror or type(exc).__name__}); give the edge's user "
            "a writable folder (a volume) there"
        ) from exc
    return path


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if env.get("MLMON_COLLECTOR_ID"):
        out["collector_id"] = env["MLMON_COLLECTOR_ID"]
    if env.get("MLMON_STATE_DIR"):
        out["state_dir"] = env["MLMON_STATE_DIR"]
    lake: dict[str, Any] = {}
    if env.get("MLMON_LAKE"):
        lake["uri"] = env["MLMON_LAKE"]
    if "MLMON_SSE_KMS_KEY_ID" in env:  # set but empty is refused, never read as "no key"
        lake["sse_kms_key_id"] = env["MLMON_SSE_KMS_KEY_ID"]
    if env.get("MLMON_S3_ENDPOINT"):
        lake["storage_options"] = {"endpoint_url": env["MLMON_S3_ENDPOINT"]}
    if lake:
        out["lake"] = lake
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> EdgeConfig:
    """Read, merge and validate the edge configuration.

    Precedence: ``overrides`` (arguments) > ``MLMON_*`` environment
    (``MLMON_COLLECTOR_ID``, ``MLMON_STATE_DIR``, ``MLMON_LAKE``,
    ``MLMON_SSE_KMS_KEY_ID``, ``MLMON_S3_ENDPOINT``) > the YAML file > defaults.
    Relative paths in the file are resolved against the file's folder.

    Raises
    ------
    ConfigError
        Naming the file, the field and what is wrong, one line per problem.
    """
    source = os.fspath(path) if path is not None else "<arguments>"
    raw: dict[str, Any] = {}
    text = b""
    if path is not None:
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of settings")
        raw = _resolve_paths(loaded, Path(path).resolve().parent)
    merged = _merge(_merge(raw, _env_overrides(os.environ if env is None else env)), overrides)
    merged["source"] = source
    merged["sha256"] = hashlib.sha256(text).hexdigest()
    try:
        config = EdgeConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from exc
    if "k_anonymity" in merged:
        warnings.warn(K_ANONYMITY_DEPRECATED.format(where=f"{source}: k_anonymity"),
                      MlmonDeprecationWarning, stacklevel=2)  # fmt: skip
    return config


#: The warning for ``k_anonymity`` in edge.yaml and ``mlmon profile --k`` (issue 19).
K_ANONYMITY_DEPRECATED = (
    "{where} is deprecated and ignored: windows keep exact counts of allow-listed categories, "
    "and small counts are folded where counts are shown (docs/security.md section 16); "
    "remove it"
)


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    def fix(v: Any) -> Any:
        if (
            isinstance(v, str)
            and v
            and not v.startswith(("/", "s3://", "file://", "http://", "https://"))
        ):
            return str(base / v)
        return v

    def listener(d: Any) -> Any:  # the TLS files and token file of the sink and /metrics
        if not isinstance(d, dict):
            return d
        d = {k: fix(v) if k in ("tls_cert", "tls_key", "client_ca") else v for k, v in d.items()}
        if isinstance(d.get("token"), dict) and "file" in d["token"]:
            d["token"] = {**d["token"], "file": fix(d["token"]["file"])}
        return d

    out = dict(raw)
    if "state_dir" in out:
        out["state_dir"] = fix(out["state_dir"])
    if "metrics" in out:
        out["metrics"] = listener(out["metrics"])
    if isinstance(out.get("hmac_key"), dict) and "file" in out["hmac_key"]:
        out["hmac_key"] = {**out["hmac_key"], "file": fix(out["hmac_key"]["file"])}
    models = []
    for m in out.get("models") or []:
        if not isinstance(m, dict):
            models.append(m)
            continue
        m = dict(m)
        if "reference" in m:
            m["reference"] = fix(m["reference"])
        if "sink" in m:
            m["sink"] = listener(m["sink"])
        if isinstance(m.get("golden"), dict) and "file" in m["golden"]:
            m["golden"] = {**m["golden"], "file": fix(m["golden"]["file"])}
        if isinstance(m.get("imaging"), dict) and "folder" in m["imaging"]:
            m["imaging"] = {**m["imaging"], "folder": fix(m["imaging"]["folder"])}
        if isinstance(m.get("streams"), list):
            m["streams"] = [
                {**s, "path": fix(s["path"])} if isinstance(s, dict) and "path" in s else s
                for s in m["streams"]
            ]
        models.append(m)
    if models:
        out["models"] = models
    return out
