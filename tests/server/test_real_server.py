"""A real ``mlmon server`` process (uvicorn on 127.0.0.1), stopped by its pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import RANGE, TOKENS, write_config
from tests.server.lake import RISK, SEPSIS

pytestmark = pytest.mark.xdist_group("server")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_pages_script_headers_and_auth(tmp_path: Path, server_lake: Path) -> None:
    config = write_config(tmp_path, server_lake, {"mode": "token"})
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "server", "--config", str(config), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # up to 30 s to start
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.1)
        else:
            pytest.fail("mlmon server did not answer /healthz")
        alice = {"Authorization": f"Bearer {TOKENS['alice'][0]}"}
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.get("/").status_code == 401
            assert c.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
            page = c.get(f"/?{RANGE}", headers=alice)
            assert page.status_code == 200 and RISK in page.text and SEPSIS not in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
            assert "server" not in page.headers  # uvicorn's banner is off
            model = c.get(f"/models/{RISK}?{RANGE}", headers=alice)
            assert model.status_code == 200 and 'class="chart"' in model.text
            assert c.get(f"/models/{SEPSIS}?{RANGE}", headers=alice).status_code == 404
            js = c.get("/static/mlmon.js")
            assert js.status_code == 200 and js.headers["content-type"].startswith(
                "text/javascript"
            )
            assert len(js.content) > 500_000  # vega + vega-lite + vega-embed, served locally
            assert b"ast:true" in js.content and b"mlmonDraw" in js.content
            assert (
                c.get("/static/mlmon.js", headers={"If-None-Match": js.headers["etag"]}).status_code
                == 304
            )
            api = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}&method=psi", headers=alice).json()
            assert api["rows"] and {r["method"] for r in api["rows"]} == {"psi"}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully (lifespan end: the audit flush), then re-raises the signal
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    # the audit segment is flushed at shutdown
    seg = sorted((tmp_path / "audit-lake" / "audit" / "mlmon-server").glob("segment-*.jsonl"))
    records = [json.loads(line) for s in seg for line in s.read_text().splitlines()]
    assert ("alice", f"/models/{SEPSIS}", "404") in {
        (r["details"]["principal"], r["target"], r["outcome"]) for r in records
    }
