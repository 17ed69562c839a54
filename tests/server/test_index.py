"""The server's lake index: new objects invalidate only their model's cached figures, answers
stay equal to :class:`~mlmon.analysis.lake.Lake`, a refresh never blocks a request, an
unreachable lake keeps the last answers with a note, and threads share the lake safely."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from starlette.testclient import TestClient

from mlmon.analysis.lake import Lake
from mlmon.errors import LakeUnreachable
from mlmon.server.app import create_app
from mlmon.server.config import ServerConfig, load_config
from mlmon.server.data import Data, Query
from tests.s3server import BUCKET, MotoServer
from tests.server.conftest import RANGE, write_config
from tests.server.lake import RISK, SEPSIS

pytestmark = pytest.mark.xdist_group("server")

Q = Query(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 7, tzinfo=UTC), "day")
Q_HOUR = Query(Q.start, Q.end, "hour")


def _config(tmp_path: Path, lake: str, **extra: Any) -> ServerConfig:
    # refreshed by hand in these tests: the background thread waits an hour
    path = write_config(
        tmp_path / "cfg", Path(lake), {"mode": "none"}, index={"every": "1h"}, **extra
    )
    return load_config(path, env={})


@pytest.fixture
def lake_copy(tmp_path: Path, server_lake: Path) -> Path:
    """A copy of the server tests' lake that a test may add objects to."""
    return Path(shutil.copytree(server_lake, tmp_path / "lake"))


@pytest.fixture
def data(tmp_path: Path, lake_copy: Path) -> Iterator[Data]:
    d = Data(_config(tmp_path, str(lake_copy)))
    d.start()
    yield d
    d.stop()


def _add_window(lake: Path, model: str, day: str = "2026-10-02") -> Path:
    """A second collector's copy of one of ``model``'s windows: that day's counts double."""
    folder = lake / "v1" / "profiles" / f"model={model}" / f"date={day}"
    src = sorted(folder.glob("*-edge-s-stream-*.parquet"))[0]
    rows = pl.read_parquet(src, hive_partitioning=False).with_columns(
        pl.lit("edge-t").alias("collector_id")
    )
    target = folder / src.name.replace("-edge-s-", "-edge-t-")
    rows.write_parquet(target)
    return target


def test_new_objects_invalidate_only_their_models_figures(data: Data, lake_copy: Path) -> None:
    assert data.indexed
    risk_before = data.drift(RISK, Q)
    sepsis_before = data.drift(SEPSIS, Q)
    versions_before = data.versions(RISK, Q)
    assert data.drift(RISK, Q) is risk_before  # cached until new objects arrive
    assert data.index is not None and data.index.refresh() == set()  # nothing new: kept
    assert data.drift(RISK, Q) is risk_before

    _add_window(lake_copy, RISK)
    assert data.drift(RISK, Q) is risk_before  # not seen before the index lists it
    assert data.index.refresh() == {RISK}
    assert data.drift(SEPSIS, Q) is sepsis_before  # the other model's entries are kept
    risk_after = data.drift(RISK, Q)
    assert risk_after is not risk_before
    fresh = Lake(str(lake_copy))
    assert_frame_equal(risk_after, fresh.drift(RISK, Q.start, Q.end, by="day"))
    assert_frame_equal(sepsis_before, fresh.drift(SEPSIS, Q.start, Q.end, by="day"))
    # the new window is read: 2 October's counts grew, no other day's did
    grew = risk_after.join(risk_before, on=["period", "feature", "method"], suffix="_old").filter(
        pl.col("count") != pl.col("count_old")
    )
    assert grew.height and set(grew["period"].dt.date().cast(pl.String)) == {"2026-10-02"}
    assert_frame_equal(
        data.percentiles(RISK, Q_HOUR),
        fresh.percentiles(model=RISK, start=Q.start, end=Q.end, by="hour"),
    )
    assert data.versions(RISK, Q)["records"].sum() > versions_before["records"].sum()


def test_a_removed_object_is_seen_too(data: Data, lake_copy: Path) -> None:
    added = _add_window(lake_copy, SEPSIS)
    assert data.index is not None and data.index.refresh() == {SEPSIS}
    with_it = data.data_quality(SEPSIS, Q)
    added.unlink()
    assert data.index.refresh(full=True) == {SEPSIS}
    without = data.data_quality(SEPSIS, Q)
    assert_frame_equal(without, Lake(str(lake_copy)).data_quality(SEPSIS, Q.start, Q.end))
    assert without["count"].sum() < with_it["count"].sum()


def test_a_request_during_a_refresh_is_served(
    make_client: Any, tmp_path: Path, lake_copy: Path
) -> None:
    c = make_client(index={"every": "1h"})
    data: Data = c.app.app.state.data
    index = data.index
    assert index is not None and data.indexed
    listing = threading.Event()
    release = threading.Event()
    plain_ls = index._ls

    def slow_ls(path: str) -> Any:  # fault injection: the listing stops until released
        listing.set()
        release.wait(30)
        return plain_ls(path)

    index._ls = slow_ls  # type: ignore[method-assign]
    refresh = threading.Thread(target=index.refresh)
    refresh.start()
    try:
        assert listing.wait(30)
        r = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}&method=psi")
        assert r.status_code == 200
        expected = Lake(str(config_lake(c))).drift(RISK, Q.start, Q.end, by="day", methods=["psi"])
        assert len(r.json()["rows"]) == expected.height > 0
        assert c.get("/").status_code == 200
        assert refresh.is_alive()  # the refresh was still under way throughout
    finally:
        release.set()
        refresh.join(30)
    assert not refresh.is_alive() and index.error is None


