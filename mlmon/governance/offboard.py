"""Off-boarding: purge every vendor-side copy under the given scopes and attest it.

A scope is a URI (``file:///...``, a plain path, or ``s3://bucket/prefix``):
report output prefixes, local caches, exported extracts. :func:`list_scopes`
lists what is there (the summary an operator confirms); :func:`offboard` then,
key by key, reads each object to record its size and SHA-256, deletes it with
one ``DeleteObject`` (S3's bulk delete answers 200 with per-key AccessDenied
that s3fs ignores, so every key is deleted and checked on its own), re-lists
every scope to verify it is empty, and returns a signed
:class:`~mlmon.governance.attest.Attestation`. The operator's credential needs
list + get + delete on each scope (the ``maintenance`` role of ``deploy/iam``).

Nothing is reported as deleted that was not: a refused delete, an object that
could not be read for its hash, or an object still listed after the purge
makes the attestation ``complete: false`` and names the key and the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlmon.errors import ConfigError, LakeError
from mlmon.governance.attest import (
    Attestation,
    ManifestEntry,
    Refusal,
    build_body,
    sign,
)
from mlmon.lake.storage import Storage, open_storage

__all__ = ["Inventory", "ScopeListing", "list_scopes", "offboard", "record_purge"]

log = logging.getLogger("mlmon.governance.offboard")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ScopeListing:
    """What one scope held when it was listed: object path (no scheme) to size in bytes."""

    uri: str
    storage: Storage
    objects: dict[str, int]

    @property
    def bytes(self) -> int:
        return sum(self.objects.values())


@dataclass(frozen=True)
class Inventory:
    """The before-listing of every scope; each object belongs to the first scope listing it."""

    scopes: tuple[ScopeListing, ...]

    @property
    def objects(self) -> int:
        return sum(len(s.objects) for s in self.scopes)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.scopes)

    def summary(self) -> str:
        lines = [f"{self.objects} object(s), {self.bytes:,} bytes in {len(self.scopes)} scope(s):"]
        lines += [f"  {s.uri}: {len(s.objects)} object(s), {s.bytes:,} bytes" for s in self.scopes]
        return "\n".join(lines)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _list(storage: Storage) -> dict[str, int]:
    if not storage.is_local:
        return _list_s3(storage)
    found = storage.fs.find(storage.root, detail=True)
    return {
        p: int(info.get("size") or 0)
        for p, info in found.items()
        if info.get("type", "file") != "directory" and p.rstrip("/") != storage.root
    }


def _list_s3(storage: Storage) -> dict[str, int]:
    """Every key under the scope, from ``ListObjectsV2`` pages alone.

    s3fs's ``find`` sends a ``HEAD`` of the scope's own key when the listing is empty
    (to tell a file from a folder); the maintenance policy grants ``s3:GetObject`` only
    *below* the lake prefix, so the verifying re-list of a purged lake was refused and
    the purge never completed. Only ``s3:ListBucket`` on ``<prefix>/`` is needed here.
    """
    bucket, _, key = storage.root.partition("/")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{key}/" if key else ""}
    out: dict[str, int] = {}
    while True:
        page = storage.fs.call_s3("list_objects_v2", **kwargs)
        for obj in page.get("Contents", []):
            out[f"{bucket}/{obj['Key']}"] = int(obj.get("Size") or 0)
        if not page.get("IsTruncated"):
            return out
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _open_scope(uri: str, storage_options: dict[str, Any] | None) -> Storage:
    st = open_storage(uri, storage_options)
    if st.is_local and (st.root == "/" or st.root == os.path.expanduser("~")):
        raise ConfigError(
            f"scope {uri!r} is {st.root!r}: refusing to purge a whole filesystem or home "
            "folder; give the folder of the copies (e.g. file:///var/cache/mlmon)"
        )
    return st


def list_scopes(
    scopes: Sequence[str],
    storage_options: dict[str, Any] | None = None,
    *,
    allow_empty: bool = False,
) -> Inventory:
    """List every object under each scope (the summary an operator confirms).

    Raises
    ------
    ConfigError
        No scope, an unsupported URI, or a scope holding no objects (a typo would
        otherwise give a "complete" attestation of nothing) unless ``allow_empty``.
    LakeError
        A scope could not be listed (credentials need list on it).
    """
    if not scopes:
        raise ConfigError("no scope given; pass --scope URI (file:///path or s3://bucket/prefix)")
    seen: set[str] = set()
    out = []
    for uri in scopes:
        st = _open_scope(uri, storage_options)
        try:
            objects = _list(st)
        except Exception as exc:  # PermissionError, botocore errors (not OSErrors)
            raise LakeError(
                f"cannot list scope {uri}: {_why(exc)}; the operator's credential needs "
                "list + get + delete on it (deploy/iam/maintenance.json)"
            ) from exc
        mine = {p: n for p, n in sorted(objects.items()) if p not in seen}
        seen.update(mine)
        if not objects and not allow_empty:
            raise ConfigError(
                f"scope {uri} holds no objects: is the URI right? Pass --allow-empty to "
                "attest an empty scope (e.g. when re-running after a purge)"
            )
        out.append(ScopeListing(uri, st, mine))
    return Inventory(tuple(out))


def _hash(storage: Storage, path: str) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    with storage.fs.open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def _remove_empty_dirs(root: str) -> None:
    """Local scopes: remove the emptied sub-folders (their names can carry data too)."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        if folder != root:
            with contextlib.suppress(OSError):  # not empty: a refused file stays, reported
                os.rmdir(folder)


