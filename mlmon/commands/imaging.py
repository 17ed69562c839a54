"""``mlmon imaging reference`` and ``mlmon imaging check``: imaging models (docs/imaging.md).

``imaging reference BASELINE_DIR -o ref.parquet`` builds the reference of an
imaging model from a folder of baseline DICOM files: the allow-listed
acquisition attributes and the image statistics the edge will profile, with
the same feature names. ``imaging check KEYWORD...`` says for each DICOM
keyword whether it may be allow-listed and, if not, which rule refuses it
(exit 2 if any is refused).
"""

from __future__ import annotations

import argparse
import json
import sys


def _reference(args: argparse.Namespace) -> int:
    from mlmon.edge.imaging.attributes import DEFAULT_ATTRIBUTES
    from mlmon.edge.imaging.reference import build_imaging_reference
    from mlmon.lake.references import save_reference

    attributes = tuple(args.attributes.split(",")) if args.attributes else DEFAULT_ATTRIBUTES
    ref, report = build_imaging_reference(
        args.folder,
        attributes=tuple(a.strip() for a in attributes if a.strip()),
        pixels=not args.metadata_only,
        model=args.model,
        k=args.k,
        bins=args.bins,
        options=tuple(args.profile_option or ()),
        series=args.series,
    )
    target = save_reference(ref, args.output)
    summary = {
        "reference": target,
        "reference_id": ref.reference_id,
        "files": report.files,
        "read_status": dict(sorted(report.status.items())),
        "features": list(ref.schema.names),
        "left_out_no_values": report.dropped,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    from mlmon.edge.imaging.attributes import refusal

    refused = 0
    for kw in args.keywords:
        why = refusal(kw, options=tuple(args.profile_option or ()))
        print(f"{kw}: {'allowed' if why is None else 'refused: ' + why}")
        refused += why is not None
    if refused:
        print(
            f"{refused} of {len(args.keywords)} refused; they can never be profiled",
            file=sys.stderr,
        )
        return 2
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("imaging", help="imaging models: DICOM references and the allow-list")
    cmds = group.add_subparsers(dest="imaging_command", required=True)
    ref = cmds.add_parser("reference", help="build an imaging reference from baseline DICOM files")
    ref.add_argument("folder", help="folder of baseline DICOM Part-10 files (read recursively)")
    ref.add_argument("-o", "--output", required=True, help="reference Parquet file to write")
    ref.add_argument("--model", help="model name recorded with the reference")
    ref.add_argument(
        "--attributes", help="comma-separated DICOM keywords (default: the allow-list)"
    )
    ref.add_argument("--metadata-only", action="store_true", help="no image statistics")
    ref.add_argument(
        "--series",
        action="store_true",
        help="also series-level features (series_KVP...): each series counted once",
    )
    ref.add_argument("--k", type=int, default=5, help="min count for a learned category")
    ref.add_argument("--bins", type=int, default=10, help="reference-quantile bins per number")
    opt_help = "a PS3.15 option whose K (keep) the allow-list may use (repeatable; docs/imaging.md)"
    ref.add_argument("--profile-option", action="append", help=opt_help)
    ref.set_defaults(func=_reference)
    chk = cmds.add_parser("check", help="may these DICOM keywords be allow-listed?")
    chk.add_argument("keywords", nargs="+", help="DICOM keywords, e.g. KVP PatientName")
    chk.add_argument("--profile-option", action="append", help=opt_help)
    chk.set_defaults(func=_check)


__all__ = ["add_commands"]
