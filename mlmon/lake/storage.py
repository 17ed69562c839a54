"""Where the lake lives: fsspec filesystems from a URI, and write-once PUTs.

``file://`` (or a plain path) and ``s3://`` through s3fs. Writers only ever
call :func:`put_object`, which sends exactly one PUT per object and needs no
HEAD, LIST, GET or DELETE, so the edge works with credentials that allow only
``s3:PutObject`` on its prefix.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import fsspec
from fsspec.implementations.local import LocalFileSystem

from mlmon._extras import require
from mlmon.errors import ConfigError, LakeError, LakeUnreachable, LakeWriteDenied

__all__ = ["Storage", "open_storage", "put_object"]


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
        fs = fsspec.filesystem("s3", **opts)
        root = (parsed.netloc + parsed.path).rstrip("/")
        if not parsed.netloc:
            raise ConfigError(f"lake URI {text!r} has no bucket; use s3://bucket/prefix")
        return Storage(fs, root, "s3", opts)
    raise ConfigError(
        f"lake URI {text!r} has scheme {scheme!r}; supported: file:// (or a plain path) and s3://"
    )


def put_object(storage: Storage, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` as one object, replacing any object there.

    Local: written to a temporary file in the same folder and renamed, so a
    reader never sees a partial file. S3: one ``PutObject`` (``pipe_file``),
    which is atomic on S3 and needs no other permission.

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
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except PermissionError as exc:
            raise LakeWriteDenied(
                f"cannot write {path}: {exc.strerror}; check folder permissions"
            ) from exc
        except OSError as exc:
            raise LakeError(
                f"cannot write {path}: {exc.strerror or exc}; check the disk and the folder"
            ) from exc
        return
    try:
        storage.fs.pipe_file(path, data)
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
