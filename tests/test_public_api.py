"""The public surface is small, sorted and cheap to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlmon

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_and_resolves():
    assert mlmon.__all__ == sorted(mlmon.__all__)
    assert mlmon.__all__ == [
        "FeatureSpec",
        "Lake",
        "LakeWriter",
        "Reference",
        "Schema",
        "build_reference",
        "load_reference",
        "profile_frame",
        "profile_windows",
        "save_reference",
    ]
    for name in mlmon.__all__:
        assert getattr(mlmon, name) is not None


def test_import_is_lazy_and_side_effect_free():
    code = (
        "import os, sys; before = dict(os.environ); import mlmon; "
        "heavy = [m for m in ('polars', 'duckdb', 'numpy', 'pyarrow', 's3fs', 'httpx') if m in sys.modules]; "
        "assert not heavy, heavy; assert dict(os.environ) == before"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_import_layers_are_enforced_by_import_linter():
    """The layering of DESIGN.md (pyproject's [tool.importlinter] contracts) holds."""
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "KEPT" in result.stdout
