"""Sign-in modes, team isolation, rate limits and the audit record of every request."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mlmon.cli import main
from mlmon.errors import ConfigError
from mlmon.governance.audit import AuditRecord
from mlmon.server.config import load_config
from tests.server.conftest import RANGE, TOKENS, write_config
from tests.server.lake import RISK, SEPSIS

pytestmark = pytest.mark.xdist_group("server")


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][0]}"}


def test_mode_none_is_refused_on_any_address_but_loopback(tmp_path: Path, capsys: Any) -> None:
    for host in ("0.0.0.0", "10.1.2.3", "::"):
        with pytest.raises(ConfigError, match="refused on host"):
            load_config(lake=str(tmp_path), host=host, env={})
    assert load_config(lake=str(tmp_path), host="127.0.0.1", env={}).auth.mode == "none"
    assert main(["server", "--lake", str(tmp_path), "--host", "0.0.0.0"]) == 2
    assert "refused on host '0.0.0.0'" in capsys.readouterr().err


def test_token_mode(make_client: Any) -> None:
    c = make_client({"mode": "token"})
    r = c.get("/api/v1/models")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert (
        c.get("/api/v1/models", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    )
    assert c.get("/api/v1/models", headers={"Authorization": TOKENS["alice"][0]}).status_code == 401
    r = c.get("/api/v1/models", headers=bearer("alice"))
    assert r.status_code == 200 and r.json()["models"] == [RISK]
    assert c.get("/api/v1/models", headers=bearer("root")).json()["models"] == [RISK, SEPSIS]
    assert c.get("/healthz").status_code == 200  # probes need no identity


def test_token_file_readable_by_others_is_refused(tmp_path: Path, server_lake: Path) -> None:
    path = write_config(tmp_path, server_lake, {"mode": "token"})
    os.chmod(tmp_path / "tokens.yaml", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_config(path, env={})
    os.chmod(tmp_path / "tokens.yaml", 0o600)
    text = (tmp_path / "tokens.yaml").read_text()
    assert not any(t in text for t, _ in TOKENS.values())  # only hashes are stored


def test_proxy_headers_from_an_untrusted_address_are_ignored(
    make_client: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "proxy-secret"
    secret.write_text("s3cret-shared-with-the-proxy")
    os.chmod(secret, 0o600)
    auth = {"mode": "proxy", "proxy": {"trusted": ["10.0.0.5/32"], "secret_file": str(secret)}}
    who = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "cardiology"}
    untrusted = make_client(auth, client=("10.0.0.9", 4000))
    assert untrusted.get("/api/v1/models", headers=who).status_code == 401
    assert untrusted.get("/", headers=who).status_code == 401
    wrong = {**who, "X-Mlmon-Proxy-Secret": "not-the-secret-at-all"}
    assert untrusted.get("/api/v1/models", headers=wrong).status_code == 401
    right = {**who, "X-Mlmon-Proxy-Secret": "s3cret-shared-with-the-proxy"}
    assert untrusted.get("/api/v1/models", headers=right).json()["models"] == [RISK]
    trusted = make_client(auth, client=("10.0.0.5", 4000))
    assert trusted.get("/api/v1/models", headers=who).json()["models"] == [RISK]
    assert trusted.get("/api/v1/models").status_code == 401  # no user header
    bad = {"X-Forwarded-User": "alice<script>", "X-Forwarded-Groups": "cardiology"}
    assert trusted.get("/api/v1/models", headers=bad).status_code == 401


def test_header_lines_sent_twice_are_one_joined_value(make_client: Any) -> None:
    """oauth2-proxy may send each group on a line of its own: every line counts, and a repeated
    user or secret header fails instead of its last line winning."""
    c = make_client({"mode": "proxy", "proxy": {"trusted": ["127.0.0.1/32"]}})
    two_lines = [("X-Forwarded-User", "alice"), ("X-Forwarded-Groups", "cardiology"),
                 ("X-Forwarded-Groups", "icu")]  # fmt: skip
    assert c.get("/api/v1/models", headers=two_lines).json()["models"] == [RISK, SEPSIS]
    two_users = [("X-Forwarded-User", "alice"), ("X-Forwarded-User", "root"),
                 ("X-Forwarded-Groups", "cardiology")]  # fmt: skip
    assert c.get("/api/v1/models", headers=two_users).status_code == 401


def test_a_team_sees_only_its_models(make_client: Any) -> None:
    c = make_client({"mode": "proxy", "proxy": {"trusted": ["127.0.0.1/32"]}})
    icu = {"X-Forwarded-User": "ian", "X-Forwarded-Groups": "icu"}
    cardio = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "cardiology,other"}
    page = c.get(f"/?{RANGE}", headers=cardio).text
    assert RISK in page and SEPSIS not in page
    assert [
        m["model"] for m in c.get(f"/api/v1/overview?{RANGE}", headers=cardio).json()["models"]
    ] == [RISK]
    hidden = c.get(f"/models/{SEPSIS}?{RANGE}", headers=cardio)
    missing = c.get(f"/models/no-such-model?{RANGE}", headers=cardio)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text and SEPSIS not in hidden.text  # the name does not leak
    for kind in (
        "drift",
        "percentiles",
        "performance",
        "alerts",
        "golden",
        "versions",
        "data-quality",
    ):
        r = c.get(f"/api/v1/models/{SEPSIS}/{kind}?{RANGE}", headers=cardio)
        assert r.status_code == 404, kind
        assert c.get(f"/api/v1/models/{SEPSIS}/{kind}?{RANGE}", headers=icu).status_code == 200
    assert c.get(f"/models/{SEPSIS}/features/age?{RANGE}", headers=cardio).status_code == 404
    assert c.get(f"/models/{SEPSIS}/features/age?{RANGE}", headers=icu).status_code == 200
    nobody = {"X-Forwarded-User": "eve", "X-Forwarded-Groups": ""}
    assert c.get("/api/v1/models", headers=nobody).json()["models"] == []


def test_request_rate_is_bounded_per_principal(make_client: Any) -> None:
    c = make_client({"mode": "token"}, rate_limit={"requests": 3, "per": "60s"})
    codes = [c.get("/api/v1/models", headers=bearer("alice")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = c.get("/api/v1/models", headers=bearer("alice"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert c.get("/api/v1/models", headers=bearer("ian")).status_code == 200  # another principal


def test_every_request_is_in_the_hash_chained_audit_log(make_client: Any) -> None:
    c = make_client({"mode": "token"})
    c.get("/api/v1/models", headers=bearer("alice"))
    c.get(f"/api/v1/models/{SEPSIS}/drift", headers=bearer("alice"))
    c.get("/api/v1/models", headers={"Authorization": "Bearer wrong"})
    c.app.app.state.audit.flush()
    folder = c.config.audit.state_dir.parent / "audit-lake" / "audit" / "mlmon-server"
    segments = sorted(folder.glob("segment-*.jsonl"))
    assert segments
    records = [json.loads(line) for s in segments for line in s.read_text().splitlines()]
    got = [(r["details"]["principal"], r["action"], r["target"], r["outcome"]) for r in records]
    assert got == [
        ("alice", "http_get", "/api/v1/models", "200"),
        ("alice", "http_get", f"/api/v1/models/{SEPSIS}/drift", "404"),
        ("anonymous", "http_get", "/api/v1/models", "401"),
    ]
    prev = "0" * 64
    for r in records:  # the chain: each record names its predecessor's hash and its own
        rec = AuditRecord(**r)
        assert rec.prev_hash == prev and rec.computed_hash() == rec.hash
        prev = rec.hash
    assert not any("token" in json.dumps(r) and "Bearer" in json.dumps(r) for r in records)


def test_access_review_lists_who_asked_for_what(make_client: Any, capsys: Any) -> None:
    c = make_client({"mode": "token"})
    c.get(f"/api/v1/models/{RISK}/versions?{RANGE}", headers=bearer("alice"))
    c.get(f"/api/v1/models/{SEPSIS}/golden?{RANGE}", headers=bearer("alice"))
    c.get(f"/api/v1/models/{SEPSIS}/golden?{RANGE}", headers=bearer("ian"))
    c.get("/api/v1/models", headers={"Authorization": "Bearer wrong"})
    c.app.app.state.audit.flush()
    audit_uri = str(c.config.audit.state_dir.parent / "audit-lake")
    assert main(["audit", "access-review", "--lake", audit_uri, "--since", "2026-01-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",")[:4] == ["principal", "first_access", "last_access", "requests"]
    rows = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    header = lines[0].split(",")
    col = {name: i for i, name in enumerate(header)}
    alice, ian, anon = rows["alice"], rows["ian"], rows["anonymous"]
    assert (alice[col["requests"]], alice[col["answered"]], alice[col["not_found"]]) == (
        "2",
        "1",
        "1",
    )
    assert alice[col["models"]] == f"{RISK};{SEPSIS}"  # asked for, including the refused one
    assert (ian[col["answered"]], ian[col["models"]]) == ("1", SEPSIS)
    assert anon[col["refused"]] == "1"
    assert main(["audit", "access-review", "--lake", audit_uri, "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out.strip() == ",".join(header)
