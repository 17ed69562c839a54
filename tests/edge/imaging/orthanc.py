"""A real PACS for the tests: Orthanc with its DICOMweb plugin on 127.0.0.1, stopped by its pid.

Each instance gets a temporary folder with its own configuration and storage,
free ports, ``RemoteAccessAllowed: false``, the DICOM (C-STORE) listener off,
and optionally HTTP basic auth (for the 401 test).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "mlmon-reader", "orthanc-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    proc: subprocess.Popen[bytes]
    port: int
    folder: Path
    auth: bool

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, auth=(USER, PASSWORD) if self.auth else None, timeout=30
        )

    def upload(self, blobs: list[bytes]) -> None:
        """Store instances through Orthanc's REST API (the test's own admin path, not the edge's)."""
        with self.client() as c:
            for b in blobs:
                r = c.post("/instances", content=b)
                r.raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_orthanc(*, auth: bool = False) -> Orthanc:
    folder = Path(tempfile.mkdtemp(prefix="mlmon-orthanc-"))
    port = free_port()
    cfg = {
        "Name": "mlmon-test-pacs",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": port,
        "DicomPort": free_port(),
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": auth,
        "RegisteredUsers": {USER: PASSWORD} if auth else {},
        "HttpDescribeErrors": False,
        "Plugins": [PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "StableAge": 1,
        "LogExportedResources": False,
    }
    (folder / "orthanc.json").write_text(json.dumps(cfg))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 - the child keeps its own descriptor
    proc = subprocess.Popen(
        ["Orthanc", str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    server = Orthanc(proc, port, folder, auth)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with server.client() as c:
                if c.get("/system").status_code == 200:
                    return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    text = (folder / "orthanc.log").read_text(errors="replace")[-2000:]
    server.stop()
    raise RuntimeError(f"Orthanc did not answer on 127.0.0.1:{port} within 30 s; log tail:\n{text}")
