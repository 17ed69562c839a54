"""The pipeline examples of docs/registry.md parse, and their mlmon command lines are accepted.

The Argo Workflows and GitHub Actions examples are loaded as YAML, the Airflow DAG is
parsed as Python; the ``mlmon registry test-candidate`` command each one runs (with
its template placeholders filled) goes through the real argument parser. The watch's
example YAML is validated by the watch's own config loader.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import yaml

from mlmon.cli import build_parser
from mlmon.commands._registry_workflow import EXIT_CODES, cmd_test_candidate
from mlmon.commands._watch_config import load_watch_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "registry.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def _fill(text: str) -> str:
    return re.sub(r"\$?\{\{[^}]*\}\}", "4", text)


def _parses(argv: list[str]) -> None:
    assert argv[:3] == ["mlmon", "registry", "test-candidate"], argv
    args = build_parser().parse_args(argv[1:])
    assert args.func is cmd_test_candidate
    assert args.version == "4" and args.endpoint.startswith("https://risk-v4.")


def test_the_argo_and_github_actions_examples_run_the_gate() -> None:
    docs = [yaml.safe_load(b) for b in _blocks("yaml")]
    argo = next(d for d in docs if d.get("kind") == "Workflow")
    template = next(t for t in argo["spec"]["templates"] if t["name"] == "test-candidate")
    container = template["container"]
    _parses([_fill(x) for x in container["command"] + container["args"]])
    assert "lastRetry.exitCode) == 7" in template["retryStrategy"]["expression"]
    steps = next(t for t in argo["spec"]["templates"] if t["name"] == "promote")["steps"]
    assert steps[1][0]["when"] == "{{steps.replication-test.exitCode}} == 0"

    gha = next(d for d in docs if "jobs" in d)
    run = next(s["run"] for s in gha["jobs"]["replication-test"]["steps"]
               if "test-candidate" in s.get("run", ""))  # fmt: skip
    _parses(shlex.split(_fill(run)))
    assert gha["jobs"]["promote"]["needs"] == "replication-test"


def test_the_airflow_example_runs_the_gate() -> None:
    (source,) = [b for b in _blocks("python") if "airflow" in b]
    tree = ast.parse(source)
    commands = [
        ast.literal_eval(k.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for k in node.keywords
        if k.arg == "bash_command"
    ]
    assert len(commands) == 1
    _parses(shlex.split(_fill(commands[0])))


def test_the_watch_example_config_is_valid(tmp_path: Path) -> None:
    (text,) = [b for b in _blocks("yaml") if "state_dir:" in b]
    path = tmp_path / "watch.yaml"
    path.write_text(text)
    cfg = load_watch_config(path)
    assert cfg.models[0].test is not None
    assert cfg.models[0].test.candidate_endpoint == "https://risk-v{version}.models.svc:8443"
    assert cfg.interval.total_seconds() == 300


def test_the_cronjob_example_runs_one_watch_pass() -> None:
    from mlmon.commands._registry_workflow import cmd_watch

    docs = [yaml.safe_load(b) for b in _blocks("yaml")]
    cron = next(d for d in docs if d.get("kind") == "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["command"][1:])
    assert args.func is cmd_watch and not args.loop


def test_every_exit_code_is_documented() -> None:
    text = DOC.read_text()
    for code in EXIT_CODES:
        assert f"\n| {code} | " in text
