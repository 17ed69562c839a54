"""``mlmon offboard`` and ``mlmon attest verify``: purge vendor-side copies, attest, verify.

``offboard`` lists every scope and prints the summary, asks for confirmation
(``--yes``, or typing ``purge`` at a terminal), purges key by key exactly the
objects of that listing (anything that arrives later stays, and is named as
still listed), writes the signed attestation JSON (and its one-page PDF when
the reports extra is installed) into ``--out`` under a new name, never over a
file, and an audit record ``purge_executed``. Exit 0 when
the purge is complete, 1 when anything is left (the attestation says what).
``attest verify`` needs the operator's public key (``--public-key`` or the file
named by ``$MLMON_ATTEST_PUBLIC_KEY``; exit 2 without one) and exits 0 for a valid
attestation, signed with that key, of a complete purge; 1 naming what is wrong, or
when the purge it attests was not complete (unless ``--allow-incomplete``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from mlmon.commands._common import storage_options as _storage_options
from mlmon.errors import ConfigError

EXIT_INCOMPLETE = 1
EXIT_INVALID = 1
#: A path to the operator's public key PEM, used when ``attest verify`` gets no ``--public-key``.
PUBLIC_KEY_ENV = "MLMON_ATTEST_PUBLIC_KEY"


def _pdf_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("jinja2", "weasyprint"))


def _inside(path: Path, scope_root: str) -> bool:
    root = Path(scope_root).resolve()
    return path == root or root in path.parents


def _confirm(n: int) -> None:
    if not sys.stdin.isatty():
        raise ConfigError(
            "refusing to purge without confirmation: pass --yes (not an interactive terminal); "
            "nothing was deleted"
        )
    answer = input(f"Type 'purge' to delete these {n} object(s) for good: ")
    if answer.strip() != "purge":
        raise ConfigError("not confirmed; nothing was deleted")


def cmd_offboard(args: argparse.Namespace) -> int:
    from mlmon.governance.attest import attestation_path, load_signing_key
    from mlmon.governance.audit import AuditLog
    from mlmon.governance.offboard import list_scopes, offboard, record_purge
    from mlmon.lake.storage import open_storage

    opts = _storage_options(args) or None
    key = load_signing_key(args.signing_key)
    if args.pdf:
        from mlmon._extras import require

        require("jinja2", "reports")
        require("weasyprint", "reports")
    out = Path(args.out).resolve()
    audit_lake = args.audit_lake or out.as_uri()
    inventory = list_scopes(args.scope, opts, allow_empty=args.allow_empty)
    audit_storage = open_storage(audit_lake, opts)
    for s in inventory.scopes:
        if not s.storage.is_local:
            if not audit_storage.is_local and (audit_storage.root + "/").startswith(
                s.storage.root + "/"
            ):
                raise ConfigError(f"--audit-lake {audit_lake} is inside --scope {s.uri}")
            continue
        for what, p in (("--out", out), ("--state-dir", Path(args.state_dir).resolve())):
            if _inside(p, s.storage.root):
                raise ConfigError(
                    f"{what} {p} is inside --scope {s.uri}, which is being purged; "
                    "write the attestation elsewhere"
                )
        if audit_storage.is_local and _inside(Path(audit_storage.root), s.storage.root):
            raise ConfigError(f"--audit-lake {audit_lake} is inside --scope {s.uri}")
    print(inventory.summary())
    if not args.yes:
        _confirm(inventory.objects)
    att = offboard(
        args.scope, opts, args.operator, signing_key=key, inventory=inventory,
        allow_empty=args.allow_empty,
    )  # fmt: skip
    json_path = att.write(attestation_path(out, att.body["started_at"]))  # never over a file
    print(f"attestation: {json_path}")
    render_pdf = args.pdf if args.pdf is not None else _pdf_available()
    if render_pdf:
        from mlmon.reports.attestation import render_attestation_pdf

        print(
            f"attestation PDF: {render_attestation_pdf(json_path, json_path.with_suffix('.pdf'))}"
        )
    elif args.pdf is None:
        print("no PDF: the reports extra is not installed (pip install 'mlmon[reports]')")
    b = att.body
    print(
        f"deleted {b['deleted']['objects']} of {b['listed_before']['objects']} object(s), "
        f"{b['deleted']['bytes']:,} bytes; manifest SHA-256 {b['manifest_sha256']}"
    )
    print(f"outcome: {b['outcome']}")
    for r in b["refused"]:
        print(f"  NOT DELETED {r['key']} ({r['reason']})", file=sys.stderr)
    for k in b["relist_after"]["keys"]:
        print(f"  STILL LISTED {k}", file=sys.stderr)
    for e in b["relist_after"]["errors"]:
        print(f"  RE-LIST FAILED {e}", file=sys.stderr)
    audit = AuditLog(audit_storage, Path(args.state_dir), args.actor)
    record_purge(audit, att)
    return 0 if att.complete else EXIT_INCOMPLETE


def _operator_key_path(args: argparse.Namespace) -> str:
    """``--public-key``, else ``$MLMON_ATTEST_PUBLIC_KEY``; refuse when neither is given."""
    if args.public_key:
        return str(args.public_key)
    pinned = os.environ.get(PUBLIC_KEY_ENV, "").strip()
    if pinned:
        return pinned
    raise ConfigError(
        "no operator public key: pass --public-key FILE (the operator's Ed25519 public key, "
        f"PEM, received out of band at on-boarding) or set ${PUBLIC_KEY_ENV} to its path. "
        "The key embedded in the attestation proves only that the file is unchanged since "
        "someone signed it, not that the operator did; nothing was verified"
    )


def cmd_attest_verify(args: argparse.Namespace) -> int:
    from mlmon.governance.attest import load_public_key, verify_attestation

    public_key = load_public_key(_operator_key_path(args))
    check = verify_attestation(args.file, public_key)
    if not check.ok:
        print(check, file=sys.stderr)
        return EXIT_INVALID
    if not check.complete and not args.allow_incomplete:
        print(
            f"{check}\nexit {EXIT_INCOMPLETE}: the attestation is genuine but the purge it "
            "attests was NOT complete (see its refused and relist_after keys); pass "
            "--allow-incomplete to accept it as a record of a partial purge",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    print(check)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``offboard`` and ``attest verify``."""
    ob = sub.add_parser(
        "offboard",
        help="purge every vendor-side copy under the scopes and write a signed attestation",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    ob.add_argument("--scope", action="append", required=True, metavar="URI",
                    help="file:///path, a path, or s3://bucket/prefix (repeat for several)")  # fmt: skip
    ob.add_argument("--signing-key", metavar="PEM",
                    help="Ed25519 private key file (default: the PEM in $MLMON_SIGNING_KEY)")  # fmt: skip
    ob.add_argument("--operator", required=True, help="who runs the purge (name or account)")
    ob.add_argument("--out", required=True, metavar="DIR",
                    help="folder for the attestation JSON and PDF (outside every scope)")  # fmt: skip
    ob.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                    help="s3fs option for the scopes, e.g. endpoint_url=...")  # fmt: skip
    ob.add_argument("--pdf", action=argparse.BooleanOptionalAction, default=None,
                    help="also write the one-page PDF (default: when the reports extra is installed)")  # fmt: skip
    ob.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    ob.add_argument("--allow-empty", action="store_true",
                    help="attest scopes that hold no objects instead of refusing")  # fmt: skip
    ob.add_argument("--audit-lake", metavar="URI",
                    help="where the purge_executed audit record goes (default: the --out folder)")  # fmt: skip
    ob.add_argument(
        "--state-dir", default=".mlmon-maintenance", help="audit chain head of this actor"
    )
    ob.add_argument("--actor", default="maintenance", help="audit actor (default maintenance)")
    ob.set_defaults(func=cmd_offboard)

    at = sub.add_parser("attest", help="deletion attestations").add_subparsers(
        dest="sub", required=True
    )
    av = at.add_parser("verify", help="check an attestation's signature, manifest and fields")
    av.add_argument("file", help="the attestation JSON")
    av.add_argument("--public-key", metavar="PEM",
                    help="the operator's Ed25519 public key, required (default: the file named "
                         f"by ${PUBLIC_KEY_ENV}; without either, exit 2)")  # fmt: skip
    av.add_argument("--allow-incomplete", action="store_true",
                    help="exit 0 for a genuine attestation of a purge that was NOT complete "
                         "(default: exit 1)")  # fmt: skip
    av.set_defaults(func=cmd_attest_verify)
