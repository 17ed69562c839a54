"""Bucket outages: windows wait on the edge's volume and are flushed in order."""

from __future__ import annotations

import pytest

from mlmon.edge.spool import Breaker, Spool, SpoolFull
from mlmon.errors import LakeError
from mlmon.lake.storage import Storage, bounded_s3_options, open_storage


def _dead() -> Storage:
    """An S3 lake on a port nobody listens on (refused at once), with the edge's bounded client."""
    opts = bounded_s3_options({"key": "a", "secret": "b", "endpoint_url": "http://127.0.0.1:9"},
                              connect_timeout_s=2, read_timeout_s=2, attempts=1)  # fmt: skip
    return open_storage("s3://mlmon-lake/lake", opts)


def _calls(st: Storage) -> list[str]:
    """The S3 operations st's client sends from now on (botocore operation names)."""
    calls: list[str] = []
    st.fs.connect()
    st.fs.s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    return calls


def test_spool_buffers_while_unreachable_and_flushes_in_order(tmp_path):
    dead = _dead()
    calls = _calls(dead)
    spool = Spool(tmp_path / "spool", max_bytes=100)
    lake = tmp_path / "lake"
    assert spool.put(dead, str(lake / "a"), b"first") is False
    assert calls == ["PutObject"] and spool.breaker.is_open
    # the bucket is known down: the next objects are spooled without touching the network
    assert spool.put(dead, str(lake / "b"), b"second") is False
    assert calls == ["PutObject"]
    assert len(spool) == 2 and spool.size_bytes == 11
    assert spool.flush(dead) == 0 and calls == ["PutObject"]  # the back-off has not passed

    # a restart finds the spooled objects again; new objects queue behind them
    sent: list[str] = []
    again = Spool(tmp_path / "spool", max_bytes=100, on_response=lambda path, _: sent.append(path))
    assert len(again) == 2
    local = open_storage(lake)
    assert again.put(local, str(lake / "c"), b"third") is False  # older objects still wait
    assert sent == [] and len(again) == 3
    assert again.flush(local, max_objects=2) == 2  # a bounded step
    assert sent == [str(lake / "a"), str(lake / "b")] and len(again) == 1
    assert again.flush(local) == 1
    assert sent == [str(lake / n) for n in "abc"]
    assert len(again) == 0 and list((tmp_path / "spool").iterdir()) == []
    assert [(lake / n).read_bytes() for n in "abc"] == [b"first", b"second", b"third"]
    # the spool is empty and the bucket up: the next object goes straight through
    assert again.put(local, str(lake / "d"), b"fourth") is True and len(again) == 0


def test_the_breaker_backs_off_exponentially_up_to_the_cap_and_closes_on_success(tmp_path):
    """A local lake whose folder is blocked by a file fails every PUT until the file goes."""
    t = [100.0]
    breaker = Breaker(retry_min_s=2, retry_max_s=10, clock=lambda: t[0])
    lake = tmp_path / "lake"
    lake.write_text("not a folder")  # the lake is "down"
    storage = open_storage(lake)
    spool = Spool(tmp_path / "spool", max_bytes=1000, breaker=breaker)
    assert spool.put(storage, str(lake / "x"), b"x") is False
    assert breaker.failures == 1 and spool.outage_since is not None
    waits = []
    for _ in range(5):  # each failed attempt doubles the wait: 2, 4, 8, 10, 10
        waits.append(breaker.next_delay_s)
        n = breaker.failures
        assert not breaker.may_try() and spool.flush(storage) == 0  # no attempt inside the back-off
        assert spool.put(storage, str(lake / "y"), b"y") is False  # spooled at once, no attempt
        assert breaker.failures == n
        t[0] += breaker.next_delay_s
        with pytest.raises(LakeError):
            spool.flush(storage)
        assert breaker.failures == n + 1  # one attempt, whatever is spooled
    assert waits == [2, 4, 8, 10, 10] and len(spool) == 6
    lake.unlink()  # the lake comes back; the next attempt is due after the back-off
    t[0] += breaker.next_delay_s
    assert spool.flush(storage, max_objects=4) == 4 and not breaker.is_open  # a bounded step
    assert breaker.failures == 0 and breaker.next_delay_s == 2
    assert spool.outage_since is not None  # still draining
    assert spool.flush(storage) == 2 and spool.outage_since is None
    assert (lake / "x").read_bytes() == b"x" and (lake / "y").read_bytes() == b"y"


def test_write_behind_spools_everything_and_reports_whether_the_bucket_was_up(tmp_path):
    lake = tmp_path / "lake"
    spool = Spool(tmp_path / "spool", max_bytes=100)
    spool.write_behind = True
    assert spool.put(open_storage(lake), str(lake / "a"), b"a") is True  # not known down
    assert len(spool) == 1 and not (lake / "a").exists()  # the flush thread sends it
    assert spool.flush(open_storage(lake)) == 1 and (lake / "a").read_bytes() == b"a"
    # an object larger than the whole spool is sent directly while the bucket is up
    big = b"b" * 200
    assert spool.put(open_storage(lake), str(lake / "big"), big) is True
    assert (lake / "big").read_bytes() == big and len(spool) == 0 and spool.dropped == 0


def test_full_spool_refuses_and_counts(tmp_path):
    dead = _dead()
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


def test_sequence_watermarks_say_when_what_was_stored_has_landed(tmp_path):
    """The collector's last_success waits for sent_through to reach stored_through (write-behind)."""
    lake = tmp_path / "lake"
    spool = Spool(tmp_path / "spool", max_bytes=100)
    spool.write_behind = True
    assert (spool.stored_through, spool.sent_through) == (0, 0)
    spool.put(open_storage(lake), str(lake / "a"), b"a")
    spool.put(open_storage(lake), str(lake / "b"), b"b")
    assert (spool.stored_through, spool.sent_through) == (2, 0)
    assert spool.flush(open_storage(lake), max_objects=1) == 1
    assert spool.sent_through == 1  # "a" landed, "b" still waits
    with pytest.raises(LakeError):  # a dead bucket takes nothing
        spool.flush(_dead())
    assert spool.sent_through == 1
    # a restart: what is left on disk is not sent yet
    again = Spool(tmp_path / "spool", max_bytes=100)
    assert (again.stored_through, again.sent_through) == (2, 1)
    assert again.flush(open_storage(lake)) == 1
    assert again.sent_through == again.stored_through == 2
