"""Shared fixtures: a moto S3 server per test process, and lake targets on both back ends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.s3server import BUCKET, MotoServer


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """A moto S3 server on 127.0.0.1 with IAM enforced (one per xdist worker)."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_prefix(s3_server: MotoServer) -> str:
    return s3_server.unique_prefix()


@dataclass(frozen=True)
class LakeTarget:
    """A fresh, empty lake: its URI and the options of a writer and of a reader."""

    uri: str
    kind: str
    write_options: dict[str, Any] = field(default_factory=dict)
    read_options: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(params=["local", "s3"])
def lake_target(request: pytest.FixtureRequest, tmp_path) -> LakeTarget:
    """The same lake tests on a local folder and on S3 (edge writes, maintenance reads)."""
    if request.param == "local":
        return LakeTarget(f"file://{tmp_path}/lake", "local")
    server: MotoServer = request.getfixturevalue("s3_server")
    prefix = server.unique_prefix()
    return LakeTarget(
        f"s3://{BUCKET}/{prefix}",
        "s3",
        write_options=server.storage_options("edge", sse_kms_key_id="alias/mlmon"),
        read_options=server.storage_options("admin"),
    )
