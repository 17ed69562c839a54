"""Edge configuration: bad configs fail at start naming the file, the field and the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mlmon.edge.config import load_config
from mlmon.errors import ConfigError

GOOD = """
collector_id: edge-1
lake: {uri: s3://bucket/lake, sse_kms_key_id: alias/mlmon}
hmac_key: {env: MLMON_HMAC_KEY}
state_dir: state
window: 5m
models:
  - name: risk-model
    reference: ref.parquet
    endpoint: {url: https://risk.svc:8443, protocol: oip_v2, model_name: risk, timeout: 2s}
    golden: {file: golden.jsonl, schedule: "*/15 * * * *"}
    streams:
      - {path: logs, format: jsonl, kind: tabular, schedule: every 1m}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "edge.yaml"
    p.write_text(text)
    return p


def test_good_config_resolves_paths_and_precedence(tmp_path):
    p = write(tmp_path, GOOD)
    cfg = load_config(p, env={"MLMON_LAKE": "s3://other/lake"}, collector_id="edge-override")
    assert cfg.collector_id == "edge-override"  # argument beats file
    assert cfg.lake.uri == "s3://other/lake"  # environment beats file
    assert cfg.lake.sse_kms_key_id == "alias/mlmon"
    assert cfg.state_dir == tmp_path / "state"
    m = cfg.models[0]
    assert m.reference == tmp_path / "ref.parquet" and m.endpoint.timeout == timedelta(seconds=2)
    assert m.streams[0].schedule.interval == timedelta(minutes=1)
    assert len(cfg.sha256) == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("window: 5m", "window: 5x"), 'window: "5x" is not a duration'),
        (("timeout: 2s", "timeout: soon"), 'models[0].endpoint.timeout: "soon" is not a duration'),
        (('schedule: "*/15 * * * *"', 'schedule: "every 99 parsecs"'), "models[0].golden.schedule"),
        (("https://risk.svc:8443", "http://risk.svc:8080"), "models[0].endpoint.url 'http://risk.svc:8080' is not https"),
        (("protocol: oip_v2", "protocol: grpc"), "models[0].endpoint.protocol"),
        (("name: risk-model", "name: risk model!"), "models[0].name"),
        (("hmac_key: {env: MLMON_HMAC_KEY}", "hmac_key: {value: hunter2}"), "hmac_key"),
        (("lake: {uri: s3://bucket/lake, sse_kms_key_id: alias/mlmon}", "lake: {uri: s3://b/l, storage_options: {secret: x}}"),
         "credentials (secret) do not belong in the YAML"),
    ],
)  # fmt: skip
def test_bad_configs_name_file_field_and_fix(tmp_path, change, message):
    p = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    text = str(info.value)
    assert str(p) in text and message in text


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "models: [unclosed"), env={})
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml", env={})


def test_secrets_come_from_env_or_file_and_are_checked(tmp_path, monkeypatch):
    cfg = load_config(write(tmp_path, GOOD), env={})
    monkeypatch.delenv("MLMON_HMAC_KEY", raising=False)
    with pytest.raises(ConfigError, match="MLMON_HMAC_KEY is not set"):
        cfg.hmac_secret()
    monkeypatch.setenv("MLMON_HMAC_KEY", "k" * 32)
    assert cfg.hmac_secret() == b"k" * 32
    (tmp_path / "key").write_text("s" * 40 + "\n")
    cfg2 = load_config(
        write(tmp_path, GOOD.replace("{env: MLMON_HMAC_KEY}", "{file: key}")), env={}
    )
    assert cfg2.hmac_secret() == b"s" * 40
    assert "s" * 40 not in repr(cfg2)


def test_golden_without_endpoint_is_an_error_naming_the_field_and_the_fix(tmp_path):
    no_endpoint = GOOD.replace(
        "    endpoint: {url: https://risk.svc:8443, protocol: oip_v2, model_name: risk, timeout: 2s}\n",
        "",
    )
    assert "endpoint" not in no_endpoint  # the golden set had nowhere to go: it was ignored
    p = write(tmp_path, no_endpoint)
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    text = str(info.value)
    assert f"{p}: models[0]: golden: is set but endpoint: is not" in text
    assert "add endpoint: {url: ..., protocol: ...}" in text and "or remove golden:" in text
    # without golden: a stream-only model needs no endpoint
    streams_only = no_endpoint.replace(
        '    golden: {file: golden.jsonl, schedule: "*/15 * * * *"}\n', ""
    )
    other = tmp_path / "streams-only"
    other.mkdir()
    assert load_config(write(other, streams_only), env={}).models[0].endpoint is None
    # the shell user sees it as a config error (exit 2), not a collector that never probes
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLMON_HMAC_KEY": "k" * 32}
    proc = subprocess.run([sys.executable, "-m", "mlmon.cli", "edge", "once", "--config", str(p)],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 2 and "golden: is set but endpoint: is not" in proc.stderr
