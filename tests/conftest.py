"""Shared fixtures: a moto S3 server per test process, and lake targets on both back ends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.s3server import BUCKET, MotoServer


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` group by ``xdist_group`` again (on an xdist worker).

    pytest-xdist 3.8 marks a grouped test by appending ``@<group>`` to ``item._nodeid``;
    pytest 9.2 derives ``nodeid`` from ``item._id``, so that append is lost and every group
    was spread over both workers, each starting the group's session servers (MLflow, Spark,
    Ray, the browser...) again. Here the same suffix is set where pytest reads it; a no-op
    when xdist's own suffix took effect.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """A moto S3 server on 127.0.0.1 with IAM enforced (one per xdist worker, own port)."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_prefix(s3_server: MotoServer) -> str:
    """A fresh prefix in the bucket (``lake/t-<hex>``), empty at the start of the test."""
    return s3_server.unique_prefix()


@pytest.fixture
def local_lake_uri(tmp_path: Path) -> str:
    """A ``file://`` URI of a fresh, not yet created lake folder."""
    return (tmp_path / "lake").as_uri()


@dataclass(frozen=True)
class LakeTarget:
    """A fresh, empty lake: its URI and the storage options of a writer and of a reader.

    On S3 the writer is the edge (PutObject only, SSE-KMS on) and the reader the
    ``reader`` role (list, get, and put of compaction objects), both with the shipped
    policies scoped to exactly this lake's prefix. Local options are empty.
    """

    uri: str
    kind: str
    write_options: dict[str, Any] = field(default_factory=dict)
    read_options: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(params=["local", "s3"])
def lake_target(request: pytest.FixtureRequest, local_lake_uri: str) -> LakeTarget:
    """The same lake tests on a local folder and on S3."""
    if request.param == "local":
        return LakeTarget(local_lake_uri, "local")
    server: MotoServer = request.getfixturevalue("s3_server")
    prefix = server.unique_prefix()
    return LakeTarget(
        f"s3://{BUCKET}/{prefix}",
        "s3",
        write_options=server.storage_options(
            "edge", sse_kms_key_id=server.kms_key_arn, prefix=prefix
        ),
        read_options=server.storage_options("reader", prefix=prefix),
    )