def config_lake(c: Any) -> str:
    return str(c.config.lake)


def test_an_unreachable_lake_keeps_the_last_answers_with_a_note(
    server_lake: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A lake on a real S3 API (moto) that goes away: the index keeps its listing and says so."""
    with MotoServer() as s3:
        prefix = s3.unique_prefix()
        admin = s3.storage_options("admin")
        import s3fs

        fs = s3fs.S3FileSystem(**admin)
        fs.put(str(server_lake / "v1"), f"{BUCKET}/{prefix}/v1", recursive=True)
        uri = f"s3://{BUCKET}/{prefix}"
        reader = {  # give up on a dead endpoint at once (no retries with back-off)
            **s3.storage_options("reader", prefix=prefix),
            "s3fs_retries": 1,
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
        }
        doc = {
            "lake": uri,
            "storage_options": reader,
            "auth": {"mode": "none"},
            "index": {"every": "1h"},
            "audit": {"uri": str(tmp_path / "audit"), "state_dir": str(tmp_path / "state")},
        }
        (tmp_path / "server.yaml").write_text(yaml.safe_dump(doc))
        config = load_config(tmp_path / "server.yaml", env={})
        c = TestClient(create_app(config), client=("127.0.0.1", 50001))
        c.__enter__()
        request.addfinalizer(lambda: c.__exit__(None, None, None))
        data: Data = c.app.app.state.data  # type: ignore[attr-defined]
        assert data.indexed and data.note is None
        if data._warming is not None:  # the default views are computed before the outage
            data._warming.join(60)
        expected = Lake(uri, reader).drift(RISK, Q.start, Q.end, by="day")
        first = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}")
        assert first.status_code == 200 and "note" not in first.json()
        assert len(first.json()["rows"]) == expected.height > 0
        page = c.get("/about")
        assert page.status_code == 200 and "stale-note" not in page.text
    # the S3 server is stopped (by its pid): the lake is unreachable
    assert data.index is not None
    with pytest.raises(LakeUnreachable):
        data.index.refresh()
    again = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}")
    assert again.status_code == 200
    assert again.json()["rows"] == first.json()["rows"]
    assert "could not be listed" in again.json()["note"]
    page = c.get("/about")  # every page carries the note
    assert page.status_code == 200 and "could not be listed since" in page.text
    assert "Traceback" not in page.text and "botocore" not in page.text


def test_concurrent_requests_share_the_lake_and_compute_each_figure_once(data: Data) -> None:
    queries = [Q, Q_HOUR, Query(Q.start, Q.end, "week"), Query(Q.start, Q.end, "day", "1.1")]
    fresh = Lake(str(data.config.lake))
    expected = {
        (m, q): fresh.drift(m, q.start, q.end, by=q.by, version=q.version)
        for m in (RISK, SEPSIS)
        for q in queries
    }
    jobs = [k for k in expected for _ in range(4)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda k: (k, data.drift(k[0], k[1])), jobs))
    for key, frame in got:
        assert_frame_equal(frame, expected[key])
    # each figure was computed once: every answer for one key is the same object
    by_key: dict[Any, set[int]] = {}
    for key, frame in got:
        by_key.setdefault(key, set()).add(id(frame))
    assert all(len(ids) == 1 for ids in by_key.values())

    calls: list[int] = []
    gate = threading.Event()

    def slow() -> int:
        calls.append(1)
        gate.wait(5)
        return 42

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(data._cached, ("probe", RISK), slow) for _ in range(6)]
        gate.set()
        assert [f.result() for f in futures] == [42] * 6
    assert len(calls) == 1


def test_profile_rows_are_read_once_and_kept_within_a_budget(
    data: Data, lake_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model's day-rollup rows are kept once, then served from memory (equal to the lake's),
    and the memory they take is bounded (the least recently used dropped first)."""
    from mlmon.server.index import IndexedLake

    data.stop()  # no warm-up reading meanwhile
    data._shared.pop("profile-rows", None)  # nor what it kept of its own ranges before the stop
    lake, fresh = data.lake, Lake(str(lake_copy))
    assert isinstance(lake, IndexedLake)
    scan = dict(start=Q.start, end=Q.end, rollup=True)
    first = lake.scan("profiles", model=RISK, **scan)
    again = lake.scan("profiles", model=RISK, **scan)
    assert "parquet" not in again.explain().lower()  # from memory
    assert [key[0] for key in data._shared["profile-rows"]] == [RISK]  # kept once
    assert_frame_equal(first.collect(), again.collect())
    assert_frame_equal(again.collect(), fresh.scan("profiles", model=RISK, **scan).collect())
    version = fresh.read("profiles", model=RISK)["model_version"].drop_nulls()[0]
    assert_frame_equal(  # filtered by version in memory
        lake.drift(RISK, Q.start, Q.end, by="day", version=version),
        fresh.drift(RISK, Q.start, Q.end, by="day", version=version),
    )
    monkeypatch.setattr(IndexedLake, "ROWS_BYTES", 1)
    lake.scan("profiles", model=SEPSIS, **scan)
    assert [key[0] for key in data._shared["profile-rows"]] == [SEPSIS]
    risk = lake.scan("profiles", model=RISK, **scan).collect()  # dropped: read again
    assert [key[0] for key in data._shared["profile-rows"]] == [RISK]
    assert_frame_equal(risk, fresh.scan("profiles", model=RISK, **scan).collect())
