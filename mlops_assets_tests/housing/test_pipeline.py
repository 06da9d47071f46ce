"""The housing pipeline on small data: raw → splits → encoders → features → model →
holdout_report → champion, on the local profile; the champion in a fresh process; bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.definitions import resources_for
from mlops_assets.housing import schema
from mlops_assets.housing.assets import MODEL_NAME, chronology_problems
from mlops_assets.housing.definitions import ASSETS
from mlops_assets_tests.fixtures.runs import failures, metadata

ALL = [
    "housing/raw",
    "housing/splits",
    "housing/encoders",
    "housing/features",
    "housing/model",
    "housing/holdout_report",
    "housing/champion",
]
SMALL = {
    "housing__raw": {"config": {"n_sales": 4000}},
    "housing__model": {"config": {"n_trials": 3, "max_estimators": 200}},
}


def _materialize(keys=ALL, ops=SMALL, **kwargs) -> dg.ExecuteInProcessResult:
    selection = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    return dg.materialize(
        ASSETS,
        selection=selection,
        raise_on_error=False,
        run_config={"ops": {op: c for op, c in ops.items() if op.replace("__", "/") in keys}},
        **kwargs,
    )


@pytest.fixture
def resources(local_home: Path) -> dict:
    return resources_for(load_settings())


def test_whole_group_tunes_bundles_and_promotes(resources: dict, local_home: Path) -> None:
    run = _materialize(resources=resources)
    assert run.success, failures(run)
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks == {
        "sales_meet_expectations": True,
        "sale_id_is_unique": True,
        "splits_are_chronological": True,
    }
    data = local_home / ".data" / "housing"
    splits = pd.read_parquet(data / "splits.parquet")
    dates = pd.to_datetime(splits[schema.DATE])
    assert dates[splits["split"] == "train"].max() < pd.Timestamp("2020-01-01")
    assert dates[splits["split"] == "holdout"].min() >= pd.Timestamp("2022-01-01")

    encoders = pd.read_parquet(data / "encoders.parquet")
    train = splits[splits["split"] == "train"]
    city = encoders[(encoders["feature"] == "city") & encoders["category"].notna()]
    assert city["count"].sum() == train["city"].notna().sum()  # fitted on train only

    tracking = resources["mlflow"]
    champion = tracking.get_version_by_alias(MODEL_NAME, "champion")
    candidate = tracking.get_version_by_alias(MODEL_NAME, "candidate")
    assert champion is not None and champion.version == candidate.version
    study = tracking.client.get_run(candidate.run_id)
    assert study.data.tags["dagster.run_id"] == run.run_id
    trials = tracking.client.search_runs(
        [study.info.experiment_id], f"tags.`mlflow.parentRunId` = '{study.info.run_id}'"
    )
    assert len(trials) == 3
    assert all("eval_rmse" in t.data.metrics for t in trials)
    assert study.data.metrics["eval_rmse"] == min(t.data.metrics["eval_rmse"] for t in trials)

    report = pd.read_parquet(data / "holdout_report.parquet")
    holdout = splits[splits["split"] == "holdout"]
    assert len(report) == len(holdout)
    metrics = metadata(run, "housing/holdout_report")
    assert metrics["candidate/r2"] > 0.5
    assert metrics["candidate/mape"] < 30

    # The champion loads by alias in a fresh process and prices the holdout exactly as the batch
    # path did.
    records = holdout[list(schema.FEATURE_INPUTS)].head(20).copy()
    records[schema.DATE] = records[schema.DATE].astype(str)
    code = (
        "import json, sys, mlflow; "
        f"m = mlflow.pyfunc.load_model('models:/{MODEL_NAME}@champion'); "
        "rows = json.loads(sys.stdin.read()); "
        "print(json.dumps(m.predict(rows)['predicted_price'].tolist()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(records.to_dict("records")),
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh == pytest.approx(report["predicted_candidate"].head(20).tolist(), rel=1e-9)

    # Same data and seed: the same study and holdout numbers; an equal candidate is not promoted.
    again = _materialize(
        ["housing/model", "housing/holdout_report", "housing/champion"], resources=resources
    )
    assert again.success, failures(again)
    second = metadata(again, "housing/holdout_report")
    assert second["candidate/rmse"] == pytest.approx(metrics["candidate/rmse"], rel=1e-12)
    decision = metadata(again, "housing/champion")
    assert decision["promotion/decision"] == "kept"
    assert tracking.get_version_by_alias(MODEL_NAME, "champion").version == champion.version


def test_chronology_problems_name_the_overlap() -> None:
    frame = pd.DataFrame(
        {
            schema.DATE: pd.to_datetime(["2019-05-01", "2020-02-01", "2019-12-31", "2023-01-01"]),
            "split": ["train", "eval", "holdout", "holdout"],
        }
    )
    problems = chronology_problems(frame)
    assert any("eval ends 2020-02-01, not before holdout starts 2019-12-31" in p for p in problems)
    assert not any(p.startswith("train") for p in problems)
    assert chronology_problems(frame.assign(split=["train", "eval", "eval", "holdout"])) == []
    assert chronology_problems(frame.assign(split="train")) == ["eval is empty", "holdout is empty"]


def test_a_bad_csv_fails_before_anything_is_built(resources: dict, local_home: Path) -> None:
    from mlops_assets.housing import sources

    frame = sources.generate_sales(sources.GeneratorConfig(n_sales=300)).to_pandas()
    frame.loc[3, "beds"] = "three"
    path = local_home / "sales.csv"
    frame.to_csv(path, index=False)
    run = _materialize(
        ["housing/raw", "housing/splits"],
        ops={"housing__raw": {"config": {"source": "csv", "path": str(path)}}},
        resources=resources,
    )
    assert not run.success
    message = failures(run)
    assert "beds" in message and "three" in message
    assert not (local_home / ".data" / "housing" / "raw.parquet").exists()


def test_negative_prices_fail_the_blocking_suite(resources: dict, local_home: Path) -> None:
    from mlops_assets.housing import sources

    frame = sources.generate_sales(sources.GeneratorConfig(n_sales=300)).to_pandas()
    frame.loc[[5, 9], "price"] = -1.0
    path = local_home / "sales.csv"
    frame.to_csv(path, index=False)
    run = _materialize(
        ["housing/raw", "housing/splits"],
        ops={"housing__raw": {"config": {"source": "csv", "path": str(path)}}},
        resources=resources,
    )
    [check] = [
        e for e in run.get_asset_check_evaluations() if e.check_name == "sales_meet_expectations"
    ]
    assert check.passed is False
    assert "price" in str(check.metadata)
    assert not (local_home / ".data" / "housing" / "splits.parquet").exists()
