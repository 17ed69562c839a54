"""Deletion attestations: signing, verification, and tampering detected and named by field."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from mlmon.errors import ConfigError, GovernanceError
from mlmon.governance.attest import (
    ManifestEntry,
    Refusal,
    build_body,
    load_signing_key,
    manifest_digest,
    sign,
    verify_attestation,
)


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pub_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _body(refused=(), remaining=()):
    entries = [
        ManifestEntry(
            "mlmon-lake/acme/reports/2026-10.pdf", 1234, hashlib.sha256(b"a").hexdigest()
        ),
        ManifestEntry("mlmon-lake/acme/extracts/x.csv", 99, hashlib.sha256(b"b").hexdigest()),
    ]
    return build_body(
        scopes=["s3://mlmon-lake/acme"], operator="J. Doe", tool_version="0.1.0",
        started_at="2026-11-23T09:00:00+00:00", finished_at="2026-11-23T09:00:05+00:00",
        listed_objects=2 + len(refused), listed_bytes=1333, manifest=entries,
        refused=list(refused), remaining=list(remaining),
    )  # fmt: skip


def _write(tmp_path: Path, doc: dict, name: str = "att.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc, indent=2))
    return p


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "MLMON_ATTEST_PUBLIC_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "mlmon.cli", *args], capture_output=True, text=True, timeout=120,
        env={**base, **(env or {})},
    )  # fmt: skip


def test_manifest_digest_is_sha256_of_sorted_lines_anyone_can_recompute():
    body = _body()
    text = "".join(
        f"{e['sha256']} {e['size']} {e['key']}\n"
        for e in sorted(body["manifest"], key=lambda e: e["key"])
    )
    assert body["manifest_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert manifest_digest([]) == hashlib.sha256(b"").hexdigest()
    assert body["deleted"] == {"objects": 2, "bytes": 1333} and body["complete"] is True


def test_signed_attestation_verifies_with_embedded_and_given_key(tmp_path, key):
    att = sign(_body(), key)
    path = att.write(tmp_path / "att.json")
    check = verify_attestation(path)
    assert check.ok and check.complete and not check.key_pinned, check.problems
    (tmp_path / "pub.pem").write_bytes(_pub_pem(key))
    pinned = verify_attestation(path, tmp_path / "pub.pem")
    assert pinned.ok and pinned.key_pinned
    assert pinned.fingerprint == att.signature["public_key_fingerprint"]
    r = _cli("attest", "verify", str(path), "--public-key", str(tmp_path / "pub.pem"))
    assert r.returncode == 0 and "is valid" in r.stdout and "complete" in r.stdout


def test_another_operators_key_is_refused_by_name(tmp_path, key):
    path = sign(_body(), key).write(tmp_path / "att.json")
    other = Ed25519PrivateKey.generate()
    (tmp_path / "other.pem").write_bytes(_pub_pem(other))
    check = verify_attestation(path, tmp_path / "other.pem")
    assert not check.ok
    assert any(p.startswith("signature: made with key") for p in check.problems)


def test_changed_count_is_named(tmp_path, key):
    doc = sign(_body(), key).to_dict()
    doc["attestation"]["deleted"]["objects"] = 3
    path = _write(tmp_path, doc)
    check = verify_attestation(path)
    assert not check.ok
    assert any("field attestation.deleted.objects: says 3" in p for p in check.problems)
    assert any(p.startswith("signature: does not verify") for p in check.problems)
    (tmp_path / "pub.pem").write_bytes(_pub_pem(key))
    r = _cli("attest", "verify", str(path), "--public-key", str(tmp_path / "pub.pem"))
    assert r.returncode == 1
    assert "INVALID" in r.stderr and "attestation.deleted.objects" in r.stderr


def test_changed_manifest_entry_is_named(tmp_path, key):
    doc = sign(_body(), key).to_dict()
    doc["attestation"]["manifest"][0]["sha256"] = "0" * 64
    check = verify_attestation(_write(tmp_path, doc))
    assert not check.ok
    assert any(p.startswith("manifest: its digest is") for p in check.problems)
    assert any(p.startswith("signature:") for p in check.problems)


def test_consistent_forgery_is_caught_by_the_signature_alone(tmp_path, key):
    """Drop a manifest entry and fix counts and digest: only the signature can tell."""
    doc = sign(_body(), key).to_dict()
    body = doc["attestation"]
    dropped = body["manifest"].pop(0)
    body["deleted"] = {"objects": 1, "bytes": 1333 - dropped["size"]}
    body["manifest_sha256"] = manifest_digest([ManifestEntry(**e) for e in body["manifest"]])
    check = verify_attestation(_write(tmp_path, doc))
    assert not check.ok
    assert check.problems == [
        "signature: does not verify over the attestation (the attestation or the signature "
        "was changed after signing)"
    ]


def test_changed_signature_is_named(tmp_path, key):
    doc = sign(_body(), key).to_dict()
    raw = bytearray(base64.b64decode(doc["signature"]["value"]))
    raw[0] ^= 0xFF
    doc["signature"]["value"] = base64.b64encode(bytes(raw)).decode()
    check = verify_attestation(_write(tmp_path, doc))
    assert not check.ok and len(check.problems) == 1
    assert check.problems[0].startswith("signature: does not verify")
    doc["signature"]["value"] = "not base64!"
    assert verify_attestation(_write(tmp_path, doc)).problems[0].startswith("signature:")
    del doc["signature"]
    assert verify_attestation(_write(tmp_path, doc)).problems == [
        "field signature: missing, or without algorithm, public_key and value"
    ]


def test_incomplete_purge_claimed_complete_is_named(tmp_path, key):
    body = _body(refused=[Refusal("mlmon-lake/acme/keep.csv", "delete refused (AccessDenied)")],
                 remaining=["mlmon-lake/acme/keep.csv"])  # fmt: skip
    assert body["complete"] is False and body["outcome"].startswith("NOT complete")
    body["complete"] = True
    check = verify_attestation(sign(body, key).write(tmp_path / "att.json"))
    assert not check.ok
    assert any(p.startswith("field attestation.complete: says True") for p in check.problems)


def test_missing_field_and_non_json_are_named(tmp_path, key):
    doc = sign(_body(), key).to_dict()
    del doc["attestation"]["operator"]
    check = verify_attestation(_write(tmp_path, doc))
    assert "field attestation.operator: missing" in check.problems
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GovernanceError, match=r"bad\.json: not JSON"):
        verify_attestation(bad)
    (tmp_path / "pub.pem").write_bytes(_pub_pem(key))
    r = _cli("attest", "verify", str(bad), "--public-key", str(tmp_path / "pub.pem"))
    assert r.returncode == 2 and "not JSON" in r.stderr


def test_signing_key_errors_name_the_file_and_the_fix(tmp_path, key, monkeypatch):
    monkeypatch.delenv("MLMON_SIGNING_KEY", raising=False)
    with pytest.raises(ConfigError, match="openssl genpkey -algorithm ed25519"):
        load_signing_key(None)
    with pytest.raises(ConfigError, match=r"nope\.pem: cannot read it"):
        load_signing_key(tmp_path / "nope.pem")
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(_pem(generate_private_key(public_exponent=65537, key_size=2048)))
    with pytest.raises(ConfigError, match=r"rsa\.pem is a .*RSA.*not Ed25519"):
        load_signing_key(rsa)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(ConfigError, match=r"garbage\.pem is not a PEM private key"):
        load_signing_key(garbage)
    monkeypatch.setenv("MLMON_SIGNING_KEY", _pem(key).decode())
    from_env = load_signing_key(None)
    assert from_env.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()


# -- the CLI needs the operator's key, and says when a purge was not complete ------------------


def _files(tmp_path: Path, key, body=None, name="att.json") -> tuple[Path, Path]:
    pub = tmp_path / "operator.pub.pem"
    pub.write_bytes(_pub_pem(key))
    return sign(body or _body(), key).write(tmp_path / name), pub


def test_cli_refuses_to_verify_without_the_operators_public_key(tmp_path, key):
    """Before: exit 0 with only the key embedded in the file, whoever made it."""
    path, pub = _files(tmp_path, key)
    r = _cli("attest", "verify", str(path))
    assert r.returncode == 2 and r.stdout == ""
    assert "no operator public key: pass --public-key FILE" in r.stderr
    assert "MLMON_ATTEST_PUBLIC_KEY" in r.stderr and "nothing was verified" in r.stderr
    pinned = _cli("attest", "verify", str(path), env={"MLMON_ATTEST_PUBLIC_KEY": str(pub)})
    assert pinned.returncode == 0, pinned.stderr
    assert "signed by the given public key" in pinned.stdout
    missing = _cli("attest", "verify", str(path), env={"MLMON_ATTEST_PUBLIC_KEY": "/nope.pem"})
    assert missing.returncode == 2 and "public key /nope.pem: cannot read it" in missing.stderr


def test_cli_refuses_an_attestation_re_signed_with_another_key(tmp_path, key):
    """A forger changes the attestation and re-signs it with their own key: self-consistent."""
    path, pub = _files(tmp_path, key)
    doc = json.loads(path.read_text())
    forged_body = doc["attestation"] | {"operator": "someone else"}
    forger = Ed25519PrivateKey.generate()
    forged = sign(forged_body, forger).write(tmp_path / "forged.json")
    assert verify_attestation(forged).ok  # the embedded key alone cannot tell
    r = _cli("attest", "verify", str(forged), "--public-key", str(pub))
    assert r.returncode == 1 and "INVALID" in r.stderr
    assert (
        "signature: made with key SHA256:" in r.stderr
        and "not with the given public key" in r.stderr
    )
    assert _cli("attest", "verify", str(forged)).returncode == 2  # no key: refused, not accepted


def test_cli_refuses_a_tampered_attestation_with_the_right_key(tmp_path, key):
    path, pub = _files(tmp_path, key)
    doc = json.loads(path.read_text())
    doc["attestation"]["manifest"][0]["size"] += 1
    r = _cli(
        "attest", "verify", str(_write(tmp_path, doc, "tampered.json")), "--public-key", str(pub)
    )
    assert r.returncode == 1 and "INVALID" in r.stderr and "manifest: its digest is" in r.stderr


def test_cli_exits_1_for_a_genuine_incomplete_attestation_unless_allowed(tmp_path, key):
    body = _body(refused=[Refusal("mlmon-lake/acme/keep.csv", "delete refused (AccessDenied)")],
                 remaining=["mlmon-lake/acme/keep.csv"])  # fmt: skip
    path, pub = _files(tmp_path, key, body)
    r = _cli("attest", "verify", str(path), "--public-key", str(pub))
    assert r.returncode == 1 and r.stdout == ""
    assert "is valid" in r.stderr and "NOT complete" in r.stderr
    assert "pass --allow-incomplete" in r.stderr
    ok = _cli("attest", "verify", str(path), "--public-key", str(pub), "--allow-incomplete")
    assert ok.returncode == 0 and "NOT complete" in ok.stdout


def test_cli_accepts_a_valid_complete_attestation_with_the_operators_key(tmp_path, key):
    path, pub = _files(tmp_path, key)
    r = _cli("attest", "verify", str(path), "--public-key", str(pub))
    assert r.returncode == 0 and r.stderr == ""
    assert "is valid: signed by the given public key" in r.stdout
    assert "the purge it attests was complete" in r.stdout
