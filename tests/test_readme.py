"""The README's Quick tour runs as written: every command, in order, then its Python block.

The commands run with bash in an empty temporary folder holding only what the README
assumes of a checkout: ``data/`` (a link to the repository's fixtures) and ``.venv/`` (a
link to the environment running this test). The Python block then runs against the lake
those commands built; its one placeholder, the lake URI ``file:///data/lake``, is replaced
by that lake's URI, and nothing else is changed.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "file:///data/lake"


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", section, re.M | re.S)


def _commands(block: str) -> list[str]:
    """Shell commands of a block, a backslash-continued line joined into one command."""
    return [c.strip() for c in re.sub(r"\\\n\s*", " ", block).splitlines() if c.strip()]


def quick_tour() -> tuple[list[str], str]:
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Quick tour")
    [sh] = _blocks(section, "sh")
    [py] = _blocks(section, "python")
    return _commands(sh), py


def test_the_quick_tour_is_parsed():
    commands, py = quick_tour()
    assert len(commands) >= 6 and all(c.startswith(".venv/bin/mlmon ") for c in commands)
    assert [c.split()[1] for c in commands][:2] == ["reference", "profile"]
    assert any(c.split()[1] == "report" for c in commands)
    assert PLACEHOLDER in py and "import mlmon" in py


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess[str]]]:
    """The Quick tour's commands, run in order in an empty folder."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "mlmon").exists():
        pytest.fail(f"run the tests with the project's environment: {venv}/bin/mlmon is missing")
    folder = tmp_path_factory.mktemp("readme")
    (folder / ".venv").symlink_to(venv, target_is_directory=True)
    (folder / "data").symlink_to(ROOT / "data", target_is_directory=True)
    commands, _ = quick_tour()
    done = []
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip
        assert proc.returncode == 0, (
            f"README Quick tour: `{command}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
        done.append(proc)
    return folder, done


def test_every_quick_tour_command_runs_as_written(tour):
    folder, done = tour
    out = {p.args[2].split()[1]: p.stdout for p in done}
    assert "profiled 18000 records" in out["profile"]
    assert "age" in out["drift"] and "chi_square" in out["drift"]  # --only-drifted shows drift
    assert "latency_ms" in out["percentiles"] and "2026-10-06" in out["percentiles"]
    # the report is a real one, not an empty "no data" page
    [pdf] = (folder / "reports").glob("*.pdf")
    assert (folder / "reports" / pdf.with_suffix(".html").name).is_file()
    first = " ".join(PdfReader(pdf).pages[0].extract_text().split())
    assert "risk-model RED 18,000" in first and "no data" not in first.lower()


def test_the_python_block_runs_against_the_tour_lake(tour):
    folder, _ = tour
    _, py = quick_tour()
    code = py.replace(PLACEHOLDER, (folder / "lake").resolve().as_uri())
    assert code != py
    tree = ast.parse(code)
    scope: dict[str, object] = {}
    results = []
    for stmt in tree.body:  # each expression's value is kept, so an empty result fails too
        if isinstance(stmt, ast.Expr):
            results.append(eval(compile(ast.Expression(stmt.value), "README.md", "eval"), scope))
        else:
            exec(compile(ast.Module([stmt], []), "README.md", "exec"), scope)
    assert results, "the README's Python block has no expression to check"
    for value in results:
        frame = value.collect() if isinstance(value, pl.LazyFrame) else value
        assert isinstance(frame, pl.DataFrame) and frame.height > 0, frame
