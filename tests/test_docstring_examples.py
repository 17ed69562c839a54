"""Every docstring example in mlmon runs and prints what it shows (STYLE.md: examples that run)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import mlmon


def test_every_docstring_example_in_mlmon_runs() -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failed: list[str] = []
    examples = 0
    for info in pkgutil.walk_packages(mlmon.__path__, "mlmon."):
        module = importlib.import_module(info.name)
        for test in finder.find(module):
            if not test.examples:
                continue
            result = runner.run(test, out=lambda s: None)
            examples += result.attempted
            if result.failed:
                failed.append(test.name)
    assert examples > 30
    assert not failed, (
        f"docstring examples that fail (run pytest --doctest-modules on them): {failed}"
    )
