"""``mlmon registry watch`` and ``mlmon registry test-candidate`` (docs/registry.md).

``test-candidate`` sends the golden set to the candidate version's endpoint and to the
champion's, on the same inputs, and compares them (:mod:`mlmon.registry.replicate`);
the result goes to the lake's ``version_checks`` table, the audit log, and (when it
fails or cannot decide) a firing ``alerts`` row, rule ``version_check``. Exit codes make
it a pipeline gate (:data:`EXIT_CODES`).

``watch`` polls the registry read-only (:mod:`mlmon.registry.watch`), writes every
change once to ``registry_events`` and, for models with a ``test:`` section, runs
``test-candidate`` on each new version and on each version a candidate alias moves to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlmon.commands._common import add_audit_args, audit_record
from mlmon.commands._common import storage_options as _storage_options
from mlmon.errors import ConfigError

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_LAKE, EXIT_UNREACHABLE = 0, 1, 2, 3, 7
EXIT_CODES = {
    EXIT_PASS: "pass: the candidate is at least as good as the champion within the tolerance",
    EXIT_FAIL: "fail: the candidate is worse (the reasons are printed and in version_checks)",
    EXIT_USAGE: "usage or configuration error (bad flag, file, alias or version; nothing ran)",
    EXIT_LAKE: "the lake could not be read or written",
    EXIT_UNREACHABLE: "an endpoint or the registry did not answer: nothing was decided",
}
DEFAULT_CHAMPION_ALIASES = "champion,production"
OUTPUT_FEATURES = ("prediction", "score", "output")
ALERT_STATE = "version-check-alerts.json"


def _epilog(example: str) -> str:
    codes = "\n".join(f"  {k}  {v}" for k, v in EXIT_CODES.items())
    return f"exit codes:\n{codes}\n\nexample:\n  {example}"


# -- test-candidate ------------------------------------------------------------------------
def _secret_or_none(args: argparse.Namespace, config: Any) -> bytes | None:
    """The HMAC key that keys the version guard; optional here (no sample id is written)."""
    if getattr(args, "hmac_key_file", None) or getattr(args, "hmac_key_env", None):
        from mlmon.commands.registry import _hmac_secret

        return _hmac_secret(args, config)
    if config is not None:
        return config.hmac_secret()
    value = os.environ.get("MLMON_HMAC_KEY")
    return value.encode() if value else None


def _resolve(args: argparse.Namespace) -> tuple[str, str, str | None, dict[str, str | None]]:
    """(candidate version, champion version, champion alias, endpoint version strings)."""
    from mlmon.commands.registry import _open_registry, _registry_url, _rule
    from mlmon.registry.base import UnknownAlias

    url = _registry_url(args, required=False)
    if url is None:
        if not (args.version and args.champion_version):
            raise ConfigError(
                "no registry to name the versions: pass --registry URL (or set "
                "MLFLOW_TRACKING_URI), or both --version and --champion-version"
            )
        return args.version, args.champion_version, None, {}
    rule = _rule(args)
    with _open_registry(args, url) as registry:
        if args.version:
            cand = registry.version(args.model, args.version)
        elif args.candidate_alias:
            cand = registry.alias(args.model, args.candidate_alias)
        else:
            raise ConfigError("name the candidate: pass --version N or --candidate-alias NAME")
        alias = getattr(args, "champion_via", None)  # the watch: the alias it read it from
        if args.champion_version:
            champ = registry.version(args.model, args.champion_version)
        else:
            champ, tried = None, []
            for a in [x.strip() for x in args.champion_alias.split(",") if x.strip()]:
                try:
                    champ, alias = registry.alias(args.model, a), a
                    break
                except UnknownAlias:
                    tried.append(a)
            if champ is None:
                raise ConfigError(
                    f"model {args.model!r} has none of the champion aliases {', '.join(tried)}; "
                    "pass --champion-alias or --champion-version"
                )
    versions = {v.version: rule.endpoint_version(v) for v in (cand, champ)}
    return cand.version, champ.version, alias, versions


def _answers(endpoint: Any, golden: list[Any], client: Any) -> list[Any]:
    from mlmon.edge.golden import compare
    from mlmon.edge.protocols import probe
    from mlmon.registry.replicate import Answer

    out = []
    for sample in golden:
        r = probe(client, endpoint, sample.inputs)
        passed = r.ok and compare(sample, r.predictions)
        out.append(Answer(r.ok, passed, r.latency_ms, r.error_kind, r.predictions))
    return out


def _run_both(cand_ep: Any, champ_ep: Any, golden: list[Any]) -> tuple[list[Any], list[Any]]:
    """Each case to the champion, then the candidate (same inputs, same moment)."""
    from mlmon.edge.protocols import client_for

    cand, champ = [], []
    with client_for(cand_ep) as cc, client_for(champ_ep) as pc:
        for sample in golden:
            champ += _answers(champ_ep, [sample], pc)
            cand += _answers(cand_ep, [sample], cc)
    return cand, champ


def _reference(lake: Any, lake_model: str, feature: str | None) -> tuple[Any, str | None]:
    if lake is None:
        return None, None
    if lake_model not in lake.models("references"):
        return None, None
    ref = lake.latest_reference(lake_model)
    if ref is None:
        return None, None
    if feature is not None:
        if feature not in ref.profiles:
            raise ConfigError(
                f"--output-feature {feature!r} is not a feature of the reference "
                f"{ref.reference_id[:12]} of {lake_model!r} (features: "
                f"{', '.join(sorted(ref.profiles))})"
            )
        return ref, feature
    auto = next((f for f in OUTPUT_FEATURES if f in ref.profiles), None)
    return (ref, auto) if auto else (None, None)


def _tolerance(args: argparse.Namespace) -> Any:
    from mlmon.registry.replicate import ReplicationTolerance

    return ReplicationTolerance(
        max_disagreement=args.max_disagreement,
        score_abs_tol=args.score_abs_tol,
        score_rel_tol=args.score_rel_tol,
        max_pass_rate_drop=args.max_pass_rate_drop,
        latency_ratio=args.latency_ratio,
        latency_floor_ms=args.latency_floor_ms,
        output_drift_method=args.output_drift_method,
        max_output_drift=args.max_output_drift,
    )


def _alert_state(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    path = Path(args.state_dir) / ALERT_STATE
    try:
        return path, json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc}); move it away") from exc


def _write_results(
    args: argparse.Namespace, *, lake_model: str, secret: bytes | None, row: dict[str, Any],
    result: Any,
) -> None:  # fmt: skip
    import polars as pl

    from mlmon.lake.freetext import VersionGuard
    from mlmon.lake.writer import LakeWriter
    from mlmon.registry.watch import guard_frame

    uri = args.lake or os.environ.get("MLMON_LAKE")
    if not uri:
        return
    guard = VersionGuard(secret)
    writer = LakeWriter(uri, collector_id=args.collector_id, day_rollups=False, versions=guard,
                        storage_options=_storage_options(args) or None)  # fmt: skip
    checked_at = row["checked_at"]
    df = guard_frame(pl.DataFrame([row]), guard, "the registry's metadata")
    writer.write_table("version_checks", lake_model, df, checked_at, checked_at,
                       part=row["check_id"][:12])  # fmt: skip
    # the alert: firing when a candidate fails (or cannot be decided), resolved when the same
    # candidate later passes; remembered on the state volume so it is never repeated
    path, state = _alert_state(args)
    key = f"{lake_model}/{row['candidate_version']}"
    firing = state.get(key) == "firing"
    state_now = None
    if result.outcome != "pass" and not firing:
        state_now = "firing"
    elif result.outcome == "pass" and firing:
        state_now = "resolved"
    if state_now is None:
        return
    reasons = "; ".join(result.reasons) or "the candidate passed its replication test"
    alert = {
        "model_version": row["model_version"],
        "window_start": checked_at,
        "window_end": checked_at,
        "collector_id": args.collector_id,
        "raised_at": checked_at,
        "rule": "version_check",
        "severity": "critical" if result.outcome == "fail" else "warning",
        "state": state_now,
        "feature": None,
        "value": row["candidate_pass_rate"],
        "threshold": row["champion_pass_rate"],
        "message": f"candidate version {row['candidate_version']} vs champion "
        f"{row['champion_version']}: {result.outcome}: {reasons}",
    }
    adf = guard.frame(pl.DataFrame([alert]), "the registry's metadata")
    writer.write_table("alerts", lake_model, adf, checked_at, checked_at,
                       part=f"vc{row['check_id'][:10]}")  # fmt: skip
    state[key] = state_now
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=1, sort_keys=True))


def run_test_candidate(args: argparse.Namespace) -> int:
    """The body of ``registry test-candidate`` (also called by the watch with its own args)."""
    from mlmon.commands.registry import _endpoint, _print_table
    from mlmon.edge.golden import load_golden_set
    from mlmon.registry.base import RegistryUnreachable
    from mlmon.registry.replicate import compare_versions

    lake_model = args.lake_model or args.model
    config = model_cfg = None
    if args.config:
        from mlmon.edge.config import load_config

        config = load_config(args.config)
        model_cfg = next((m for m in config.models if m.name == lake_model), None)
        if model_cfg is None:
            names = ", ".join(m.name for m in config.models)
            raise ConfigError(f"{args.config}: no model {lake_model!r} (models: {names})")
    golden_file = args.golden or (model_cfg.golden.file if model_cfg and model_cfg.golden else None)
    if golden_file is None:
        raise ConfigError(
            "no golden set: pass --golden FILE (JSONL or Parquet) or --config edge.yaml with a "
            f"golden: section for model {lake_model!r}"
        )
    tolerance = _tolerance(args)
    golden = load_golden_set(golden_file)
    secret = _secret_or_none(args, config)
    allow_http = args.allow_http or bool(config and config.allow_http)
    try:
        cand_v, champ_v, champ_alias, endpoint_versions = _resolve(args)
    except RegistryUnreachable as exc:
        print(f"mlmon: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    cand_ep = _endpoint(args, model_cfg, allow_http)
    champ_args = argparse.Namespace(**{**vars(args), "endpoint": args.champion_endpoint})
    champ_ep = _endpoint(champ_args, model_cfg, allow_http)
    lake = None
    uri = args.lake or os.environ.get("MLMON_LAKE")
    if uri:
        from mlmon.analysis.lake import Lake

        lake = Lake(uri, _storage_options(args) or None)
    reference, feature = _reference(lake, lake_model, args.output_feature)
    checked_at = datetime.now(UTC)
    cand, champ = _run_both(cand_ep, champ_ep, golden)
    result = compare_versions(cand, champ, tolerance, reference=reference, output_feature=feature)
    s = result.summary
    check_id = hashlib.sha256(
        json.dumps([lake_model, args.model, cand_v, champ_v, checked_at.isoformat()]).encode()
    ).hexdigest()[:32]
    row = {
        "model_version": endpoint_versions.get(cand_v, cand_v),
        "window_start": checked_at,
        "window_end": checked_at,
        "collector_id": args.collector_id,
        "checked_at": checked_at,
        "check_id": check_id,
        "registered_model": args.model,
        "candidate_version": cand_v,
        "champion_version": champ_v,
        "champion_alias": champ_alias,
        "trigger": args.trigger,
        "outcome": result.outcome,
        **{k: s[k] for k in ("cases", "agreed", "disagreed", "candidate_errors",
                             "champion_errors", "candidate_pass_rate", "champion_pass_rate",
                             "max_score_delta", "candidate_latency_p50_ms",
                             "champion_latency_p50_ms", "latency_ratio", "reference_id",
                             "output_feature", "output_drift_method", "output_drift",
                             "output_drift_threshold")},
        "reasons": "; ".join(result.reasons) or None,
    }  # fmt: skip
    _write_results(args, lake_model=lake_model, secret=secret, row=row, result=result)
    audit_record(
        args, uri, "version_checked", f"{args.model} {cand_v} vs {champ_v}", result.outcome,
        model=args.model, candidate=cand_v, champion=champ_v, trigger=args.trigger,
        cases=s["cases"], disagreed=s["disagreed"], candidate_errors=s["candidate_errors"],
    )  # fmt: skip
    fmt = lambda v, spec=".1f", unit="": "n/a" if v is None else f"{v:{spec}}{unit}"  # noqa: E731
    print(f"model {args.model}: candidate version {cand_v} at {args.endpoint}")
    named = f" (alias {champ_alias})" if champ_alias else ""
    print(f"  champion version {champ_v}{named} at {args.champion_endpoint}")
    _print_table(result.cases)
    print(
        f"cases {s['cases']}: agree {s['agreed']}, differ {s['disagreed']}; unanswered "
        f"candidate {s['candidate_errors']}, champion {s['champion_errors']}; golden pass rate "
        f"{s['candidate_pass_rate']:.1%} vs {s['champion_pass_rate']:.1%}; median latency "
        f"{fmt(s['candidate_latency_p50_ms'], unit=' ms')} vs "
        f"{fmt(s['champion_latency_p50_ms'], unit=' ms')} (ratio {fmt(s['latency_ratio'], '.2f')})"
    )
    if s["output_drift"] is not None:
        print(
            f"output distribution ({s['output_feature']}, reference "
            f"{str(s['reference_id'])[:12]}): {s['output_drift_method']} "
            f"{s['output_drift']:.4f} (threshold {s['output_drift_threshold']:g})"
        )
    if result.outcome == "pass":
        print("PASS: the candidate is at least as good as the champion")
        return EXIT_PASS
    for reason in result.reasons:
        print(f"{result.outcome.upper()}: {reason}")
    return EXIT_FAIL if result.outcome == "fail" else EXIT_UNREACHABLE


def cmd_test_candidate(args: argparse.Namespace) -> int:
    return run_test_candidate(args)


# -- watch ---------------------------------------------------------------------------------
def _watch_config(path: str) -> Any:
    from mlmon.commands._watch_config import load_watch_config

    return load_watch_config(path)


def _test_args(args: argparse.Namespace, cfg: Any, m: Any, version: str, trigger: str,
               champion: str, aliases: Any) -> argparse.Namespace | None:  # fmt: skip
    t = m.test
    if t.candidate_endpoints and version in t.candidate_endpoints:
        endpoint = t.candidate_endpoints[version]
    elif t.candidate_endpoint:
        endpoint = t.candidate_endpoint.replace("{version}", version)
    else:
        return None
    tol = t.tolerance
    via = next((a.strip() for a in t.champion_alias.split(",") if a.strip() in aliases), None)
    return argparse.Namespace(
        champion_via=via,
        model=m.name, lake_model=m.lake_model or m.name, version=version, candidate_alias=None,
        champion_version=champion, champion_alias=t.champion_alias, endpoint=endpoint,
        champion_endpoint=t.champion_endpoint, golden=str(t.golden) if t.golden else None,
        config=str(t.edge_config) if t.edge_config else None, protocol=t.protocol,
        model_name=t.model_name, endpoint_token_env=t.endpoint_token_env,
        endpoint_ca_bundle=str(t.endpoint_ca_bundle) if t.endpoint_ca_bundle else None,
        allow_http=cfg.allow_http, retries=t.retries, hmac_key_env=None, hmac_key_file=None,
        registry=cfg.registry.url, registry_token_env=cfg.registry.token_env,
        registry_token_file=str(cfg.registry.token_file) if cfg.registry.token_file else None,
        registry_ca_bundle=str(cfg.registry.ca_bundle) if cfg.registry.ca_bundle else None,
        registry_allow_http=cfg.registry.allow_http, match=m.match, tag=m.tag,
        lake=cfg.lake.uri, storage_option=[f"{k}={v}" for k, v in cfg.lake.storage_options.items()],
        output_feature=t.output_feature, trigger=trigger, collector_id=cfg.collector_id,
        max_disagreement=tol.max_disagreement, score_abs_tol=tol.score_abs_tol,
        score_rel_tol=tol.score_rel_tol, max_pass_rate_drop=tol.max_pass_rate_drop,
        latency_ratio=tol.latency_ratio, latency_floor_ms=tol.latency_floor_ms,
        output_drift_method=tol.output_drift_method, max_output_drift=tol.max_output_drift,
        audit_lake=None, state_dir=str(cfg.state_dir), actor=args.actor, no_audit=args.no_audit,
    )  # fmt: skip


def watch_once(args: argparse.Namespace, cfg: Any) -> int:
    """One poll of every configured model; the exit code of the pass."""
    import polars as pl

    from mlmon.commands.registry import _open_registry
    from mlmon.lake.freetext import VersionGuard
    from mlmon.lake.writer import LakeWriter
    from mlmon.registry.base import AttributionRule, RegistryError, RegistryUnreachable
    from mlmon.registry.watch import (
        WatchState,
        diff,
        endpoint_versions,
        events_frame,
        snapshot,
        to_test,
    )

    reg_args = argparse.Namespace(
        registry_token_env=cfg.registry.token_env,
        registry_token_file=str(cfg.registry.token_file) if cfg.registry.token_file else None,
        registry_ca_bundle=str(cfg.registry.ca_bundle) if cfg.registry.ca_bundle else None,
        registry_allow_http=cfg.registry.allow_http,
    )
    state = WatchState(Path(cfg.state_dir) / "registry-watch.json", cfg.registry.url)
    secret = cfg.hmac_secret()
    guard = VersionGuard(secret)
    writer = LakeWriter(cfg.lake.uri, collector_id=cfg.collector_id, day_rollups=False,
                        versions=guard, storage_options=cfg.lake.storage_options or None)  # fmt: skip
    code = total = 0
    observed_at = datetime.now(UTC)
    with _open_registry(reg_args, cfg.registry.url) as registry:
        for m in cfg.models:
            lake_model = m.lake_model or m.name
            try:
                snap, versions = snapshot(registry, m.name)
            except RegistryUnreachable as exc:
                print(f"mlmon: registry watch: {exc}", file=sys.stderr)
                return EXIT_UNREACHABLE
            except RegistryError as exc:
                print(f"mlmon: registry watch: model {m.name!r}: {exc}", file=sys.stderr)
                code = code or EXIT_USAGE
                continue
            before = state.get(m.name)
            events = diff(m.name, before, snap)
            rule = AttributionRule(m.match, m.tag)
            if events:
                df = events_frame(
                    events, registry_url=cfg.registry.url, observed_at=observed_at,
                    collector_id=cfg.collector_id, endpoint_versions=endpoint_versions(versions, rule),
                    guard=guard,
                )  # fmt: skip
                part = hashlib.sha256(
                    "".join(df.get_column("event_id").to_list()).encode()
                ).hexdigest()[:12]
                writer.write_table("registry_events", lake_model, df, observed_at, observed_at,
                                   part=part)  # fmt: skip
            counts = pl.DataFrame({"event": [e.event for e in events]}, schema={"event": pl.String})
            summary = ", ".join(f"{r['event']} {r['len']}" for r in
                                counts.group_by("event").len().sort("event").to_dicts())  # fmt: skip
            print(f"model {m.name}: {len(events)} change(s){': ' + summary if summary else ''}")
            if before is not None and m.test is not None:
                champion = next(
                    (snap.aliases[a.strip()] for a in m.test.champion_alias.split(",")
                     if a.strip() in snap.aliases), None,
                )  # fmt: skip
                for version, trigger in to_test(
                    events, champion=champion, candidate_aliases=m.candidate_aliases
                ):
                    if champion is None:
                        print(f"model {m.name}: version {version} not tested: no champion alias "
                              f"({m.test.champion_alias}) is set", file=sys.stderr)  # fmt: skip
                        break
                    targs = _test_args(args, cfg, m, version, trigger, champion, snap.aliases)
                    if targs is None:
                        print(f"model {m.name}: version {version} not tested: no endpoint for "
                              "it in test.candidate_endpoint(s)", file=sys.stderr)  # fmt: skip
                        continue
                    print(f"model {m.name}: testing version {version} ({trigger}) against "
                          f"champion {champion}")  # fmt: skip
                    try:
                        run_test_candidate(targs)
                    except ConfigError as exc:
                        print(f"mlmon: registry watch: version {version}: {exc}", file=sys.stderr)
                        code = code or EXIT_USAGE
            state.set(m.name, snap)
            total += len(events)
    state.save()
    audit_args = argparse.Namespace(state_dir=str(cfg.state_dir), actor=args.actor,
                                    no_audit=args.no_audit, audit_lake=None)  # fmt: skip
    audit_record(audit_args, cfg.lake.uri, "registry_polled", cfg.registry.url,
                 "ok" if code == 0 else "error", models=len(cfg.models), events=total)  # fmt: skip
    return code


def cmd_watch(args: argparse.Namespace) -> int:
    cfg = _watch_config(args.config)
    if not args.loop:
        return watch_once(args, cfg)
    from mlmon.alerting.deliver import pause

    interval = cfg.interval.total_seconds() if args.interval is None else args.interval
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop.is_set():
            started = time.monotonic()
            code = watch_once(args, cfg)
            if code not in (
                0,
                EXIT_UNREACHABLE,
            ):  # a registry outage is retried; a config error is not
                return code
            pause(stop, interval - (time.monotonic() - started))  # not Event.wait: faketime
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


# -- parsers ---------------------------------------------------------------------------------
def add_registry_workflow(rg: argparse._SubParsersAction) -> None:
    """Add ``watch`` and ``test-candidate`` to the ``registry`` command group."""
    from mlmon.commands.registry import _add_registry_args

    tc = rg.add_parser(
        "test-candidate",
        help="golden set against the candidate's and the champion's endpoints; exit 1 when the "
        "candidate is worse (a pipeline gate)",
        description="Send the golden set to a candidate version's endpoint and to the current "
        "champion's, on the same inputs, and compare outputs (classes, scores within a "
        "tolerance), golden pass rates, latency and, where the lake holds a reference with the "
        "output feature, the two output distributions. Results go to the lake's version_checks "
        "table, the audit log and, when the candidate fails, a firing alerts row.",
        epilog=_epilog(
            "mlmon registry test-candidate --model risk --version 4 --endpoint "
            "https://risk-v4.models.svc:8443 --champion-endpoint https://risk.models.svc:8443 "
            "--config /etc/mlmon/edge.yaml --registry https://mlflow.example.org --lake ./lake"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tc.add_argument("--model", required=True, help="registered model name")
    tc.add_argument("--version", help="candidate registered version")
    tc.add_argument("--candidate-alias", help="or: the alias naming the candidate")
    tc.add_argument("--endpoint", required=True, help="URL of the endpoint serving the candidate")
    tc.add_argument("--champion-endpoint", required=True, help="URL of the champion's endpoint")
    tc.add_argument("--champion-version", help="compare with this version, not the alias's")
    tc.add_argument(
        "--champion-alias",
        default=DEFAULT_CHAMPION_ALIASES,
        help=f"aliases naming the champion, tried in order (default {DEFAULT_CHAMPION_ALIASES})",
    )
    tc.add_argument("--golden", help="golden set (JSONL or Parquet); default: --config's")
    tc.add_argument("--config", help="edge.yaml: endpoint protocol/TLS, golden set and HMAC key")
    tc.add_argument("--protocol", choices=["kserve_v1", "oip_v2", "mlflow", "generic_json"])
    tc.add_argument("--model-name", help="the model's name on the servers (KServe, OIP)")
    tc.add_argument("--endpoint-token-env", metavar="VAR", help="env variable with a bearer token")
    tc.add_argument("--endpoint-ca-bundle", metavar="PEM")
    tc.add_argument("--allow-http", action="store_true", help="accept plain http (loopback tests)")
    tc.add_argument("--retries", type=int, default=2, help="further attempts per request")
    tc.add_argument("--hmac-key-env", metavar="VAR", help="keys the version guard (optional)")
    tc.add_argument("--hmac-key-file", metavar="FILE")
    tc.add_argument("--output-feature", help="reference feature of the model's output "
                    f"(default: the first of {', '.join(OUTPUT_FEATURES)} in the reference)")  # fmt: skip
    tc.add_argument("--output-drift-method", default="jensen_shannon")
    tc.add_argument("--max-output-drift", type=float, help="default: the method's threshold")
    tc.add_argument("--max-disagreement", type=float, default=0.0, help="fraction of cases")
    tc.add_argument("--score-abs-tol", type=float, default=1e-6)
    tc.add_argument("--score-rel-tol", type=float, default=1e-6)
    tc.add_argument("--max-pass-rate-drop", type=float, default=0.0, help="fraction, e.g. 0.02")
    tc.add_argument("--latency-ratio", type=float, default=1.5)
    tc.add_argument("--latency-floor-ms", type=float, default=50.0)
    tc.add_argument("--collector-id", default="registry-test", help="writer id in the lake")
    tc.add_argument("--trigger", default="manual", help=argparse.SUPPRESS)
    _add_registry_args(tc, required=False)
    add_audit_args(tc, "registry-test")
    tc.set_defaults(func=cmd_test_candidate)

    wa = rg.add_parser(
        "watch",
        help="poll the registry (read-only) for new versions and alias or stage moves",
        description="Poll the model registry read-only: every new version, alias set, moved or "
        "removed, and stage or status change is written once to the lake's registry_events "
        "table (a state file remembers what was seen). Models with a test: section get a "
        "replication test (as test-candidate) of each new version and of each version a "
        "candidate alias moves to. One pass by default (a CronJob); --loop keeps polling.",
        epilog="exit codes:\n  0  the pass ran (failed candidates are in version_checks)\n"
        "  2  configuration error\n  3  the lake could not be written\n"
        "  7  the registry did not answer (--loop retries at the next interval)\n\n"
        "example:\n  mlmon registry watch --config /etc/mlmon/registry-watch.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wa.add_argument("--config", required=True, help="the watch's YAML (docs/registry.md)")
    wa.add_argument("--loop", action="store_true", help="keep polling every interval")
    wa.add_argument("--interval", type=float, help="seconds between polls (default: config's)")
    wa.add_argument("--actor", default="registry-watch", help="audit actor of the tests")
    wa.add_argument("--no-audit", action="store_true", help="write no audit record")
    wa.set_defaults(func=cmd_watch)
