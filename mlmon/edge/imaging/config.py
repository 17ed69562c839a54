"""The ``imaging:`` section of a model in ``edge.yaml``.

Example::

    models:
      - name: chest-ct-triage
        reference: /etc/mlmon/chest-ct.reference.parquet
        imaging:
          folder: /mnt/pacs-export/ct          # read-only; or dicomweb: below
          # dicomweb: {url: https://pacs.hospital/dicom-web, token: {env: PACS_TOKEN},
          #            ca_bundle: /etc/mlmon/pacs-ca.pem}
          schedule: every 1m
          attributes: [Modality, Manufacturer, KVP, ConvolutionKernel]   # default: DEFAULT_ATTRIBUTES
          pixels: true                           # false: metadata only (stop_before_pixels)
          profile_options: [retain_device_identity]   # PS3.15 options whose K the list may use

An attribute that could identify (see :mod:`mlmon.edge.imaging.attributes`)
makes the config fail at start, naming it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlmon.durations import parse_duration
from mlmon.edge.imaging.attributes import DEFAULT_ATTRIBUTES

__all__ = ["DicomWebConfig", "ImagingConfig"]


def _schedule(v: Any) -> Any:
    from mlmon.edge.config import Schedule  # imported late: mlmon.edge.config imports this module

    return (
        v if isinstance(v, Schedule) else Schedule(spec=v) if isinstance(v, str) else Schedule(**v)
    )


def _secret(v: Any) -> Any:
    from pydantic import ValidationError

    from mlmon.edge.config import SecretRef

    if v is None or isinstance(v, SecretRef):
        return v
    try:
        return SecretRef.model_validate(v)
    except ValidationError as exc:  # its str repeats the input: name the fields only
        raise ValueError(
            "; ".join(
                ".".join(str(p) for p in e["loc"])
                + (": " if e["loc"] else "")
                + e["msg"].removeprefix("Value error, ")
                for e in exc.errors()
            )
        ) from None


def _duration(v: Any) -> timedelta:
    return parse_duration(v)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class DicomWebConfig(_Frozen):
    """A PACS's DICOMweb root (QIDO-RS and WADO-RS), read-only."""

    url: str
    token: Any = None  # SecretRef: a bearer token
    username: str | None = None
    password: Any = None  # SecretRef: HTTP basic auth with username
    ca_bundle: Path | None = None
    timeout: timedelta = timedelta(seconds=30)
    page_size: int = Field(default=500, ge=1, le=10_000)
    query: dict[str, str] = Field(default_factory=dict)  # extra QIDO filters, e.g. Modality: CT
    lookback: timedelta | None = None  # only studies dated within this of now (QIDO StudyDate)

    _t = field_validator("timeout", mode="before")(lambda v: _duration(v))
    _l = field_validator("lookback", mode="before")(lambda v: None if v is None else _duration(v))
    _s = field_validator("token", "password", mode="before")(lambda v: _secret(v))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL of a DICOMweb root")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _auth(self) -> DicomWebConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("HTTP basic auth needs both username and password (a secret ref)")
        if self.token is not None and self.password is not None:
            raise ValueError("give either token (bearer) or username/password, not both")
        for k in self.query:
            from mlmon.edge.imaging.attributes import refusal

            why = refusal(k)
            if why is not None:  # a QIDO filter on an identifying field would put PHI in the config
                raise ValueError(f"query filter {why}; filter on acquisition attributes only")
        return self


class ImagingConfig(_Frozen):
    """DICOM instances from a read-only folder or a DICOMweb PACS, profiled per window."""

    folder: str | None = None  # a local folder, or a read-only s3:// prefix
    storage_options: dict[str, Any] = Field(default_factory=dict)  # fsspec, for a prefix
    dicomweb: DicomWebConfig | None = None
    schedule: Any = Field(default="every 1m", validate_default=True)
    # PS3.15 options whose K (keep) the allow-list may use (docs/imaging.md); before attributes
    profile_options: tuple[str, ...] = ()
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    pixels: bool = True
    settle: timedelta = timedelta(seconds=2)  # files younger than this wait for the next read
    # a file that reads as cut short or not DICOM while younger than this may still be being
    # written: it waits (uncounted) for the next read; past it, it is counted as it reads
    partial_wait: timedelta = timedelta(minutes=10)
    # a read holds about 0.5 MB per 512x512 instance over DICOMweb until it ends (see
    # benchmarks/RESULTS.md): the cap bounds the edge's memory; a backlog drains over cycles
    max_instances_per_read: int = Field(default=500, ge=1)

    _s = field_validator("schedule", mode="before")(lambda v: _schedule(v))
    _d = field_validator("settle", "partial_wait", mode="before")(lambda v: _duration(v))

    @field_validator("profile_options")
    @classmethod
    def _options(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from mlmon.edge.imaging.attributes import _check_options

        _check_options(v)
        return v

    @field_validator("attributes")
    @classmethod
    def _allowed(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        from mlmon.edge.imaging.attributes import check_attributes

        options = info.data.get("profile_options", ())
        check_attributes(v, source="", options=options)  # a ConfigError names each refusal
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ImagingConfig:
        if (self.folder is None) == (self.dicomweb is None):
            raise ValueError("give exactly one of folder: /path or dicomweb: {url: ...}")
        return self
