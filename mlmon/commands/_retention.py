"""``mlmon retention plan | apply | lifecycle``.

``plan`` lists what is past retention (partitions, audit segments behind the
checkpoint they leave) and what stays (references still in use, files mlmon did
not write, audit segments it cannot retire); it deletes nothing.

``apply`` first writes a ``retention_started`` audit record: a role that cannot
write the audit log deletes nothing (exit 3). Then it deletes key by key, names
on stderr every key that was refused (paths only) before anything else is
reported, and ends with a ``retention_applied`` record.

Exit codes: 0 done; 1 some deletes (or checkpoints) were refused, each key named;
2 bad arguments (``--days``, a lake that is not on S3 for ``lifecycle``); 3 the lake
could not be listed or read, or the audit log could not be written (when that
happens after deleting, the refused keys are named first).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from mlmon.commands._common import storage_options as _storage_options
from mlmon.errors import ConfigError, LakeError

__all__ = ["EXIT_AUDIT", "EXIT_REFUSED", "cmd_retention", "lifecycle_prefix"]

EXIT_REFUSED = 1
EXIT_AUDIT = 3


def lifecycle_prefix(lake: str) -> str:
    """The lake's key prefix inside its bucket (``""`` at the bucket root)."""
    parts = urlsplit(lake)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(
            f"retention lifecycle: {lake} is not an S3 lake (s3://bucket or s3://bucket/prefix); "
            "lifecycle rules are a bucket's; use `mlmon retention apply` elsewhere"
        )
    return parts.path.strip("/")


def cmd_retention(args: argparse.Namespace, lake: str) -> int:
    """Run ``retention plan``, ``apply`` or ``lifecycle`` on ``lake``."""
    from mlmon.governance import retention

    days = retention.parse_days(args.days or [])
    if args.sub == "lifecycle":
        conf = retention.lifecycle_configuration(lifecycle_prefix(lake), days=days)
        print(json.dumps(conf, indent=1))
        return 0
    opts = _storage_options(args) or None
    key = None
    if args.sub == "apply" and getattr(args, "audit_signing_key", None):
        from mlmon.governance.attest import load_signing_key

        key = load_signing_key(args.audit_signing_key)
    p = retention.plan(lake, days=days, storage_options=opts, actor=args.actor)
    print(
        f"{len(p.partitions)} partition(s), {len(p.objects)} object(s), {p.bytes:,} bytes past retention"
    )
    for part in p.partitions:
        print(f"  {part}")
    if p.in_use:
        print(f"{len(p.in_use)} reference object(s) past retention are still in use; kept:")
        for path in p.in_use:
            print(f"  IN USE {path}")
    for path in p.unreadable:
        print(f"  UNREADABLE {path}: the references it names or holds are kept")
    if p.skipped:
        print(f"{len(p.skipped)} file(s) past retention are not lake objects; left in place:")
        for path in p.skipped:
            print(f"  KEPT {path}")
    for r in p.audit:
        print(
            f"audit/{r.actor}: records {r.first_seq}..{r.checkpoint.last_seq} in "
            f"{len(r.segments)} segment(s) past retention; {r.checkpoint.file_name} keeps "
            "their chain head"
        )
    for why in p.audit_kept:
        print(f"  AUDIT KEPT {why}")
    if p.partial:
        print(f"{len(p.partial)} interrupted write(s) (.tmp-*.part, over an hour old) to delete:")
        for path in p.partial:
            print(f"  PARTIAL {path}")
    if args.sub == "plan":
        return 0
    from mlmon.governance.audit import AuditLog

    audit = AuditLog(lake, Path(args.state_dir), args.actor, signing_key=key, storage_options=opts)
    try:
        audit.record("retention_started", lake, "started", objects=len(p.objects),
                     audit_segments=sum(len(r.segments) for r in p.audit))  # fmt: skip
        audit.flush()
    except LakeError as exc:
        raise LakeError(
            f"{exc}; nothing was deleted: retention deletes only what it can audit "
            "(the maintenance role may write under audit/)"
        ) from exc
    result = retention.apply(lake, p, storage_options=opts)
    for r in result["refused"]:  # every refused key first, before any other failure
        print(f"  REFUSED {r['key']} ({r['error']})", file=sys.stderr)
    print(
        f"deleted {result['deleted']} object(s) ({result['audit_segments']} audit segment(s) "
        f"behind {len(result['checkpoints'])} checkpoint(s))"
    )
    try:
        audit.record("retention_applied", lake, "ok" if result["ok"] else "failed",
                     deleted=result["deleted"], refused=len(result["refused"]),
                     partitions=result["partitions"], checkpoints=result["checkpoints"],
                     kept_in_use=len(p.in_use))  # fmt: skip
        audit.flush()
    except LakeError as exc:
        print(f"mlmon: lake error: the retention_applied audit record: {exc}", file=sys.stderr)
        return EXIT_AUDIT
    if not result["ok"]:
        print(
            f"mlmon: {len(result['refused'])} key(s) refused (named above); they stay",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return 0
