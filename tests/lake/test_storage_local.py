from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlmon.errors import ConfigError, LakeWriteDenied
from mlmon.lake.storage import open_storage, put_object


def test_local_put_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    st = open_storage(f"file://{tmp_path}/lake")
    path = st.path("v1/profiles/model=m/date=2026-10-01/a.parquet")
    put_object(st, path, b"one")
    put_object(st, path, b"two")
    assert Path(path).read_bytes() == b"two"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        put_object(st, path, b"three")
    monkeypatch.undo()
    assert Path(path).read_bytes() == b"two"  # the old object is intact
    assert os.listdir(os.path.dirname(path)) == ["a.parquet"]  # no temp file left


def test_permission_error_names_the_path(tmp_path, monkeypatch):
    """A refused write (read-only folder; simulated, since tests run as root) names the path."""
    st = open_storage(tmp_path)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    with pytest.raises(LakeWriteDenied, match=r"x\.parquet"):
        put_object(st, st.path("x.parquet"), b"x")


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="scheme 'gs'"):
        open_storage("gs://bucket/x")
