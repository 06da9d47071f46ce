"""`mlops rebuild` of a demand forecaster: the smallest demand pipeline that registers a version
(one respondent, the baseline and gbm over one backtest window) materialized into the deployment's
instance, then the version rebuilt from what its MLflow run recorded: IDENTICAL, with the same
winner and figures. Then a day of its clean window is ingested again with other data, and the
rebuild is refused, naming what changed."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.rebuild import EXIT_IDENTICAL, EXIT_REFUSED, TAG_REBUILD_OF
from mlops_assets.core.storage import combined_version
from mlops_assets.definitions import resources_for
from mlops_assets.demand.schema import model_name
from mlops_assets.tooling.rebuild import rebuild_command
from mlops_assets_tests.demand.test_pipeline import _materialize
from mlops_assets_tests.fixtures import deployment
from mlops_assets_tests.fixtures.runs import failures

deployment_instance = deployment.deployment_instance

RESPONDENT = "CISO"
# The gradient-boosted model (it wins here, so its seed and refits are what is compared) against
# the baseline, over one 6-hour window: 17 days are the fewest gbm needs (a week of feature
# warm-up plus a day, a week of training rows, 7 conformal windows of the horizon, the window).
HORIZON, N_DAYS = 6, 17
FIRST, DAY = "2024-05-03", "2024-05-19"
MODELS = ["seasonal_naive", "gbm"]
BACKTEST = {"models": MODELS, "horizon": HORIZON, "n_windows": 1, "history_days": N_DAYS}
# A day inside the window, ingested again after the model was registered.
TAMPERED = "2024-05-10"


def test_a_registered_forecaster_rebuilds_identical(
    deployment_instance: dg.DagsterInstance, local_home: Path, capsys: pytest.CaptureFixture
) -> None:
    resources = resources_for(load_settings())
    ingest = _materialize(
        ["demand/raw", "demand/clean"],
        resources=resources,
        instance=deployment_instance,
        run_config={"ops": {"demand__raw": {"config": {"respondents": [RESPONDENT]}}}},
        tags={
            "dagster/asset_partition_range_start": FIRST,
            "dagster/asset_partition_range_end": DAY,
        },
    )
    assert ingest.success, failures(ingest)
    trained = _materialize(
        ["demand/cv_results", "demand/leaderboard", "demand/champion"],
        resources=resources,
        instance=deployment_instance,
        partition_key=DAY,
        run_config={
            "ops": {
                "demand__cv_results": {"config": BACKTEST},
                "demand__champion": {"config": {"example_days": N_DAYS}},
            }
        },
    )
    assert trained.success, failures(trained)
    name = model_name(RESPONDENT)
    tracking = resources["mlflow"]
    version = tracking.get_version_by_alias(name, "champion")
    assert version is not None and str(version.version) == "1"
    recorded = tracking.client.get_run(version.run_id).data
    board = pd.read_parquet(local_home / ".data" / "demand" / "leaderboard" / f"{DAY}.parquet")
    best = board.sort_values("rank").iloc[0]
    assert recorded.params["model"] == best["model"] == "gbm"

    capsys.readouterr()
    code = rebuild_command(load_settings(), name, "1", as_json=True)
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert code == EXIT_IDENTICAL, out
    assert report["identical"] and report["status"] == "identical"
    # The clean window the backtest ran on, read again: the version its run recorded.
    days = [f"2024-05-{d:02d}" for d in range(3, 3 + N_DAYS)]
    clean = local_home / ".data" / "demand" / "clean"
    window_version = combined_version(
        {d: hashlib.sha256((clean / f"{d}.parquet").read_bytes()).hexdigest() for d in days}
    )
    recorded_day = hashlib.sha256((clean / f"{TAMPERED}.parquet").read_bytes()).hexdigest()
    data = report["training_data"]
    assert data["recorded_data_version"] == data["rebuilt_data_version"] == window_version
    assert data["clean window"].startswith(f"demand/clean {FIRST} .. {DAY}: {N_DAYS} days")
    assert "(the recorded partition's)" in data["leaderboard"]
    # Every figure the run logged, rebuilt: the winner's row and each model's RMSE.
    metrics = {m["name"]: m for m in report["metrics"]}
    assert set(metrics) == {
        "rmse_mean",
        "rmse_std",
        "mae_mean",
        "mape_mean",
        "skill_vs_baseline",
        *(f"rmse_mean.{m}" for m in MODELS),
    }
    assert metrics["rmse_mean"]["rebuilt"] == pytest.approx(float(best["rmse_mean"]), abs=1e-9)
    assert metrics["rmse_mean"]["original"] == recorded.metrics["rmse_mean"]
    params = {p["name"]: p["rebuilt"] for p in report["params"]}
    assert params == {
        "respondent": RESPONDENT,
        "model": best["model"],
        "horizon": str(HORIZON),
        "n_windows": "1",
        "models_compared": ",".join(board.sort_values("rank")["model"]),
    }
    # The window's last 6 hours, forecast alike by the registered and the rebuilt model.
    predictions = report["predictions"]
    assert predictions["rows_original"] == predictions["rows_rebuilt"] == HORIZON
    assert predictions["differing_rows"] == 0
    rebuilt = tracking.client.get_run(report["rebuild_run_id"])
    assert rebuilt.data.tags[TAG_REBUILD_OF] == "1"
    assert [str(v.version) for v in tracking.client.search_model_versions(f"name='{name}'")] == [
        "1"
    ]

    # One day inside the window ingested again with other data: refused, naming what changed
    # with the version recorded and the version now: the day itself where the Dagster lineage of
    # the champion knows the days it read, else the window whose combined version the run
    # recorded. Nothing is trained or logged.
    runs_before = len(tracking.client.search_runs([rebuilt.info.experiment_id]))
    tampered = _materialize(
        ["demand/raw", "demand/clean"],
        resources=resources,
        instance=deployment_instance,
        partition_key=TAMPERED,
        run_config={"ops": {"demand__raw": {"config": {"respondents": [RESPONDENT], "seed": 7}}}},
    )
    assert tampered.success, failures(tampered)
    versions = {d: hashlib.sha256((clean / f"{d}.parquet").read_bytes()).hexdigest() for d in days}
    now = combined_version(versions)
    assert now != window_version
    capsys.readouterr()
    code = rebuild_command(load_settings(), name, "1", as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert code == EXIT_REFUSED, lines
    assert lines[0].startswith(f"REFUSED: {name} v1 cannot be rebuilt: ")
    assert lines[-1] == "Nothing was trained or logged."
    window_line = (
        f"  demand/clean partition {FIRST} .. {DAY}: recorded {window_version[:12]}, now {now[:12]}"
    )
    now_day = versions[TAMPERED]
    day_line = (
        f"  demand/clean partition {TAMPERED}: recorded {recorded_day[:12]}, now {now_day[:12]}"
    )
    assert window_line in lines or day_line in lines, lines
    assert len(tracking.client.search_runs([rebuilt.info.experiment_id])) == runs_before
