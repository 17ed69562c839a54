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


_KILLED_MID_WRITE = """
import os, signal, sys
from mlmon.lake.storage import open_storage, put_object
st = open_storage(sys.argv[1])
os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # dies before the rename
put_object(st, st.path(sys.argv[2]), b"a window that never landed")
"""


def test_a_write_killed_midway_leaves_a_part_that_is_never_data_and_a_later_writer_sweeps(
    local_lake_uri, monkeypatch
):
    import subprocess
    import sys

    from mlmon.analysis.lake import Lake
    from mlmon.lake import storage

    st = open_storage(local_lake_uri)
    folder = os.path.dirname(st.path(OBJ))
    put_object(st, st.path(OBJ), b"one")
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, local_lake_uri,
                             OBJ.replace("0000", "0001")], capture_output=True)  # fmt: skip
    assert killed.returncode == -9
    (left,) = [f for f in _files(folder) if f != "w-0000.parquet"]
    assert storage.PARTIAL_WRITE.match(left)
    assert Path(folder, left).read_bytes() == b"a window that never landed"
    # never listed as data
    assert [os.path.basename(f) for f in Lake(local_lake_uri).files("profiles")] == [
        "w-0000.parquet"
    ]

    hours_ago = os.stat(os.path.join(folder, left)).st_mtime - 7200
    os.utime(os.path.join(folder, left), (hours_ago, hours_ago))
    fd, young = __import__("tempfile").mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    os.close(fd)  # a write in progress in another process: too young to touch
    monkeypatch.setattr(storage, "_SWEPT", {})  # the next writer process
    put_object(st, st.path(OBJ.replace("0000", "0002")), b"two")
    assert _files(folder) == sorted([os.path.basename(young), "w-0000.parquet", "w-0002.parquet"])

    # a writer lists a folder at most once an hour, not once per write
    os.utime(young, (hours_ago, hours_ago))
    put_object(st, st.path(OBJ.replace("0000", "0003")), b"three")
    assert os.path.exists(young)
    assert storage.sweep_partial_writes(folder) == [young]
    assert storage.sweep_partial_writes(folder + "/missing") == []
