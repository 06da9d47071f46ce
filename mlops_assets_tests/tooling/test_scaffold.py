"""`mlops new-use-case NAME`: the folder it writes is a working use case, found by the code
location, the demo and the API with nothing else edited, and ruff-clean.

The use case is written into a copy of the package, which a fresh process puts first on its path
(so the copy shadows the installed package), with its own local-profile home.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.tooling.scaffold import new_use_case
from mlops_assets.use_cases import USE_CASES
from mlops_assets_tests.fixtures.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "mlops_assets"
RUNNER = Path(__file__).with_name("scaffolded_run.py")
ASSETS = ["raw", "clean", "features", "training_set", "model", "champion"]
FILES = [
    "__init__.py",
    "assets.py",
    "checks.py",
    "definitions.py",
    "features.py",
    "schema.py",
    "serving.py",
    "sources.py",
    "training.py",
]


def _copy_package(tmp_path: Path) -> Path:
    """The package's sources and templates under ``tmp_path/mlops_assets`` (no caches)."""
    copy = tmp_path / "mlops_assets"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


@pytest.mark.timeout(300)
def test_a_new_use_case_runs_end_to_end_and_is_served(tmp_path: Path) -> None:
    copy = _copy_package(tmp_path / "src")
    folder = new_use_case("churn", dest=copy)
    assert folder == copy / "churn"
    assert sorted(p.name for p in folder.iterdir()) == FILES
    assert [p.name for p in copy.iterdir() if p.name.startswith(".")] == []  # no staging left

    # Bad names are refused before anything is written.
    listing = sorted(p.name for p in copy.iterdir())
    for bad in (
        "Churn",
        "churn",
        "heart",
        "core",
        "serving",
        "tooling",
        "definitions",
        "class",
        "9lives",
        "credit-risk",
        "a__b",
        "",
        "naïve",
    ):
        with pytest.raises(ValueError, match=re.escape(repr(bad)) if bad else "invalid"):
            new_use_case(bad, dest=copy)
    with pytest.raises(ValueError, match="no folder"):
        new_use_case("churn", dest=tmp_path / "nowhere")
    assert sorted(p.name for p in copy.iterdir()) == listing

    ruff = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--config",
            str(REPO_ROOT / "pyproject.toml"),
            str(folder),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr

    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "MLOPS_DATA_ROOT",
            "MLFLOW_TRACKING_URI",
            "AWS_ENDPOINT_URL",
            "MLOPS_FEAST_REGISTRY",
        )
    }
    env.update(
        PYTHONPATH=str(copy.parent),
        MLOPS_PROFILE="local",
        MLOPS_HOME=str(home),
        DAGSTER_HOME=str(home / ".dagster"),
        MLOPS_FEAST_REPO=str(REPO_ROOT / "feature_repo"),
        MLOPS_RUN_CONFIG=os.devnull,
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    (home / ".dagster").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "churn"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SEEN ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    seen = json.loads(lines[-1].removeprefix("SEEN "))

    assert seen["package"] == str(copy / "__init__.py")
    assert seen["heavy_at_import"] == []
    # Found by the scan, last (its DEMO_ORDER, 100, is the default; the five set 10 to 50), and
    # loaded by the location.
    assert seen["use_cases"] == [*USE_CASES, "churn"]
    assert seen["assets"] == sorted(f"churn/{a}" for a in ASSETS)
    assert seen["checks"] == ["churn/clean:both_labels_present", "churn/clean:record_id_is_unique"]
    assert seen["demo_select"] == [",".join(f"churn/{a}" for a in ASSETS)]
    assert seen["schedules"] == ["churn_weekly_retraining"]

    assert seen["materialized"], seen.get("failures")
    assert seen["materializations"] == sorted(f"churn/{a}" for a in ASSETS)
    assert seen["check_results"] == {"both_labels_present": True, "record_id_is_unique": True}
    assert seen["decision"] == "promoted"
    assert seen["champion"] == ["churn_model", "1"]

    api = seen["api"]
    status, body = api["good"]
    assert status == 200, body
    assert (body["use_case"], body["model_name"], body["model_version"]) == (
        "churn",
        "churn_model",
        "1",
    )
    assert body["probability"] == pytest.approx(api["expected_probability"], abs=1e-9)
    assert 0.0 < body["probability"] < 1.0
    assert body["prediction"] == int(body["probability"] >= 0.5)
    assert api["out_of_range"] == [422, ["body", "visits"]]
    assert api["unknown_field"] == [422, ["body", "colour"]]


def test_the_mlops_command_scaffolds_and_refuses_a_bad_name(tmp_path: Path) -> None:
    mlops = [sys.executable, "-m", "mlops_assets.tooling.cli", "new-use-case"]
    done = subprocess.run(
        [*mlops, "churn", "--dest", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"created {tmp_path / 'churn'}"
    assert sorted(p.name for p in (tmp_path / "churn").glob("*.py")) == FILES

    again = subprocess.run(
        [*mlops, "churn", "--dest", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2
    assert again.stderr.startswith("mlops new-use-case: ") and "churn" in again.stderr
    bad = subprocess.run(
        [*mlops, "Churn-2", "--dest", str(tmp_path)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Churn-2" in bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn"]
