"""A real S3 API for tests: moto in server mode, on 127.0.0.1, with IAM enforced.

The server runs as a subprocess and is stopped by its own process id. With
auth still off it creates the bucket and IAM users whose policies are the
shipped files in ``deploy/iam/`` (placeholders filled in), then switches IAM
enforcement on (``POST /moto-api/reset-auth`` with body ``0`` as text/plain).

Differences from AWS worth knowing (see ../shared/notes/facts.md): moto does
not evaluate ``Condition`` blocks, does not check KMS (any key id is accepted
and echoed back), and authorises HEAD bucket as ``s3:HeadBucket``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "mlmon-lake"
REGION = "us-east-1"
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
ROLES = ("edge", "reader", "maintenance")
POLICY_FILES = {
    "edge": "edge-writer.json",
    "reader": "reader.json",
    "maintenance": "maintenance.json",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def policy(role: str, prefix: str, bucket: str = BUCKET) -> str:
    """The shipped policy file for ``role`` with its placeholders filled in."""
    text = (ROOT / "deploy" / "iam" / POLICY_FILES[role]).read_text()
    return (
        text.replace("${bucket}", bucket)
        .replace("${prefix}", prefix)
        .replace("${kms_key_arn}", KMS_KEY_ARN)
    )


@dataclass
class MotoServer:
    """One moto server process; ``start()`` it, ``stop()`` it (by its own pid)."""

    prefix_root: str = "lake"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    creds: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("moto server did not start on 127.0.0.1")
            time.sleep(0.1)
        self._provision()
        return self

    def _client(self, service: str, key: str = "admin-bootstrap", secret: str = "x") -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=key, aws_secret_access_key=secret,
        )  # fmt: skip

    def _provision(self) -> None:
        self._client("s3").create_bucket(Bucket=BUCKET)
        iam = self._client("iam")
        admin_policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        )
        for role in ("admin", *ROLES):
            iam.create_user(UserName=role)
            doc = admin_policy if role == "admin" else policy(role, self.prefix_root)
            iam.put_user_policy(UserName=role, PolicyName=f"{role}-policy", PolicyDocument=doc)
            key = iam.create_access_key(UserName=role)["AccessKey"]
            self.creds[role] = (key["AccessKeyId"], key["SecretAccessKey"])
        r = httpx.post(
            f"{self.endpoint_url}/moto-api/reset-auth",
            content=b"0",
            headers={"Content-Type": "text/plain"},
        )
        r.raise_for_status()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def unique_prefix(self) -> str:
        """A fresh prefix under the policies' prefix, so tests never see each other's objects."""
        return f"{self.prefix_root}/t-{uuid.uuid4().hex[:10]}"

    def storage_options(self, role: str, sse_kms_key_id: str | None = None) -> dict[str, Any]:
        key, secret = self.creds[role]
        opts: dict[str, Any] = {
            "key": key,
            "secret": secret,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": REGION},
            "config_kwargs": {"retries": {"max_attempts": 2}},
        }
        if sse_kms_key_id:
            opts["sse_kms_key_id"] = sse_kms_key_id
        return opts

    def boto3_client(self, role: str) -> Any:
        key, secret = self.creds[role]
        return self._client("s3", key, secret)
