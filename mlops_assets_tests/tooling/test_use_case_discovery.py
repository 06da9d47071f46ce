"""The use cases are the folders of the package: found by a scan, in demo order, without
importing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_assets.use_cases import USE_CASES, discover_use_cases


def _package(root: Path, name: str, init: str = "", *, definitions: bool = True) -> None:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text(init)
    if definitions:
        # Never imported by the scan: importing it would fail.
        (folder / "definitions.py").write_text("raise RuntimeError('imported')\n")


def test_the_five_use_cases_run_in_their_demo_order() -> None:
    assert USE_CASES == ("fraud", "demand", "housing", "heart", "athletes")


def test_use_cases_are_packages_with_definitions_in_demo_order(tmp_path: Path) -> None:
    _package(tmp_path, "zeta", '"""Doc."""\n\nDEMO_ORDER = 5\n')
    _package(tmp_path, "beta", "DEMO_ORDER: int = 5\n")  # a tie: by name
    _package(tmp_path, "alpha")  # no DEMO_ORDER: 100, after the others
    _package(tmp_path, "first", "DEMO_ORDER = -1\n")
    for platform in ("core", "serving", "tooling"):
        _package(tmp_path, platform)
    _package(tmp_path, "no_definitions", definitions=False)
    _package(tmp_path, ".churn.partial")  # a scaffold being written
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "definitions.py").write_text("")  # not a package
    (tmp_path / "module.py").write_text("")
    assert discover_use_cases(tmp_path) == ("first", "beta", "zeta", "alpha")


def test_a_demo_order_that_is_not_an_int_is_refused(tmp_path: Path) -> None:
    _package(tmp_path, "churn", "DEMO_ORDER = '10'\n")
    with pytest.raises(TypeError, match=r"churn/__init__\.py: DEMO_ORDER must be a literal int"):
        discover_use_cases(tmp_path)
