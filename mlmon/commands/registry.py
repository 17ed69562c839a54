"""``mlmon versions`` and ``mlmon registry check``: the model registry, read-only.

``versions`` prints a model's registered versions (aliases, run id, status,
created) and, with ``--lake``, when the lake first and last saw each one and
how much. ``registry check`` runs the golden set against an endpoint serving a
candidate version and compares it, case by case, with the golden checks the
lake recorded for the version in production (the registry's production alias,
or ``--baseline-version``): exit 0 when the candidate is at least as good
within the tolerance, 1 when it regresses (a CI gate).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mlmon.commands._common import add_audit_args, audit_record
from mlmon.commands._common import storage_options as _storage_options
from mlmon.errors import ConfigError

EXIT_REGRESSED = 1
DEFAULT_PRODUCTION_ALIASES = "champion,production"


# -- shared helpers ------------------------------------------------------------------------


def _open_lake(args: argparse.Namespace, required: bool) -> Any:
    uri = args.lake or os.environ.get("MLMON_LAKE")
    if not uri:
        if required:
            raise ConfigError(
                "no lake given; pass --lake URI (file:///path or s3://bucket/prefix) or set "
                "MLMON_LAKE"
            )
        return None
    from mlmon.analysis.lake import Lake

    return Lake(uri, _storage_options(args) or None)


def _registry_url(args: argparse.Namespace, required: bool) -> str | None:
    url = args.registry or os.environ.get("MLFLOW_TRACKING_URI")
    if not url and required:
        raise ConfigError(
            "no registry given; pass --registry URL (the MLflow tracking server, e.g. "
            "https://mlflow.internal) or set MLFLOW_TRACKING_URI"
        )
    return url


def _open_registry(args: argparse.Namespace, url: str) -> Any:
    from mlmon.registry.mlflow_rest import MlflowRegistry, RegistryAuth

    auth = RegistryAuth.from_env(
        token_env=args.registry_token_env,
        token_file=args.registry_token_file,
        ca_bundle=args.registry_ca_bundle,
    )
    return MlflowRegistry(url, auth=auth, allow_http=args.registry_allow_http)


def _rule(args: argparse.Namespace) -> Any:
    from mlmon.registry.base import AttributionRule

    return AttributionRule(args.match, args.tag)


def _print_table(df: Any) -> None:
    import polars as pl

    with pl.Config(
        tbl_rows=max(df.height, 1),
        tbl_cols=-1,
        tbl_width_chars=200,
        fmt_str_lengths=40,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        sys.stdout.write(f"{df}\n")


# -- versions ---------------------------------------------------------------------------------
def cmd_versions(args: argparse.Namespace) -> int:
    from mlmon.registry.frames import versions_table

    url = _registry_url(args, required=True)
    assert url is not None
    lake = _open_lake(args, required=False)
    with _open_registry(args, url) as registry:
        table = versions_table(
            registry, args.model, lake=lake, lake_model=args.lake_model, rule=_rule(args)
        )
    if args.format == "json":
        import json

        sys.stdout.write(json.dumps(table.to_dicts(), default=str, indent=1) + "\n")
    elif args.format == "csv":
        sys.stdout.write(table.write_csv())
    else:
        _print_table(table)
    return 0


# -- registry check ----------------------------------------------------------------------------
def _hmac_secret(args: argparse.Namespace, config: Any) -> bytes:
    if args.hmac_key_file:
        try:
            data = Path(args.hmac_key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"--hmac-key-file {args.hmac_key_file}: cannot read it: {exc.strerror}"
            ) from exc
        if not data:
            raise ConfigError(f"--hmac-key-file {args.hmac_key_file} is empty")
        return data
    if config is not None and args.hmac_key_env is None:
        return config.hmac_secret()
    var = args.hmac_key_env or "MLMON_HMAC_KEY"
    value = os.environ.get(var)
    if not value:
        raise ConfigError(
            f"the HMAC key is not set: export {var} (the same key the edge collector uses, so "
            "golden cases match the lake's sample_id_hmac) or pass --hmac-key-file"
        )
    return value.encode()


def _endpoint(args: argparse.Namespace, model_cfg: Any, allow_http: bool) -> Any:
    from mlmon.edge.http import HttpSettings
    from mlmon.edge.protocols import Endpoint, endpoint_from_config

    if model_cfg is not None and model_cfg.endpoint is not None:
        # the candidate's deployment: the config's request shape and TLS, but not the version
        # the production endpoint declares or the alias it follows (the candidate is --version)
        cfg = model_cfg.endpoint.model_copy(
            update={"url": args.endpoint, "model_version": None, "version_alias": None}
        )
        if args.protocol:
            cfg = cfg.model_copy(update={"protocol": args.protocol})
        if args.model_name:
            cfg = cfg.model_copy(update={"model_name": args.model_name})
        cfg = cfg.model_copy(update={"retries": args.retries})
        return endpoint_from_config(cfg, allow_http=allow_http)
    token = None
    if args.endpoint_token_env:
        token = os.environ.get(args.endpoint_token_env)
        if not token:
            raise ConfigError(
                f"--endpoint-token-env {args.endpoint_token_env}: the variable is not set"
            )
    settings = HttpSettings(
        retries=args.retries,
        ca_bundle=Path(args.endpoint_ca_bundle) if args.endpoint_ca_bundle else None,
        bearer_token=token,
        allow_http=allow_http,
    )
    return Endpoint(args.endpoint, args.protocol or "oip_v2", args.model_name or "model", settings)


def _output_delta(sample: Any, predictions: tuple[Any, ...]) -> float | None:
    """Largest absolute difference from the expected output (numeric kinds), else None."""
    import numpy as np

    if sample.kind == "label" or not predictions:
        return None
    got = predictions[0] if isinstance(sample.inputs, dict) else list(predictions)
    try:
        g = np.asarray(got, dtype=float).squeeze()
        e = np.asarray(sample.expected, dtype=float).squeeze()
        if g.shape != e.shape:
            return None
        return float(np.max(np.abs(g - e)))
    except (TypeError, ValueError):
        return None


def _run_candidate(endpoint: Any, golden: list[Any], secret: bytes) -> tuple[Any, list[str]]:
    import polars as pl

    from mlmon.edge.golden import compare
    from mlmon.edge.protocols import client_for, probe
    from mlmon.governance.deid import hmac_id

    rows, reported = [], []
    with client_for(endpoint) as client:
        for sample in golden:
            r = probe(client, endpoint, sample.inputs)
            passed = r.ok and compare(sample, r.predictions)
            if r.model_version:
                reported.append(r.model_version)
            rows.append(
                {
                    "sample_id_hmac": hmac_id(secret, sample.id),
                    "passed": passed,
                    "error_kind": None if passed else (r.error_kind or "mismatch"),
                    "latency_ms": r.latency_ms,
                    "output_delta": _output_delta(sample, r.predictions) if r.ok else None,
                }
            )
    schema = {"sample_id_hmac": pl.String, "passed": pl.Boolean, "error_kind": pl.String,
              "latency_ms": pl.Float64, "output_delta": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema), sorted(set(reported))


def _baseline(args: argparse.Namespace, registry: Any, rule: Any) -> tuple[str, str]:
    """(label to print, the lake's model_version string) of the production version."""
    from mlmon.registry.base import UnknownAlias

    if registry is None:
        if not args.baseline_version:
            raise ConfigError(
                "no production version to compare with: pass --registry URL (its production "
                "alias names it) or --baseline-version (the version string in the lake)"
            )
        return f"version string {args.baseline_version!r}", args.baseline_version
    if args.baseline_version:
        v = registry.version(args.model, args.baseline_version)
        label = f"registered version {v.version}"
    else:
        aliases = [a.strip() for a in args.production_alias.split(",") if a.strip()]
        v, tried = None, []
        for alias in aliases:
            try:
                v = registry.alias(args.model, alias)
                break
            except UnknownAlias as exc:
                tried.append(str(exc))
        if v is None:
            raise ConfigError(
                f"model {args.model!r} has none of the production aliases "
                f"{', '.join(aliases)}; pass --production-alias or --baseline-version "
                f"({tried[-1] if tried else ''})"
            )
        label = f"registered version {v.version} (alias {alias})"
    key = rule.endpoint_version(v)
    if key is None:
        raise ConfigError(
            f"{label} of {args.model!r} has no endpoint version string under "
            f"--match {rule.match} (no {rule.tag!r} tag); tag it or choose another --match"
        )
    return f"{label}, endpoint version {key!r}", key


def cmd_registry_check(args: argparse.Namespace) -> int:
    import polars as pl

    from mlmon.edge.golden import load_golden_set
    from mlmon.registry.base import attribute
    from mlmon.registry.check import CheckTolerance, compare_golden

    config = model_cfg = None
    if args.config:
        from mlmon.edge.config import load_config

        config = load_config(args.config)
        model_cfg = next((m for m in config.models if m.name == args.model), None)
        if model_cfg is None:
            names = ", ".join(m.name for m in config.models)
            raise ConfigError(f"{args.config}: no model {args.model!r} (models: {names})")
    golden_file = args.golden or (model_cfg.golden.file if model_cfg and model_cfg.golden else None)
    if golden_file is None:
        raise ConfigError(
            "no golden set: pass --golden FILE (JSONL or Parquet) or --config edge.yaml with a "
            f"golden: section for model {args.model!r}"
        )
    tolerance = CheckTolerance(
        max_regressed_cases=args.max_regressed_cases,
        max_pass_rate_drop=args.max_pass_rate_drop,
        latency_ratio=args.latency_ratio,
        latency_floor_ms=args.latency_floor_ms,
    )
    rule = _rule(args)
    golden = load_golden_set(golden_file)
    secret = _hmac_secret(args, config)
    allow_http = args.allow_http or bool(config and config.allow_http)
    endpoint = _endpoint(args, model_cfg, allow_http)
    lake = _open_lake(args, required=True)
    url = _registry_url(args, required=False)
    registry = _open_registry(args, url) if url else None
    try:
        candidate_label = f"version string {args.version!r}"
        versions = []
        if registry is not None:
            cand = registry.version(args.model, args.version)
            versions = registry.versions(args.model)
            candidate_label = f"registered version {cand.version}"
        base_label, base_key = _baseline(args, registry, rule)
    finally:
        if registry is not None:
            registry.close()
    baseline = lake.read("golden", model=args.lake_model or args.model,
                         start=args.start, end=args.end)  # fmt: skip
    baseline = baseline.filter(pl.col("model_version") == base_key)
    if baseline.height == 0:
        raise ConfigError(
            f"the lake {lake.uri} has no golden checks of model {args.lake_model or args.model!r} "
            f"with model_version {base_key!r} ({base_label}); run the edge's golden checks "
            "against production first, or pass --baseline-version / --start / --end"
        )
    frame, reported = _run_candidate(endpoint, golden, secret)
    for rep in reported:
        if registry is None:
            if rep != args.version:
                raise ConfigError(
                    f"endpoint {args.endpoint} reports version {rep!r}, not the candidate "
                    f"{args.version!r}; point --endpoint at the candidate's deployment"
                )
            continue
        hit = attribute(versions, rep, rule)
        if hit is not None and hit.version != args.version:
            raise ConfigError(
                f"endpoint {args.endpoint} reports version {rep!r}, which is registered version "
                f"{hit.version} of {args.model!r}, not the candidate {args.version}; point "
                "--endpoint at the candidate's deployment"
            )
    result = compare_golden(frame, baseline, tolerance)
    s = result.summary
    audit_record(
        args, args.lake, "registry_checked", args.endpoint, "pass" if result.passed else "fail",
        model=args.model, candidate=args.version, baseline=base_key, cases=s["cases"],
        regressed=s["regressed"],
    )  # fmt: skip
    print(f"model {args.model}: candidate {candidate_label} at {args.endpoint}")
    print(f"  reports {', '.join(map(repr, reported)) or 'no version'}")
    print(f"  baseline: {base_label}, {baseline.height} golden checks in {lake.uri}")
    _print_table(result.cases)
    fmt = lambda v, unit="": "n/a" if v is None else f"{v:.1f}{unit}"  # noqa: E731
    print(
        f"cases {s['cases']} (compared {s['compared']}, no baseline {s['no_baseline']}); "
        f"regressed {s['regressed']}, improved {s['improved']}; pass rate "
        f"{s['candidate_pass_rate']:.1%} vs {s['baseline_pass_rate']:.1%}; median latency "
        f"{fmt(s['candidate_latency_p50_ms'], ' ms')} vs {fmt(s['baseline_latency_p50_ms'], ' ms')}"
    )
    if result.passed:
        print("PASS: the candidate is at least as good as production")
        return 0
    for reason in result.failures:
        print(f"FAIL: {reason}")
    return EXIT_REGRESSED


# -- parsers -----------------------------------------------------------------------------------
def _add_registry_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "--registry",
        required=False,
        help="MLflow tracking server URL (env MLFLOW_TRACKING_URI)"
        + ("" if required else "; names the production version by its alias"),
    )
    p.add_argument("--registry-token-env", metavar="VAR", help="env variable with a bearer token")
    p.add_argument("--registry-token-file", metavar="FILE", help="file with a bearer token")
    p.add_argument(
        "--registry-ca-bundle", metavar="PEM", help="CA bundle (MLFLOW_TRACKING_SERVER_CERT_PATH)"
    )
    p.add_argument(
        "--registry-allow-http",
        action="store_true",
        help="accept a plain http:// registry URL that is not loopback",
    )
    p.add_argument(
        "--match",
        default="auto",
        choices=["auto", "tag", "version", "run_id"],
        help="how the endpoint's version string maps to a registered version (default auto: the "
        "--tag tag when set, else the version number)",
    )
    p.add_argument("--tag", default="mlmon.endpoint_version", help="the version tag for --match")
    p.add_argument("--lake", help="lake URI: file:///path, a path, or s3://bucket/prefix")
    p.add_argument("--lake-model", help="the lake's model= name, when it differs from --model")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``versions`` and ``registry check`` to the top-level sub-parsers."""
    ve = sub.add_parser(
        "versions", help="registered versions of a model, with what the lake saw of each"
    )
    ve.add_argument("--model", required=True, help="registered model name")
    _add_registry_args(ve, required=True)
    ve.add_argument("--format", default="table", choices=["table", "csv", "json"])
    ve.set_defaults(func=cmd_versions)

    rg = sub.add_parser("registry", help="the model registry (read-only)").add_subparsers(
        dest="sub", required=True
    )
    ck = rg.add_parser(
        "check",
        help="golden set against a candidate version's endpoint vs production's lake results; "
        "exit 1 when it regresses",
    )
    ck.add_argument("--model", required=True, help="registered model name")
    ck.add_argument("--version", required=True, help="candidate registered version")
    ck.add_argument("--endpoint", required=True, help="URL of the endpoint serving the candidate")
    ck.add_argument("--golden", help="golden set (JSONL or Parquet); default: --config's")
    ck.add_argument("--config", help="edge.yaml: endpoint protocol/TLS, golden set and HMAC key")
    ck.add_argument("--protocol", choices=["kserve_v1", "oip_v2", "mlflow", "generic_json"])
    ck.add_argument("--model-name", help="the model's name on the server (KServe, OIP)")
    ck.add_argument("--endpoint-token-env", metavar="VAR", help="env variable with a bearer token")
    ck.add_argument("--endpoint-ca-bundle", metavar="PEM")
    ck.add_argument("--allow-http", action="store_true", help="accept plain http (loopback tests)")
    ck.add_argument(
        "--retries", type=int, default=2, help="further attempts per golden request (default 2)"
    )
    ck.add_argument("--hmac-key-env", metavar="VAR", help="default MLMON_HMAC_KEY")
    ck.add_argument("--hmac-key-file", metavar="FILE")
    ck.add_argument("--baseline-version", help="compare with this version, not the alias's")
    ck.add_argument(
        "--production-alias",
        default=DEFAULT_PRODUCTION_ALIASES,
        help=f"aliases naming production, tried in order (default {DEFAULT_PRODUCTION_ALIASES})",
    )
    ck.add_argument("--start", help="only baseline checks from this UTC time")
    ck.add_argument("--end", help="only baseline checks before this UTC time")
    ck.add_argument("--max-regressed-cases", type=int, default=0)
    ck.add_argument("--max-pass-rate-drop", type=float, default=0.0, help="fraction, e.g. 0.02")
    ck.add_argument("--latency-ratio", type=float, default=1.5)
    ck.add_argument("--latency-floor-ms", type=float, default=50.0)
    _add_registry_args(ck, required=False)
    add_audit_args(ck, "registry-check")
    ck.set_defaults(func=cmd_registry_check)

    from mlmon.commands._registry_workflow import add_registry_workflow

    add_registry_workflow(rg)
