"""Deletion attestations: what an off-boarding purge deleted, signed with Ed25519.

An attestation is one JSON document with two parts::

    {"attestation": {...body...},
     "signature": {"algorithm": "Ed25519", "public_key": PEM,
                   "public_key_fingerprint": "SHA256:<hex>", "value": <base64>}}

The body holds the scopes, the operator, the tool and its version, the start
and end UTC times, what was listed before the purge (objects, bytes), the
manifest of what was deleted (one entry per object: key, size, SHA-256 of the
content) with its digest, the keys that could NOT be deleted and why, the
result of the verifying re-list after the purge, and ``complete`` (true only
when nothing was refused and the re-list is empty). The signature is over the
canonical JSON of the body (keys sorted, no spaces, UTF-8).

The manifest digest is the SHA-256 of the manifest as text, one line per
entry in key order, ``"<sha256> <size> <key>\\n"``: anyone can recompute it
from the JSON with a few lines of any language.

:func:`verify_attestation` checks the fields, recomputes the counts and the
manifest digest, verifies the signature, and, given the operator's public key,
checks that this key signed it; every problem names the field it is in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmon._extras import require
from mlmon.errors import ConfigError, ForeignFilesError, GovernanceError

__all__ = [
    "ATTESTATION_KIND",
    "ATTESTATION_VERSION",
    "Attestation",
    "AttestationCheck",
    "ManifestEntry",
    "Refusal",
    "attestation_path",
    "canonical_json",
    "fingerprint",
    "load_public_key",
    "load_signing_key",
    "manifest_digest",
    "sign",
    "verify_attestation",
]

ATTESTATION_KIND = "mlmon.deletion-attestation"
ATTESTATION_VERSION = 1
#: Environment variable that may hold the signing key PEM itself (instead of a file).
SIGNING_KEY_ENV = "MLMON_SIGNING_KEY"


def canonical_json(value: Any) -> bytes:
    """The bytes that are signed: keys sorted, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class ManifestEntry:
    """One deleted object: its full key (``bucket/prefix/...`` or an absolute path)."""

    key: str
    size: int
    sha256: str

    def line(self) -> str:
        return f"{self.sha256} {self.size} {self.key}\n"


@dataclass(frozen=True)
class Refusal:
    """An object that could not be deleted (or read to be hashed), and why."""

    key: str
    reason: str
    size: int | None = None
    sha256: str | None = None


def manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    """SHA-256 of ``"<sha256> <size> <key>\\n"`` per entry, in key order."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.key):
        h.update(e.line().encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Attestation:
    """A signed deletion attestation: ``body`` and its ``signature`` block."""

    body: dict[str, Any]
    signature: dict[str, str]

    @property
    def complete(self) -> bool:
        return bool(self.body["complete"])

    def to_dict(self) -> dict[str, Any]:
        return {"attestation": self.body, "signature": self.signature}

    def to_json(self) -> str:
        """Pretty JSON for the file (the signature is over the canonical body, not this text)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON to a new file ``path`` (never over an existing file).

        Raises
        ------
        ForeignFilesError
            ``path`` exists; it is left as it was (see :func:`attestation_path`).
        """
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(out, "x", encoding="utf-8") as fh:
                fh.write(self.to_json())
        except FileExistsError as exc:
            raise ForeignFilesError(
                f"{out} exists; an attestation is never written over a file, so it was left as it "
                "was. Write to another file name or folder."
            ) from exc
        return out


def attestation_path(folder: str | os.PathLike[str], started_at: str) -> Path:
    """A new ``attestation-{UTC start}[-n].json`` in ``folder``: neither it nor its ``.pdf`` exists.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     attestation_path(d, "2026-12-05T10:11:12.123456+00:00").name
    'attestation-20261205T101112Z.json'
    """
    stamp = started_at[:19].replace("-", "").replace(":", "") + "Z"
    base = Path(folder)
    n = 1
    while True:
        p = base / (f"attestation-{stamp}.json" if n == 1 else f"attestation-{stamp}-{n}.json")
        if not p.exists() and not p.with_suffix(".pdf").exists():
            return p
        n += 1


def build_body(
    *,
    scopes: Sequence[str],
    operator: str,
    tool_version: str,
    started_at: str,
    finished_at: str,
    listed_objects: int,
    listed_bytes: int,
    manifest: Sequence[ManifestEntry],
    refused: Sequence[Refusal],
    remaining: Sequence[str],
    relist_errors: Sequence[str] = (),
) -> dict[str, Any]:
    """The attestation body (unsigned); ``complete`` only if nothing was refused or remains.

    ``remaining`` are the keys the verifying re-list still found; ``relist_errors`` the
    scopes it could not list (then emptiness is not verified and the purge is not complete).
    """
    entries = sorted(manifest, key=lambda e: e.key)
    complete = not refused and not remaining and not relist_errors
    if complete:
        outcome = f"complete: all {len(entries)} object(s) deleted; the re-list after is empty"
    else:
        outcome = (
            f"NOT complete: {len(refused)} object(s) could not be deleted and "
            f"{len(remaining)} object(s) are still listed after the purge"
            + (f"; {len(relist_errors)} scope(s) could not be re-listed" if relist_errors else "")
        )
    return {
        "kind": ATTESTATION_KIND,
        "version": ATTESTATION_VERSION,
        "scopes": list(scopes),
        "operator": operator,
        "tool": "mlmon",
        "tool_version": tool_version,
        "started_at": started_at,
        "finished_at": finished_at,
        "listed_before": {"objects": listed_objects, "bytes": listed_bytes},
        "deleted": {"objects": len(entries), "bytes": sum(e.size for e in entries)},
        "manifest_sha256": manifest_digest(entries),
        "manifest": [{"key": e.key, "size": e.size, "sha256": e.sha256} for e in entries],
        "refused": [
            {"key": r.key, "reason": r.reason, "size": r.size, "sha256": r.sha256}
            for r in sorted(refused, key=lambda r: r.key)
        ],
        "relist_after": {
            "objects": len(remaining),
            "keys": sorted(remaining),
            "errors": list(relist_errors),
            "empty": not remaining and not relist_errors,
        },
        "complete": complete,
        "outcome": outcome,
    }


# -- keys ------------------------------------------------------------------------------------


def _serialization() -> Any:
    require("cryptography", "governance")
    from cryptography.hazmat.primitives import serialization

    return serialization


def load_signing_key(
    path: str | os.PathLike[str] | None = None, *, env: str = SIGNING_KEY_ENV
) -> Any:
    """The Ed25519 private key from a PEM file, or from the PEM text in ``$MLMON_SIGNING_KEY``.

    Raises
    ------
    ConfigError
        No key given, the file is unreadable, not PEM, encrypted, or not Ed25519.
    """
    serialization = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if path is not None:
        where = f"signing key {os.fspath(path)}"
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc})") from exc
    elif os.environ.get(env):
        where, data = f"signing key in ${env}", os.environ[env].encode()
    else:
        raise ConfigError(
            f"no signing key: pass --signing-key FILE (Ed25519 private key, PEM) or put the PEM in "
            f"${env}; make one with: openssl genpkey -algorithm ed25519 -out offboard-key.pem"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ConfigError(
            f"{where} is encrypted; give an unencrypted PEM (keep it in a secret store)"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"{where} is not a PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"{where} is a {type(key).__name__}, not Ed25519; "
            "make one with: openssl genpkey -algorithm ed25519"
        )
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """An Ed25519 public key from a PEM file (raises :class:`ConfigError` naming the file)."""
    serialization = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"public key {os.fspath(path)}: cannot read it ({exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"public key {os.fspath(path)} is not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"public key {os.fspath(path)} is {type(key).__name__}, not Ed25519")
    return key


def _public_pem(public_key: Any) -> str:
    s = _serialization()
    return public_key.public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(public_key: Any) -> str:
    """``SHA256:<hex>`` of the raw 32-byte Ed25519 public key."""
    s = _serialization()
    raw = public_key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def sign(body: Mapping[str, Any], signing_key: Any) -> Attestation:
    """Sign the canonical JSON of ``body`` with an Ed25519 private key."""
    public = signing_key.public_key()
    value = base64.b64encode(signing_key.sign(canonical_json(dict(body)))).decode()
    return Attestation(
        dict(body),
        {
            "algorithm": "Ed25519",
            "public_key": _public_pem(public),
            "public_key_fingerprint": fingerprint(public),
            "value": value,
        },
    )


# -- verification ----------------------------------------------------------------------------


@dataclass
class AttestationCheck:
    """The result of :func:`verify_attestation`; ``problems`` name the field of each."""

    path: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    key_pinned: bool = False
    complete: bool | None = None

    def __str__(self) -> str:
        if not self.ok:
            return f"attestation {self.path} is INVALID:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        outcome = "complete" if self.complete else "NOT complete (the purge left objects behind)"
        who = (
            f"signed by the given public key {self.fingerprint}"
            if self.key_pinned
            else f"signed by the embedded key {self.fingerprint}; pass --public-key to check "
            "it is the operator's key"
        )
        return f"attestation {self.path} is valid: {who}; the purge it attests was {outcome}"


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "version": int,
    "scopes": list,
    "operator": str,
    "tool": str,
    "tool_version": str,
    "started_at": str,
    "finished_at": str,
    "listed_before": dict,
    "deleted": dict,
    "manifest_sha256": str,
    "manifest": list,
    "refused": list,
    "relist_after": dict,
    "complete": bool,
    "outcome": str,
}


def _check_fields(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["field attestation: missing or not an object"]
    problems = []
    for name, kind in _REQUIRED.items():
        if name not in body:
            problems.append(f"field attestation.{name}: missing")
        elif not isinstance(body[name], kind) or (kind is int and isinstance(body[name], bool)):
            problems.append(f"field attestation.{name}: expected {kind.__name__}")  # type: ignore[union-attr]
    if problems:
        return problems
    if body["kind"] != ATTESTATION_KIND:
        problems.append(f"field attestation.kind: {body['kind']!r}, expected {ATTESTATION_KIND!r}")
    for part, keys in (("listed_before", ("objects", "bytes")), ("deleted", ("objects", "bytes")),
                       ("relist_after", ("objects", "keys", "errors", "empty"))):  # fmt: skip
        for k in keys:
            if k not in body[part]:
                problems.append(f"field attestation.{part}.{k}: missing")
    for i, e in enumerate(body["manifest"]):
        if not (
            isinstance(e, dict)
            and isinstance(e.get("key"), str)
            and isinstance(e.get("size"), int)
            and isinstance(e.get("sha256"), str)
            and len(e["sha256"]) == 64
        ):
            problems.append(f"field attestation.manifest[{i}]: not {{key, size, sha256 (64 hex)}}")
    return problems


def _check_consistency(body: dict[str, Any]) -> list[str]:
    problems = []
    entries = [ManifestEntry(e["key"], e["size"], e["sha256"]) for e in body["manifest"]]
    digest = manifest_digest(entries)
    if digest != body["manifest_sha256"]:
        problems.append(
            f"manifest: its digest is {digest}, the attestation says {body['manifest_sha256']} "
            "(a manifest entry or the digest was changed)"
        )
    n, size = len(entries), sum(e.size for e in entries)
    if body["deleted"]["objects"] != n:
        problems.append(
            f"field attestation.deleted.objects: says {body['deleted']['objects']}, "
            f"the manifest lists {n}"
        )
    if body["deleted"]["bytes"] != size:
        problems.append(
            f"field attestation.deleted.bytes: says {body['deleted']['bytes']}, "
            f"the manifest sums to {size}"
        )
    after = body["relist_after"]
    keys, errors = after["keys"], after["errors"]
    if after["objects"] != len(keys) or after["empty"] != (not keys and not errors):
        problems.append(
            "field attestation.relist_after: its count or 'empty' does not match its keys"
        )
    complete = not body["refused"] and not keys and not errors
    if body["complete"] != complete:
        problems.append(
            f"field attestation.complete: says {body['complete']}, but there are "
            f"{len(body['refused'])} refused key(s), {len(keys)} key(s) left after the purge "
            f"and {len(errors)} re-list error(s)"
        )
    return problems


def _check_signature(doc: dict[str, Any], public_key: Any) -> tuple[list[str], str | None]:
    require("cryptography", "governance")
    from cryptography.exceptions import InvalidSignature

    serialization = _serialization()
    sig = doc.get("signature")
    if not isinstance(sig, dict) or not all(
        isinstance(sig.get(k), str) for k in ("algorithm", "public_key", "value")
    ):
        return ["field signature: missing, or without algorithm, public_key and value"], None
    if sig["algorithm"] != "Ed25519":
        return [f"field signature.algorithm: {sig['algorithm']!r}, expected 'Ed25519'"], None
    try:
        embedded = serialization.load_pem_public_key(sig["public_key"].encode())
    except ValueError as exc:
        return [f"field signature.public_key: not a PEM public key ({exc})"], None
    fp = fingerprint(embedded)
    problems = []
    if sig.get("public_key_fingerprint") != fp:
        problems.append(
            f"field signature.public_key_fingerprint: says {sig.get('public_key_fingerprint')}, "
            f"the embedded key's is {fp}"
        )
    key = embedded
    if public_key is not None:
        given = fingerprint(public_key)
        if given != fp:
            problems.append(f"signature: made with key {fp}, not with the given public key {given}")
        key = public_key
    try:
        value = base64.b64decode(sig["value"], validate=True)
        key.verify(value, canonical_json(doc.get("attestation")))
    except (InvalidSignature, ValueError):
        problems.append(
            "signature: does not verify over the attestation (the attestation or the "
            "signature was changed after signing)"
        )
    return problems, fp


def verify_attestation(path: str | os.PathLike[str], public_key: Any = None) -> AttestationCheck:
    """Check an attestation file: fields, counts, manifest digest and Ed25519 signature.

    Parameters
    ----------
    path
        The attestation JSON written by :func:`mlmon.governance.offboard.offboard`.
    public_key
        The operator's Ed25519 public key (``cryptography`` object, or a PEM file path).
        Without it the signature is checked against the key embedded in the file, which
        proves integrity but not who signed.

    Returns
    -------
    AttestationCheck
        ``ok`` and the list of problems, each naming its field (``signature``,
        ``manifest``, ``field attestation.deleted.objects`` ...).

    Raises
    ------
    GovernanceError
        The file cannot be read or is not JSON.
    """
    if isinstance(public_key, (str, os.PathLike)):
        public_key = load_public_key(public_key)
    where = os.fspath(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GovernanceError(f"attestation {where}: cannot read it ({exc})") from exc
    except ValueError as exc:
        raise GovernanceError(f"attestation {where}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        return AttestationCheck(where, False, ["file: not a JSON object"])
    body = doc.get("attestation")
    problems = _check_fields(body)
    if not problems and isinstance(body, dict):
        problems += _check_consistency(body)
    sig_problems, fp = _check_signature(doc, public_key)
    problems += sig_problems
    complete = body.get("complete") if isinstance(body, dict) else None
    return AttestationCheck(
        where, not problems, problems, fp, public_key is not None and not sig_problems, complete
    )
