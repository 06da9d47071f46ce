"""The athletes pipeline on the local profile: cleaning, both feature versions in Feast, the
random-forest grid as mapped steps with emissions in MLflow, and the champion pick."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.athletes.assets import MODEL_NAME
from mlops_assets.athletes.definitions import ASSETS, athletes_checks
from mlops_assets.core.profiles import load_settings
from mlops_assets.definitions import resources_for
from mlops_assets_tests.fixtures.runs import check_verdicts, failures, metadata

GRID = {"n_estimators": [10, 30], "max_depths": [4]}


def _materialize(keys: list[str], **kwargs) -> dg.ExecuteInProcessResult:
    selection = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    return dg.materialize(
        [*ASSETS, *athletes_checks], selection=selection, raise_on_error=False, **kwargs
    )


@pytest.fixture
def resources(local_home: Path) -> dict:
    return resources_for(load_settings())


def test_grid_over_both_versions_picks_a_champion(resources: dict, local_home: Path) -> None:
    cleaned = _materialize(
        ["athletes/raw", "athletes/clean"],
        resources=resources,
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

    final = _materialize(["athletes/feature_store", "athletes/champion"], resources=resources)
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
