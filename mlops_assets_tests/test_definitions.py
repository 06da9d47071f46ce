"""The code location: it loads, validates, stays light, and the CLI's main job says what it runs."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import yaml

from mlops_assets.core.profiles import load_settings
from mlops_assets.definitions import build_definitions, resources_for
from mlops_assets_tests.fixtures.cli import validate_code_location

REPO = Path(__file__).resolve().parents[1]
HEAVY = [
    "mlflow",
    "feast",
    "great_expectations",
    "sklearn",
    "xgboost",
    "statsforecast",
    "boto3",
    # Not heavy by the brief's list, but ~0.6 s together at every Dagster process start.
    "pandas",
    "polars",
    "pyarrow",
]


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )


def test_definitions_load_with_every_resource(local_home: Path) -> None:
    defs = build_definitions(load_settings())
    assert isinstance(defs, dg.Definitions)
    assert set(resources_for(load_settings())) == {
        "asset_store",
        "io_manager",
        "step_io_manager",
        "mlflow",
        "feature_store",
    }
    store = defs.resources["asset_store"]
    assert store.root == f"{local_home}/.data"
    # The IO manager and the assets' own reads and writes go through the same store.
    assert defs.resources["io_manager"].store == store
    # Op outputs that are not assets go to Dagster's own step storage, under the instance.
    assert defs.resources["step_io_manager"].base_dir is None


def test_loading_the_code_location_imports_no_heavy_library(local_home: Path) -> None:
    code = (
        "import sys, json; import mlops_assets.definitions; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    proc = _python(code, {**os.environ, "MLOPS_HOME": str(local_home)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_dagster_validates_the_code_location(local_home: Path) -> None:
    proc = validate_code_location(env={**os.environ, "DAGSTER_HOME": str(local_home)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_demo_materializes_every_use_case_from_the_cli(local_home: Path) -> None:
    """The README's main job: `mlops demo` runs `dagster asset materialize` for each use case."""
    from mlops_assets.use_cases import USE_CASES

    # The deployment's own file, `$MLOPS_HOME/mlops.yaml`, not the tests' empty one.
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_RUN_CONFIG"}
    env["MLOPS_HOME"] = str(local_home)
    proc = subprocess.run(
        [sys.executable, "-m", "mlops_assets.tooling.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "RUN_FAILURE" not in output
    for use_case in USE_CASES:
        assert f"[{use_case}]" in output
    # Dagster's notices about its own API are not the user's business.
    assert "BetaWarning" not in output and "PreviewWarning" not in output
    # The demo's settings are the deployment's: a day materialized afterwards from the CLI,
    # without any config, comes from the same population (4,000 payments a day).
    assert yaml.safe_load((local_home / "mlops.yaml").read_text())["ops"]["bronze"]
    later = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "mlops_assets.definitions",
            "--select",
            "fraud/transactions",
            "--partition",
            "2024-02-01",
        ],
        env={**env, "DAGSTER_HOME": str(local_home / ".dagster")},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert later.returncode == 0, later.stderr[-3000:]
    day = pl.read_parquet(local_home / ".data" / "fraud" / "transactions" / "2024-02-01.parquet")
    assert day.height == 4_000
    if "fraud" in USE_CASES:
        from mlops_assets.fraud.definitions import DEMO_LAST_DAY

        scores = local_home / ".data" / "fraud" / "scores" / f"{DEMO_LAST_DAY}.parquet"
        assert scores.exists()
        # The monitored week: its last day's monitors failed, one tick of the sensor asked for
        # one retraining naming the trigger, it ran, and the gate promoted the retrained model.
        [requested] = [
            line
            for line in output.splitlines()
            if line.startswith("fraud_retrain_on_monitors: job fraud_retraining")
            and "-> running" not in line
        ]
        assert "partition 2024-01-29" in requested and "-> success" in requested, requested
        assert "check=" in requested and "threshold=" in requested, requested
        from mlops_assets.core.profiles import load_settings
        from mlops_assets.core.tracking import MlflowTracking

        tracking = MlflowTracking.from_settings(load_settings())
        assert str(tracking.get_version_by_alias("fraud_classifier", "champion").version) == "2"
    if "demand" in USE_CASES:
        import pandas as pd

        from mlops_assets.demand.definitions import DEMO_LAST_DAY

        forecasts = pd.read_parquet(
            local_home / ".data" / "demand" / "forecasts" / f"{DEMO_LAST_DAY}.parquet"
        )
        assert forecasts.groupby("unique_id").size().to_dict() == {
            respondent: 24 for respondent in ("CISO", "ERCO", "MISO", "NYIS", "PJM")
        }
        assert forecasts["model_version"].notna().all()


def test_mlops_prepares_the_profile_instance(local_home: Path, monkeypatch) -> None:
    from mlops_assets.tooling.cli import dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = dagster_home(load_settings())
    assert home == local_home / ".dagster"
    assert (home / "dagster.yaml").read_bytes() == (REPO / "dagster.yaml").read_bytes()
    instance = dg.DagsterInstance.from_config(str(home))
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2


# Versioned datasets keep their own pointers: a version that fails its checks is written under its
# run's folder and never becomes `_CURRENT` (what consumers read).
VERSIONED = {dg.AssetKey(["fraud", "training_set"])}


def test_every_blocking_check_is_judged_before_its_data_is_published(local_home: Path) -> None:
    """A blocking check in a step of its own runs after the data was published: too late to keep
    rejected data from replacing good data. Every one is an audit of its asset's own step."""
    graph = build_definitions(load_settings()).resolve_asset_graph()
    blocking = [k for k in graph.asset_check_keys if graph.get_check_spec(k).blocking]
    assert len(blocking) == 19
    for check_key in blocking:
        assets_def = graph.assets_def_for_key(check_key.asset_key)
        # Emitted by the step that writes the asset, not by a separate check step.
        assert check_key in assets_def.check_keys, check_key
        if check_key.asset_key not in VERSIONED:
            # The step stages, audits and publishes (core/publishing.py) rather than handing
            # its frames to the IO manager, which would publish them before any check ran.
            source = inspect.getsource(assets_def.op.compute_fn.decorated_fn)
            assert "yield from publish(" in source, check_key
