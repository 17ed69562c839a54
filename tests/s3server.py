"""A real S3 API for tests: moto in server mode, on 127.0.0.1, with IAM enforced.

The server runs as a subprocess on a free port and is stopped by its own
process id (SIGTERM, then SIGKILL after a timeout). With auth still off it
creates the bucket and IAM users whose inline policies are the shipped files in
``deploy/iam/`` with their placeholders filled in, then switches IAM
enforcement on (``POST /moto-api/reset-auth`` with body ``0`` as text/plain;
a form-encoded body arrives empty and moto answers 500).

Users: ``admin`` (``Action: "*"`` -- once auth is on, an unknown key is
``InvalidAccessKeyId``, so every later set-up and inspection goes through it),
``edge`` (``edge-writer.json``), ``reader`` and ``maintenance``. The users made
at start are scoped to the prefix ``lake``, so they work under every
:meth:`MotoServer.unique_prefix`. ``storage_options(role, prefix=...)`` makes
users whose policy is filled in for exactly that prefix, as a deployment would
(the lake root is the policy's ``${prefix}``): then rules anchored below the
root (the reader's compaction objects, the maintenance audit folder) are tested
as shipped.

Where moto differs from AWS (re-checked with moto 5.2.5 and 5.2.6, December 2026):

- From 5.2.6 moto authorises an S3 request by its *API operation name*
  (``s3:HeadObject``, ``s3:ListObjectsV2``, ``s3:CreateMultipartUpload``), not by
  the IAM action AWS checks for it (``s3:GetObject``, ``s3:ListBucket``,
  ``s3:PutObject``; AWS's Service Authorization Reference for Amazon S3). Those
  names are not IAM actions on AWS, so a policy that is right for AWS is refused
  HEAD, list and multipart there. :func:`moto_policy` translates the shipped
  policy into moto's vocabulary: every statement that grants an IAM action also
  grants, with the same resources and conditions, the operations AWS authorises
  with that action (:data:`OPERATIONS_OF_ACTION`). It adds nothing AWS would not
  allow, and with moto 5.2.5 (which used the IAM names) it changes nothing.
- It does not evaluate ``Condition`` blocks on S3 requests (it passes no
  request context; its evaluator knows only ``StringEquals`` on ``sts:ExternalId``),
  so the ``s3:prefix`` condition on ``s3:ListBucket`` is ignored and a reader can
  list the whole bucket here (``test_moto_ignores_policy_conditions``).
- It does not check KMS at all (:data:`KMS_KEY_ARN` is just a string: any key id
  is accepted and echoed back as sent, where AWS returns the key ARN and also
  needs ``kms:GenerateDataKey`` / ``kms:Decrypt``).
- It authorises HEAD bucket as ``s3:HeadBucket`` (AWS: ``s3:ListBucket``), and a
  bulk ``DeleteObjects`` on the bucket ARN (AWS: ``s3:DeleteObject`` per key);
  neither is translated, so both stay refused here as the tests expect.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
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
# A KMS-looking key ARN for the policies' ${kms_key_arn} and for SSE-KMS. moto checks nothing
# about it: there is no key behind it, and any other string would be accepted just the same.
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
PREFIX_ROOT = "lake"
ROLES = ("edge", "reader", "maintenance")
POLICY_FILES = {
    "edge": "edge-writer.json",
    "reader": "reader.json",
    "maintenance": "maintenance.json",
}
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def policy(role: str, prefix: str, bucket: str = BUCKET, kms_key_arn: str = KMS_KEY_ARN) -> str:
    """The shipped policy file for ``role`` with its placeholders filled in.

    A lake at the bucket root (``prefix`` empty) is filled in as ``deploy/iam/README.md``
    says: ``${prefix}/`` (with its slash) becomes nothing, so ``.../${prefix}/*`` is
    ``arn:aws:s3:::bucket/*``.
    """
    text = (ROOT / "deploy" / "iam" / POLICY_FILES[role]).read_text()
    if not prefix.strip("/"):
        text = text.replace("${prefix}/", "")
    text = (
        text.replace("${bucket}", bucket)
        .replace("${prefix}", prefix.strip("/"))
        .replace("${kms_key_arn}", kms_key_arn)
    )
    if "${" in text:
        raise ValueError(f"deploy/iam/{POLICY_FILES[role]}: unfilled placeholder in {text!r}")
    json.loads(text)  # the shipped file must stay valid JSON
    return text


# The S3 API operations AWS authorises with each IAM action whose name differs from the
# operation's (Service Authorization Reference, Amazon S3). HeadBucket and DeleteObjects are
# left out on purpose: moto checks them against the bucket ARN, which AWS does not do.
OPERATIONS_OF_ACTION = {
    "s3:GetObject": ("s3:HeadObject",),
    "s3:ListBucket": ("s3:ListObjects", "s3:ListObjectsV2"),
    "s3:PutObject": ("s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload"),
    "s3:ListBucketMultipartUploads": ("s3:ListMultipartUploads",),
    "s3:ListMultipartUploadParts": ("s3:ListParts",),
}


def moto_policy(document: str) -> str:
    """``document`` with the operation names moto (5.2.6 and later) checks added beside each IAM
    action, on the same resources and conditions; see the module docstring."""
    doc = json.loads(document)
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    for s in statements:
        if "Action" not in s:
            continue
        actions = [s["Action"]] if isinstance(s["Action"], str) else list(s["Action"])
        extra = [op for a in actions for op in OPERATIONS_OF_ACTION.get(a, ()) if op not in actions]
        s["Action"] = actions + extra
    return json.dumps(doc)


@dataclass
class MotoServer:
    """One moto server process; ``start()`` it, ``stop()`` it (by its own pid).

    Usable as a context manager. ``creds[role]`` holds ``(access_key, secret)``
    of the users created at start (scoped to :data:`PREFIX_ROOT`).
    """

    prefix_root: str = PREFIX_ROOT
    port: int = field(default_factory=free_port)
    kms_key_arn: str = KMS_KEY_ARN
    proc: subprocess.Popen[bytes] | None = None
    creds: dict[str, tuple[str, str]] = field(default_factory=dict)
    _scoped: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, repr=False)
    _log: Any = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the moto server was never started")
        return self.proc.pid

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> MotoServer:
        """Start the process, wait until it answers, create bucket and users, turn IAM on."""
        env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        # the server's own output, kept for the error message if it does not come up
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.endpoint_url}/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"moto server did not answer on {self.endpoint_url} within {timeout:g} s; "
                    f"its output:\n{self._output()}"
                )
            time.sleep(0.1)
        try:
            self._provision()
        except BaseException:
            self.stop()
            raise
        return self

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-4000:].decode(errors="replace")

    def _client(self, service: str, key: str, secret: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=key, aws_secret_access_key=secret,
        )  # fmt: skip

    def _provision(self) -> None:
        # auth is still off: any key is accepted, and every request counts as allowed
        self._client("s3", "bootstrap", "x").create_bucket(Bucket=BUCKET)
        iam = self._client("iam", "bootstrap", "x")
        self.creds["admin"] = self._create_user(iam, "admin", json.dumps(ADMIN_POLICY))
        for role in ROLES:
            doc = policy(role, self.prefix_root, kms_key_arn=self.kms_key_arn)
            self.creds[role] = self._create_user(iam, role, doc)
        r = httpx.post(
            f"{self.endpoint_url}/moto-api/reset-auth",
            content=b"0",
            headers={"Content-Type": "text/plain"},
        )
        r.raise_for_status()

    @staticmethod
    def _create_user(iam: Any, name: str, document: str) -> tuple[str, str]:
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name, PolicyName=f"{name}-policy", PolicyDocument=moto_policy(document)
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL if it is still there after ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def unique_prefix(self) -> str:
        """A fresh prefix under the policies' prefix, so tests never see each other's objects."""
        return f"{self.prefix_root}/t-{uuid.uuid4().hex[:10]}"

    def credentials(self, role: str, prefix: str | None = None) -> tuple[str, str]:
        """``(access_key, secret)`` for ``role``; with ``prefix``, a user whose policy names that prefix.

        ``role`` is ``"admin"`` or one of :data:`ROLES`. Scoped users are created once per
        (role, prefix) through the admin user, since IAM is enforced by then.
        """
        if role != "admin" and role not in ROLES:
            raise KeyError(f"unknown role {role!r}; known: admin, {', '.join(ROLES)}")
        if prefix is None or role == "admin":
            return self.creds[role]
        prefix = prefix.strip("/")
        if (role, prefix) not in self._scoped:
            name = f"{role}-{hashlib.sha256(prefix.encode()).hexdigest()[:16]}"
            iam = self._client("iam", *self.creds["admin"])
            doc = policy(role, prefix, kms_key_arn=self.kms_key_arn)
            self._scoped[role, prefix] = self._create_user(iam, name, doc)
        return self._scoped[role, prefix]

    def storage_options(
        self, role: str, sse_kms_key_id: str | None = None, prefix: str | None = None
    ) -> dict[str, Any]:
        """s3fs options for :func:`mlmon.lake.storage.open_storage` as ``role``.

        ``sse_kms_key_id`` turns on SSE-KMS for every object written; ``prefix`` scopes the
        role's policy to exactly that lake root (see :meth:`credentials`).
        """
        key, secret = self.credentials(role, prefix)
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

    def boto3_client(self, role: str, prefix: str | None = None) -> Any:
        """A boto3 S3 client acting as ``role`` (``"admin"`` to inspect anything)."""
        return self._client("s3", *self.credentials(role, prefix))
