"""The athletes pipeline on the local profile: cleaning, both feature versions in Feast, the
random-forest grid as mapped steps with emissions in MLflow, and the champion pick."""

import io
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.athletes.assets import MODEL_NAME
from mlops_assets.athletes.definitions import ASSETS
from mlops_assets.core.profiles import load_settings
from mlops_assets.core.rebuild import EXIT_IDENTICAL, TAG_REBUILD_OF
from mlops_assets.definitions import resources_for
from mlops_assets.tooling.rebuild import rebuild_command
from mlops_assets_tests.fixtures import deployment
from mlops_assets_tests.fixtures.runs import check_verdicts, failures, metadata

GRID = {"n_estimators": [10, 30], "max_depths": [4]}

# The instance `mlops rebuild` opens (DAGSTER_HOME of the test's local profile).
deployment_instance = deployment.deployment_instance


def _materialize(keys: list[str], **kwargs) -> dg.ExecuteInProcessResult:
    selection = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    return dg.materialize(ASSETS, selection=selection, raise_on_error=False, **kwargs)


@pytest.fixture
def resources(local_home: Path) -> dict:
    return resources_for(load_settings())


def test_grid_over_both_versions_picks_a_champion(
    resources: dict,
    local_home: Path,
    deployment_instance: dg.DagsterInstance,
    capsys: pytest.CaptureFixture,
) -> None:
    cleaned = _materialize(
        ["athletes/raw", "athletes/clean"],
        resources=resources,
        instance=deployment_instance,
        run_config={"ops": {"athletes__raw": {"config": {"n_athletes": 1500}}}},
    )
    assert cleaned.success, failures(cleaned)
    assert check_verdicts(cleaned) == {
        "clean_athletes_meet_expectations": True,
        "athlete_id_is_unique": True,
    }
    report = metadata(cleaned, "athletes/clean")
    assert report["rows_out"] < report["rows_in"] == 1500

    tables = {}
    for version in ("v1", "v2"):
        run = _materialize(
            ["athletes/features", "athletes/models"],
            resources=resources,
            partition_key=version,
            run_config={"ops": {"athletes__models": {"ops": {"grid_points": {"config": GRID}}}}},
            instance=deployment_instance,
        )
        assert run.success, failures(run)
        tables[version] = pd.read_parquet(
            local_home / ".data" / "athletes" / "models" / f"{version}.parquet"
        )
        assert sorted(tables[version]["grid_point"]) == ["t10_d4", "t30_d4"]

    tracking = resources["mlflow"]
    for version, table in tables.items():
        for run_id in table["mlflow_run_id"]:
            mlflow_run = tracking.client.get_run(run_id)
            assert mlflow_run.data.tags["feature_version"] == version
            assert mlflow_run.data.metrics["emissions_kg"] > 0
            assert mlflow_run.data.metrics["energy_kwh"] > 0
            assert "val_rmse" in mlflow_run.data.metrics

    final = _materialize(
        ["athletes/feature_store", "athletes/champion"],
        resources=resources,
        instance=deployment_instance,
    )
    assert final.success, failures(final)
    every = pd.concat(tables.values(), ignore_index=True)
    best = every.sort_values(["val_rmse", "feature_version", "grid_point"]).iloc[0]
    champion = tracking.get_version_by_alias(MODEL_NAME, "champion")
    assert champion is not None
    assert (champion.tags["feature_version"], champion.tags["grid_point"]) == (
        best["feature_version"],
        best["grid_point"],
    )
    # Body measures alone predict the total lift worse than with workouts and background.
    assert tables["v2"]["val_rmse"].min() < tables["v1"]["val_rmse"].min()
    assert metadata(final, "athletes/champion")["grid_points"] == 4

    athlete = int(
        pd.read_parquet(local_home / ".data" / "athletes" / "features" / "v2.parquet")[
            "athlete_id"
        ].iloc[0]
    )
    online = resources["feature_store"].get_online_features(
        ["athlete_features_v2:weight"], [{"athlete_id": athlete}]
    )
    assert online["weight"][0] is not None

    # `mlops rebuild` of the champion: its grid point retrained on the recorded feature version
    # gives the registered forest, metric for metric and prediction for prediction.
    capsys.readouterr()
    code = rebuild_command(load_settings(), MODEL_NAME, str(champion.version), as_json=True)
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert code == EXIT_IDENTICAL, out
    assert {"val_rmse"} <= {m["name"] for m in report["metrics"]}
    assert all(m["equal"] for m in report["metrics"])
    assert report["predictions"]["rows_original"] > 0
    assert report["predictions"]["differing_rows"] == 0
    rebuilt = tracking.client.get_run(report["rebuild_run_id"])
    assert rebuilt.data.tags[TAG_REBUILD_OF] == str(champion.version)