def offboard(
    scopes: Sequence[str],
    storage_options: dict[str, Any] | None = None,
    operator: str = "",
    *,
    signing_key: Any,
    inventory: Inventory | None = None,
    allow_empty: bool = False,
    audit: Any = None,
    progress: Callable[[str], None] | None = None,
) -> Attestation:
    """Purge every object under ``scopes``, verify by re-listing, return a signed attestation.

    Parameters
    ----------
    scopes
        URIs: ``file:///path``, a path, or ``s3://bucket/prefix``.
    storage_options
        fsspec options for the S3 scopes (the operator's list + get + delete credential).
    operator
        Who runs the purge (name or account), recorded in the attestation.
    signing_key
        Ed25519 private key (:func:`mlmon.governance.attest.load_signing_key`).
    inventory
        The before-listing the operator confirmed (default: list now).
    audit
        An :class:`~mlmon.governance.audit.AuditLog`: a ``purge_executed`` record is
        written and flushed (see :func:`record_purge`).

    Returns
    -------
    Attestation
        ``complete`` is true only if every object was read, deleted, and the re-list of
        every scope is empty.

    Examples
    --------
    >>> att = offboard(["s3://vendor-reports/acme"], opts, "j.doe", signing_key=key)  # doctest: +SKIP
    >>> att.complete, att.body["deleted"]                                               # doctest: +SKIP
    (True, {'objects': 412, 'bytes': 81234411})
    """
    if not operator or not operator.strip():
        raise ConfigError("no operator given; pass --operator NAME (who runs the purge)")
    if signing_key is None:
        raise ConfigError("no signing key given; an attestation must be signed (--signing-key)")
    started = _now()
    inv = inventory or list_scopes(scopes, storage_options, allow_empty=allow_empty)
    manifest: list[ManifestEntry] = []
    refused: list[Refusal] = []
    by_url: dict[str, ManifestEntry] = {}
    for scope in inv.scopes:
        st = scope.storage
        for path, listed in scope.objects.items():
            url = st.url(path)
            try:
                size, digest = _hash(st, path)
            except Exception as exc:
                refused.append(Refusal(url, f"not deleted: could not read it to record its "
                                            f"SHA-256 ({_why(exc)})", listed))  # fmt: skip
                continue
            try:
                st.fs.rm_file(path)
            except Exception as exc:
                refused.append(Refusal(url, f"delete refused ({_why(exc)})", size, digest))
                continue
            entry = ManifestEntry(url, size, digest)
            manifest.append(entry)
            by_url[url] = entry
            if progress is not None:
                progress(url)
        if st.is_local and os.path.isdir(st.root):
            _remove_empty_dirs(st.root)
    remaining: list[str] = []
    errors: list[str] = []
    seen: set[str] = set()
    for uri in scopes:
        try:
            st = _open_scope(uri, storage_options)
            left = [st.url(p) for p in _list(st)]
        except Exception as exc:
            errors.append(f"{uri}: {_why(exc)}")
            continue
        for url in left:
            if url in seen:
                continue
            seen.add(url)
            remaining.append(url)
            claimed = by_url.pop(url) if url in by_url else None
            if claimed is not None:  # its delete was answered as success, yet it is still there
                manifest.remove(claimed)
                refused.append(Refusal(url, "still listed after its delete was answered as "
                                            "success", claimed.size, claimed.sha256))  # fmt: skip
    body = build_body(
        scopes=list(scopes),
        operator=operator.strip(),
        tool_version=_version(),
        started_at=started,
        finished_at=_now(),
        listed_objects=inv.objects,
        listed_bytes=inv.bytes,
        manifest=manifest,
        refused=refused,
        remaining=remaining,
        relist_errors=errors,
    )
    attestation = sign(body, signing_key)
    if audit is not None:
        record_purge(audit, attestation)
    return attestation


def record_purge(audit: Any, attestation: Attestation) -> None:
    """Write and flush the ``purge_executed`` audit record (counts, never the keys)."""
    b = attestation.body
    audit.record(
        "purge_executed",
        ",".join(b["scopes"]),
        "ok" if b["complete"] else "failed",
        operator=b["operator"],
        listed=b["listed_before"]["objects"],
        deleted=b["deleted"]["objects"],
        bytes=b["deleted"]["bytes"],
        refused=len(b["refused"]),
        remaining=b["relist_after"]["objects"],
        manifest_sha256=b["manifest_sha256"],
        signed_by=attestation.signature["public_key_fingerprint"],
    )
    audit.flush()


def _version() -> str:
    from mlmon import __version__

    return __version__
