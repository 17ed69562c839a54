"""A real ``mlmon server`` process (uvicorn on 127.0.0.1), shared with the browser tests and
stopped by its pid at the end of the session (tests/server/live.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import RANGE, TOKENS
from tests.server.lake import RISK, SEPSIS
from tests.server.live import LiveServer

pytestmark = pytest.mark.xdist_group("server")


def test_real_server_pages_script_headers_and_auth(live_server: LiveServer) -> None:
    """The shared server (tests/server/live.py); its clean stop, with the audit segment flushed
    at shutdown holding this test's refused request, is checked when the session ends."""
    alice = {"Authorization": f"Bearer {TOKENS['alice'][0]}"}
    with httpx.Client(base_url=live_server.base, timeout=60) as c:
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
        live_server.expect_audit("alice", f"/models/{SEPSIS}", "404")
        js = c.get("/static/mlmon.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert len(js.content) > 500_000  # vega + vega-lite + vega-embed, served locally
        assert b"ast:true" in js.content and b"mlmonDraw" in js.content
        assert (
            c.get("/static/mlmon.js", headers={"If-None-Match": js.headers["etag"]}).status_code
            == 304
        )
        api = c.get(f"/api/v1/models/{RISK}/drift?{RANGE}&method=psi", headers=alice).json()
        assert api["rows"] and {r["method"] for r in api["rows"]} == {"psi"}
