"""The registry watch's YAML (``mlmon registry watch --config``), validated (docs/registry.md).

Precedence: the file, then the defaults. Secrets (registry token, HMAC key) are
never in the YAML: ``registry.token_env`` / ``token_file`` and ``hmac_key`` name
where they live.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from mlmon.durations import parse_duration
from mlmon.errors import ConfigError

__all__ = ["WatchConfig", "load_watch_config"]


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegistrySection(_Frozen):
    url: str
    kind: str = "mlflow"
    allow_http: bool = False
    token_env: str | None = None
    token_file: Path | None = None
    ca_bundle: Path | None = None


class LakeSection(_Frozen):
    uri: str
    storage_options: dict[str, str] = Field(default_factory=dict)


class SecretRef(_Frozen):
    env: str | None = None
    file: Path | None = None


class ToleranceSection(_Frozen):
    max_disagreement: float = 0.0
    score_abs_tol: float = 1e-6
    score_rel_tol: float = 1e-6
    max_pass_rate_drop: float = 0.0
    latency_ratio: float = 1.5
    latency_floor_ms: float = 50.0
    output_drift_method: str = "jensen_shannon"
    max_output_drift: float | None = None


class TestSection(_Frozen):
    """How to test a candidate: where the champion and candidates are served, the golden set."""

    champion_alias: str = "champion,production"
    champion_endpoint: str
    candidate_endpoint: str | None = None  # a template with {version}
    candidate_endpoints: dict[str, str] = Field(default_factory=dict)
    golden: Path | None = None
    edge_config: Path | None = None
    protocol: str | None = None
    model_name: str | None = None
    endpoint_token_env: str | None = None
    endpoint_ca_bundle: Path | None = None
    retries: int = 2
    output_feature: str | None = None
    tolerance: ToleranceSection = Field(default_factory=ToleranceSection)


class ModelSection(_Frozen):
    name: str
    lake_model: str | None = None
    match: str = "auto"
    tag: str = "mlmon.endpoint_version"
    candidate_aliases: list[str] = Field(default_factory=lambda: ["challenger", "candidate"])
    test: TestSection | None = None

    @field_validator("lake_model")
    @classmethod
    def _lake_name(cls, v: str | None) -> str | None:
        if v is not None:
            from mlmon.lake.writer import check_name

            try:
                check_name(v, "lake_model")
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return v


class WatchConfig(_Frozen):
    registry: RegistrySection
    lake: LakeSection
    state_dir: Path
    collector_id: str = "registry-watch"
    interval: Duration = timedelta(minutes=1)
    allow_http: bool = False
    hmac_key: SecretRef | None = None
    models: list[ModelSection] = Field(min_length=1)

    def hmac_secret(self) -> bytes | None:
        """The HMAC key keying the version guard (optional: without it, bad names are dropped)."""
        if self.hmac_key is None:
            return None
        from mlmon.edge.config import SecretRef as EdgeSecret
        from mlmon.edge.config import _read_secret

        ref = EdgeSecret(env=self.hmac_key.env, file=self.hmac_key.file)
        return _read_secret(ref, "registry watch: hmac_key")


def load_watch_config(path: str | Path) -> WatchConfig:
    """Read and validate the watch's YAML; errors name the file and the field.

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or a field is wrong.
    """
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the watch config ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    try:
        return WatchConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{p}: {problems}") from exc
