"""Bucket outages: windows wait on the edge's volume and are flushed in order."""

from __future__ import annotations

import pytest

from mlmon.edge.spool import Spool, SpoolFull
from mlmon.lake.storage import open_storage


def test_spool_buffers_while_unreachable_and_flushes_in_order(tmp_path, monkeypatch):
    dead = open_storage("s3://mlmon-lake/lake", {"key": "a", "secret": "b", "endpoint_url": "http://127.0.0.1:9",
                                                 "config_kwargs": {"retries": {"max_attempts": 1}}})  # fmt: skip
    spool = Spool(tmp_path / "spool", max_bytes=100)
    spool.put(dead, "mlmon-lake/lake/a", b"first")
    spool.put(dead, "mlmon-lake/lake/b", b"second")
    assert len(spool) == 2 and spool.size_bytes == 11

    # a restart finds the spooled objects again
    again = Spool(tmp_path / "spool", max_bytes=100)
    assert len(again) == 2

    local = open_storage(tmp_path / "lake")
    sent = []
    real_put = __import__("mlmon.lake.storage", fromlist=["put_object"]).put_object

    def recording_put(storage, path, data):
        sent.append(path)
        real_put(storage, str(tmp_path / "lake" / path.rsplit("/", 1)[-1]), data)

    monkeypatch.setattr("mlmon.edge.spool.put_object", recording_put)
    again.put(local, "mlmon-lake/lake/c", b"third")
    assert sent == ["mlmon-lake/lake/a", "mlmon-lake/lake/b", "mlmon-lake/lake/c"]
    assert len(again) == 0 and list((tmp_path / "spool").iterdir()) == []
    assert (tmp_path / "lake" / "b").read_bytes() == b"second"


def test_full_spool_refuses_and_counts(tmp_path):
    dead = open_storage("s3://mlmon-lake/lake", {"key": "a", "secret": "b", "endpoint_url": "http://127.0.0.1:9",
                                                 "config_kwargs": {"retries": {"max_attempts": 1}}})  # fmt: skip
    spool = Spool(tmp_path / "spool", max_bytes=10)
    spool.put(dead, "x/1", b"12345678")
    with pytest.raises(SpoolFull, match=r"spool .* is full"):
        spool.put(dead, "x/2", b"12345678")
    assert spool.dropped == 1 and len(spool) == 1


def test_a_restart_removes_only_the_spools_own_half_written_files(tmp_path):
    """Crash leftovers (a .json without its .bin) go; files the spool did not name stay."""
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "000000000007.json").write_text('{"path": "x/7"}')  # its .bin never landed
    notes = folder / "notes.json"
    notes.write_text('{"mine": true}')
    blob = folder / "backup.bin"
    blob.write_bytes(b"someone's")
    spool = Spool(folder, max_bytes=100)
    assert len(spool) == 0 and not (folder / "000000000007.json").exists()
    assert notes.read_text() == '{"mine": true}' and blob.read_bytes() == b"someone's"
