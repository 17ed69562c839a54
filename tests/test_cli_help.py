"""Every subcommand's ``--help`` has a description and an example, and the example parses."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mlmon.cli import HELP_TEXT, build_parser


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(build_parser()))


def _examples(help_text: str) -> list[str]:
    lines = help_text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() in ("example:", "examples:")]
    assert starts, "no 'example:' section"
    return [x.strip() for x in lines[starts[-1] + 1 :] if x.strip()]


def test_the_walk_finds_every_command():
    leaves = {" ".join(k) for k, p in COMMANDS.items() if p.get_default("func") is not None}
    assert len(leaves) >= 24 and {"drift", "edge once", "registry check", "imaging check"} <= leaves
    assert set(HELP_TEXT) <= leaves  # no stale entry in the table


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_has_a_description_and_an_example_that_parses(path):
    parser = COMMANDS[path]
    text = parser.format_help()
    assert parser.description and len(parser.description.strip()) > 15, text
    examples = _examples(text)
    assert examples, text
    for example in examples:
        argv = shlex.split(example)
        assert argv[0] == "mlmon" and argv[1 : 1 + len(path)] == list(path), example
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(f"example does not parse: {example}") from exc
        if parser.get_default("func") is not None:
            assert args.func is parser.get_default("func")


def test_the_real_command_prints_it():
    out = subprocess.run([sys.executable, "-m", "mlmon.cli", "percentiles", "--help"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "Percentiles of latency" in out and "\nexample:\n  mlmon percentiles --lake" in out