@pytest.mark.stack
def test_grid_and_feature_store_on_the_stack_profile(stack_profile) -> None:
    """Features as S3 objects read by Feast's SQL registry and Redis online store, grid runs on
    the MLflow server: the same pipeline on the stack profile."""
    stack = stack_profile("athletes")
    resources = resources_for(stack.settings)
    grid = {"n_estimators": [10], "max_depths": [4]}
    first = _materialize(
        ["athletes/raw", "athletes/clean"],
        resources=resources,
        run_config={"ops": {"athletes__raw": {"config": {"n_athletes": 800}}}},
    )
    assert first.success, failures(first)
    for version in ("v1", "v2"):
        run = _materialize(
            ["athletes/features", "athletes/models"],
            resources=resources,
            partition_key=version,
            run_config={"ops": {"athletes__models": {"ops": {"grid_points": {"config": grid}}}}},
        )
        assert run.success, failures(run)
    final = _materialize(["athletes/feature_store", "athletes/champion"], resources=resources)
    assert final.success, failures(final)

    assert {"athletes/features/v1.parquet", "athletes/features/v2.parquet"} <= stack.keys()
    champion = resources["mlflow"].get_version_by_alias(MODEL_NAME, "champion")
    assert champion is not None
    run = resources["mlflow"].client.get_run(champion.run_id)
    assert run.data.metrics["emissions_kg"] > 0
    features = pd.read_parquet(io.BytesIO(stack.read("athletes/features/v1.parquet")))
    online = resources["feature_store"].get_online_features(
        ["athlete_features_v1:height"], [{"athlete_id": int(features["athlete_id"].iloc[0])}]
    )
    assert online["height"][0] == pytest.approx(float(features["height"].iloc[0]))


def _step_failure(run: dg.ExecuteInProcessResult) -> dg.DagsterEvent:
    [failure] = [e for e in run.all_events if e.is_step_failure]
    assert failure.step_failure_data.error.cls_name == "Failure", failures(run)
    return failure


def test_a_header_only_file_is_refused_before_anything_is_built(
    resources: dict, local_home: Path
) -> None:
    from mlops_assets.athletes import schema

    empty = local_home / "athletes.csv"
    empty.write_text(",".join(schema.RAW_COLUMNS) + "\n")
    run = _materialize(
        ["athletes/raw", "athletes/clean"],
        resources=resources,
        run_config={"ops": {"athletes__raw": {"config": {"source": "csv", "path": str(empty)}}}},
    )
    assert not run.success
    message = _step_failure(run).step_failure_data.error.message
    assert str(empty) in message and "no rows" in message, message
    assert not (local_home / ".data" / "athletes").exists()


def test_cleaning_that_removes_every_row_is_refused_and_nothing_is_published(
    resources: dict, local_home: Path
) -> None:
    from mlops_assets.athletes.sources import GeneratorConfig, generate_athletes

    frame = generate_athletes(GeneratorConfig(n_athletes=200, seed=3)).to_pandas()
    frame["weight"] = frame["weight"] * 1000  # pounds written as thousandths
    path = local_home / "athletes.csv"
    frame.to_csv(path, index=False)
    run = _materialize(
        ["athletes/raw", "athletes/clean", "athletes/features"],
        resources=resources,
        partition_key="v1",
        run_config={"ops": {"athletes__raw": {"config": {"source": "csv", "path": str(path)}}}},
    )
    assert not run.success
    failure = _step_failure(run)
    assert failure.step_key == "athletes__clean"
    message = failure.step_failure_data.error.message
    assert "removed all 200 rows" in message, message
    assert "weight (weight is below 1500 lb): 200 removed" in message, message
    data = local_home / ".data" / "athletes"
    assert (data / "raw.parquet").exists()
    assert not (data / "clean.parquet").exists()
    assert not (data / "features").exists()
    assert not (local_home / ".data" / "_staging" / "athletes").exists()
