"""Where the lake lives: fsspec filesystems from a URI, and write-once PUTs.

``file://`` (or a plain path) and ``s3://`` through s3fs. Writers only ever
call :func:`put_object`, which sends exactly one PUT per object and needs no
HEAD, LIST, GET or DELETE, so the edge works with credentials that allow only
``s3:PutObject`` on its prefix.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import fsspec
import fsspec.asyn
from fsspec.implementations.local import LocalFileSystem

from mlmon._extras import require
from mlmon.errors import ConfigError, LakeError, LakeUnreachable, LakeWriteDenied

__all__ = [
    "PARTIAL_WRITE",
    "STALE_PARTIAL_S",
    "Storage",
    "bounded_s3_options",
    "open_storage",
    "put_object",
    "sse_of",
    "sweep_partial_writes",
]

#: The temporary file of a local write (:func:`put_object`), renamed to its object when done.
#: One is left behind only when the writing process died mid-write; it is never data.
PARTIAL_WRITE = re.compile(r"^\.tmp-[^/]*\.part$")
#: A partial write older than this (seconds) is an interrupted one (a live write takes
#: milliseconds): the next writer to the folder, and ``mlmon retention apply``, delete it.
STALE_PARTIAL_S = 3600.0
#: Folder -> when (monotonic) this process last swept it; each folder is swept at most once
#: per :data:`STALE_PARTIAL_S`, so a writer lists a folder about once an hour, not per write.
_SWEPT: dict[str, float] = {}


@dataclass(frozen=True)
class Storage:
    """An fsspec filesystem and the root path of the lake inside it.

    ``root`` has no scheme and no trailing slash (``/data/lake`` or
    ``bucket/prefix``); :meth:`url` puts the scheme back for display.
    """

    fs: fsspec.AbstractFileSystem
    root: str
    scheme: str
    options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def url(self, path: str | None = None) -> str:
        p = self.root if path is None else path
        return p if self.is_local else f"{self.scheme}://{p}"


def open_storage(
    uri: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> Storage:
    """Open the filesystem behind a lake URI.

    Parameters
    ----------
    uri
        ``file:///abs/path``, a plain local path, or ``s3://bucket/prefix``.
    storage_options
        Passed to the filesystem. For S3 these are s3fs options (``key``,
        ``secret``, ``endpoint_url``, ``client_kwargs``...); the shortcut
        ``sse_kms_key_id`` turns on SSE-KMS for every object written.

    Raises
    ------
    ConfigError
        Unsupported scheme, or the s3 extra is missing.
    """
    text = os.fspath(uri)
    opts = dict(storage_options or {})
    parsed = urlparse(text)
    scheme = parsed.scheme or "file"
    if scheme == "file":
        path = parsed.path if parsed.scheme else text
        root = os.path.abspath(os.path.expanduser(path)).rstrip("/") or "/"
        return Storage(LocalFileSystem(), root, "file", opts)
    if scheme in ("s3", "s3a"):
        require("s3fs", "s3")
        kms = opts.pop("sse_kms_key_id", None)
        if kms:
            extra = dict(opts.pop("s3_additional_kwargs", {}) or {})
            extra.update({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms})
            opts["s3_additional_kwargs"] = extra
        # Listings must never be served from a stale cache: retention and
        # readers depend on seeing what is there now.
        opts.setdefault("use_listings_cache", False)
        s3fs_retries = opts.pop("s3fs_retries", None)
        put_timeout_s = opts.pop("put_timeout_s", None)
        fs = fsspec.filesystem("s3", **opts)
        if s3fs_retries is not None:  # s3fs's own retry loop (5 tries by default) around botocore's
            fs.retries = int(s3fs_retries)
            opts["s3fs_retries"] = s3fs_retries
        if put_timeout_s is not None:
            opts["put_timeout_s"] = float(put_timeout_s)
            # botocore asks for "Expect: 100-continue" on PutObject, and aiohttp waits for the
            # "100 Continue" with no time-out at all: a bucket that accepts and never answers
            # would hold the PUT for ever. The objects are small; send them without asking.
            fs.connect()
            fs.s3.meta.events.register("before-send.s3.PutObject", _no_expect_continue)
        root = (parsed.netloc + parsed.path).rstrip("/")
        if not parsed.netloc:
            raise ConfigError(f"lake URI {text!r} has no bucket; use s3://bucket/prefix")
        return Storage(fs, root, "s3", opts)
    raise ConfigError(
        f"lake URI {text!r} has scheme {scheme!r}; supported: file:// (or a plain path) and s3://"
    )


def _no_expect_continue(request: Any, **_: Any) -> None:
    if "Expect" in request.headers:
        del request.headers["Expect"]


def bounded_s3_options(
    options: dict[str, Any],
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    attempts: int,
) -> dict[str, Any]:
    """s3fs options whose every request gives up after a bounded time (the edge's client).

    botocore's defaults wait 60 s to connect and 60 s for an answer, with retries, and s3fs
    adds five tries of its own around read time-outs: a PUT to a bucket that hangs could take
    many minutes. Here each request tries at most ``attempts`` times (botocore's standard
    retry mode, ``total_max_attempts``), connects within ``connect_timeout_s`` and waits
    ``read_timeout_s`` for an answer; s3fs does not retry on top; and the whole PUT is
    abandoned after ``attempts * (connect_timeout_s + read_timeout_s) + 1`` seconds whatever
    happens (``put_timeout_s``). Settings already in ``options["config_kwargs"]`` win.

    Examples
    --------
    >>> o = bounded_s3_options({}, connect_timeout_s=3, read_timeout_s=15, attempts=2)
    >>> o["config_kwargs"]["retries"], o["s3fs_retries"]
    ({'total_max_attempts': 2, 'mode': 'standard'}, 1)
    """
    out = dict(options)
    cfg = dict(out.get("config_kwargs") or {})
    cfg.setdefault("connect_timeout", connect_timeout_s)
    cfg.setdefault("read_timeout", read_timeout_s)
    cfg.setdefault("retries", {"total_max_attempts": attempts, "mode": "standard"})
    out["config_kwargs"] = cfg
    out.setdefault("s3fs_retries", 1)
    out.setdefault("put_timeout_s", attempts * (connect_timeout_s + read_timeout_s) + 1.0)
    return out


def sse_of(response: Any) -> str | None:
    """The server-side encryption a PUT answer reports (``aws:kms``, ``AES256``), or None.

    S3 answers a PutObject with the ``x-amz-server-side-encryption`` header when the object
    is encrypted at rest; botocore reads it as ``ServerSideEncryption``.
    """
    if not isinstance(response, dict):
        return None
    value = response.get("ServerSideEncryption")
    return str(value) if value else None


def sweep_partial_writes(
    folder: str, *, older_than_s: float = STALE_PARTIAL_S, now: float | None = None
) -> list[str]:
    """Delete the interrupted local writes (``.tmp-*.part``) in ``folder`` older than ``older_than_s``.

    Only files named like :data:`PARTIAL_WRITE` directly in ``folder`` are touched, and only
    when their modification time is older than ``older_than_s`` seconds before ``now``
    (default: the clock), so a write in progress in another process is left alone. A file
    another sweeper removed first is skipped; a missing or unreadable folder removes nothing.

    Returns
    -------
    list of str
        The paths deleted.
    """
    cutoff = (time.time() if now is None else now) - older_than_s
    gone: list[str] = []
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if PARTIAL_WRITE.match(e.name)]
    except OSError:
        return gone
    for e in entries:
        try:
            if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(e.path)
                gone.append(e.path)
        except FileNotFoundError:
            continue
        except OSError:  # not ours to delete (permissions): the next sweep or retention tries
            continue
    return gone


def _sweep_now_and_then(folder: str, *, fresh: bool = False) -> None:
    """Sweep ``folder`` on its first write, then once an hour; ``fresh``: the write just
    made the folder, which then holds no interrupted write (only noted as swept)."""
    now = time.monotonic()
    last = _SWEPT.get(folder)
    if last is not None and now - last < STALE_PARTIAL_S:
        return
    if len(_SWEPT) >= 4096:  # a long-running writer: forget the old partitions
        _SWEPT.clear()
    _SWEPT[folder] = now
    if not fresh:
        sweep_partial_writes(folder)


def _make_folder(folder: str) -> bool:
    """Make ``folder`` (and its parents) if missing; True when this call made it."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        return False
    except FileNotFoundError:  # a parent is missing too
        os.makedirs(folder, exist_ok=True)
    return True


def put_object(storage: Storage, path: str, data: bytes) -> dict[str, Any] | None:
    """Write ``data`` to ``path`` as one object, replacing any object there.

    Local: written to a temporary file in the same folder and renamed, so a
    reader never sees a partial file; the first write to a folder (then once an hour)
    also deletes the temporary files of writes interrupted over an hour ago
    (:func:`sweep_partial_writes`). S3: one ``PutObject`` (``pipe_file``),
    which is atomic on S3 and needs no other permission.

    Returns
    -------
    dict or None
        S3: the PutObject answer as botocore parsed it (``ServerSideEncryption``, ``ETag``...;
        see :func:`sse_of`), or None when the filesystem gave none. Local: None.

    Raises
    ------
    LakeWriteDenied
        The storage refused the write.
    LakeUnreachable
        The storage could not be reached.
    """
    if storage.is_local:
        folder = os.path.dirname(path)
        try:
            created = _make_folder(folder)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            _sweep_now_and_then(folder, fresh=created)
        except PermissionError as exc:
            raise LakeWriteDenied(
                f"cannot write {path}: {exc.strerror}; check folder permissions"
            ) from exc
        except OSError as exc:
            raise LakeError(
                f"cannot write {path}: {exc.strerror or exc}; check the disk and the folder"
            ) from exc
        return None
    try:
        deadline = storage.options.get("put_timeout_s")
        if deadline:  # cancelled on the filesystem's event loop when it passes
            response = fsspec.asyn.sync(
                storage.fs.loop, storage.fs._pipe_file, path, data, timeout=deadline
            )
        else:
            response = storage.fs.pipe_file(path, data)
    except PermissionError as exc:
        raise LakeWriteDenied(
            f"storage refused PUT of {storage.url(path)}: {exc}; the credentials need "
            "s3:PutObject on the lake prefix (and kms:GenerateDataKey on the SSE-KMS key)"
        ) from exc
    except FileNotFoundError as exc:
        raise LakeUnreachable(
            f"bucket for {storage.url(path)} does not exist or is not reachable: {exc}"
        ) from exc
    except Exception as exc:  # OSError, and botocore's connection errors, which are not OSErrors
        raise LakeUnreachable(
            f"could not PUT {storage.url(path)}: {exc}; check the endpoint, the network and the bucket"
        ) from exc
    return response if isinstance(response, dict) else None
