"""Deferred imports: a module named is created at import and run at its first attribute read;
Great Expectations imported that way still validates, and scipy.stats still works after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.core.deferred_imports import deferred_imports


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``deferpkg`` whose module ``heavy`` records each time its code runs."""
    root = tmp_path / "deferpkg"
    root.mkdir()
    (root / "__init__.py").write_text("RUNS = []\n")
    (root / "heavy.py").write_text("import deferpkg\ndeferpkg.RUNS.append('heavy')\nVALUE = 42\n")
    (root / "user.py").write_text("from deferpkg import heavy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m == "deferpkg" or m.startswith("deferpkg.")]:
        del sys.modules[name]


def test_a_deferred_module_runs_at_its_first_attribute_read(package: Path) -> None:
    with deferred_imports("deferpkg.heavy"):
        import deferpkg.user  # binds `heavy` without reading it

    import deferpkg

    assert deferpkg.RUNS == []
    assert deferpkg.user.heavy.VALUE == 42
    assert deferpkg.RUNS == ["heavy"]
    assert deferpkg.user.heavy.VALUE == 42  # once
    assert deferpkg.RUNS == ["heavy"]


def test_modules_already_imported_and_imports_after_the_block_are_eager(package: Path) -> None:
    import deferpkg.heavy

    with deferred_imports("deferpkg.heavy"):
        import deferpkg.user
    assert deferpkg.RUNS == ["heavy"]

    del sys.modules["deferpkg.heavy"]
    with deferred_imports("other.module"):
        pass
    import deferpkg.heavy  # imported again, eagerly: the block has ended

    assert deferpkg.RUNS == ["heavy", "heavy"]
    assert not any(type(f).__name__ == "_DeferringFinder" for f in sys.meta_path)


_GX_PROBE = """
import json, sys
import pandas as pd
from mlops_assets.core.validation.expectations import ExpectationSuiteSpec, expect, run_suite

suite = ExpectationSuiteSpec("probe", [
    expect("column_values_to_not_be_null", column="a"),
    expect("column_values_to_be_between", column="a", min_value=0, max_value=10),
    expect("column_values_to_match_regex", column="b", regex=r"^[A-Z]{2}$"),
])
frame = pd.DataFrame({"a": [1.0, None, 11.0, 3.0], "b": ["FR", "de", "US", "GB"]})
result = run_suite(frame, suite)
stats_ran = "scipy.stats._stats_py" in sys.modules
from scipy.stats import norm
print(json.dumps({
    "stats_ran_with_gx": stats_ran,
    "altair_ran_with_gx": "altair.vegalite" in sys.modules,
    "counts": [r.unexpected_count for r in result.results],
    "success": [r.success for r in result.results],
    "norm": float(norm.cdf(0.0)),
}))
"""


def test_great_expectations_validates_without_running_scipy_stats() -> None:
    # A fresh interpreter: this one may have imported scipy.stats or GX already.
    out = subprocess.run(
        [sys.executable, "-c", _GX_PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe == {
        "stats_ran_with_gx": False,
        "altair_ran_with_gx": False,
        "counts": [1, 1, 1],
        "success": [False, False, False],
        "norm": 0.5,
    }
