"""put_object on a local folder: atomic (temp file + rename), nothing left behind on failure."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from pathlib import Path

import pytest

from mlmon.errors import ConfigError, LakeWriteDenied
from mlmon.lake.storage import open_storage, put_object

OBJ = "v1/profiles/model=m/date=2026-10-01/w-0000.parquet"


def _files(folder: str) -> list[str]:
    return sorted(os.listdir(folder))


def test_file_uri_and_plain_path_open_the_same_lake(local_lake_uri: str, tmp_path: Path):
    st = open_storage(local_lake_uri)
    assert st.is_local and st.root == str(tmp_path / "lake")
    assert open_storage(tmp_path / "lake").root == st.root
    put_object(st, st.path(OBJ), b"one")  # creates the partition folders
    assert (tmp_path / "lake" / OBJ).read_bytes() == b"one"


def test_put_replaces_and_a_failed_rename_keeps_the_old_object(local_lake_uri, monkeypatch):
    st = open_storage(local_lake_uri)
    path = st.path(OBJ)
    put_object(st, path, b"one")
    put_object(st, path, b"two")
    assert Path(path).read_bytes() == b"two"

    def boom(*args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="I/O error"):
        put_object(st, path, b"three")
    monkeypatch.undo()
    assert Path(path).read_bytes() == b"two"  # the old object is intact
    assert _files(os.path.dirname(path)) == ["w-0000.parquet"]  # no temp file left


def test_a_write_failing_midway_leaves_no_partial_file(local_lake_uri, monkeypatch):
    """Disk full after half the bytes: neither the object nor a temp file may remain."""
    st = open_storage(local_lake_uri)
    path = st.path(OBJ)
    real_fdopen = os.fdopen

    class HalfWriter(io.BufferedWriter):
        def write(self, data):  # type: ignore[override]
            super().write(bytes(data)[: len(data) // 2])
            self.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode="r", *args, **kwargs):
        assert mode == "wb"
        return HalfWriter(real_fdopen(fd, "wb", buffering=0))

    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(OSError, match="No space left"):
        put_object(st, path, b"x" * 1000)
    monkeypatch.undo()
    assert not os.path.exists(path)
    assert _files(os.path.dirname(path)) == []


@pytest.mark.parametrize("refused_at", ["create", "rename"])
def test_a_read_only_folder_is_lake_write_denied_naming_the_path(
    local_lake_uri, monkeypatch, refused_at
):
    """Refused when creating the temp file or when renaming it into place.

    Tests usually run as root here, which ignores mode bits; then the refusal is
    simulated at the same call the kernel would refuse. As another user the folder
    is really made read-only.
    """
    st = open_storage(local_lake_uri)
    path = st.path(OBJ)
    folder = os.path.dirname(path)
    os.makedirs(folder)
    if os.geteuid() != 0 and refused_at == "create":
        os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    else:

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        target = "tempfile.mkstemp" if refused_at == "create" else "os.replace"
        monkeypatch.setattr(target, denied)
    try:
        with pytest.raises(LakeWriteDenied, match=re.escape(path)) as e:
            put_object(st, path, b"x")
    finally:
        os.chmod(folder, stat.S_IRWXU)
    assert isinstance(e.value, PermissionError)
    assert "Permission denied" in str(e.value)
    monkeypatch.undo()
    assert _files(folder) == []


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="scheme 'gs'"):
        open_storage("gs://bucket/x")
