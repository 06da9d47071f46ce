"""The housing pipeline on small data: raw → splits → encoders → features → model →
holdout_report → champion, on the local profile; the champion in a fresh process and rebuilt
IDENTICAL; bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.rebuild import EXIT_IDENTICAL, TAG_REBUILD_OF
from mlops_assets.definitions import resources_for
from mlops_assets.housing import schema
from mlops_assets.housing.assets import MODEL_NAME
from mlops_assets.housing.definitions import ASSETS
from mlops_assets.housing.periods import chronology_problems
from mlops_assets.tooling.rebuild import rebuild_command
from mlops_assets_tests.fixtures import deployment
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
# The instance `mlops rebuild` opens (DAGSTER_HOME of the test's local profile).
deployment_instance = deployment.deployment_instance
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


def test_whole_group_tunes_bundles_and_promotes(
    resources: dict,
    local_home: Path,
    deployment_instance: dg.DagsterInstance,
    capsys: pytest.CaptureFixture,
) -> None:
    """Every asset, into the deployment's instance, twice; then `mlops rebuild` of the champion
    (the older version): the study's best trial fitted again from its recorded parameters and
    seed, with no new search, is the registered model, price for price on the holdout sales."""
    run = _materialize(resources=resources, instance=deployment_instance)
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
        ["housing/model", "housing/holdout_report", "housing/champion"],
        resources=resources,
        instance=deployment_instance,
    )
    assert again.success, failures(again)
    second = metadata(again, "housing/holdout_report")
    assert second["candidate/rmse"] == pytest.approx(metrics["candidate/rmse"], rel=1e-12)
    decision = metadata(again, "housing/champion")
    assert decision["promotion/decision"] == "kept"
    assert tracking.get_version_by_alias(MODEL_NAME, "champion").version == champion.version

    # The champion rebuilt after a newer version was trained: its own data is unchanged (only the
    # model was trained again), so it rebuilds IDENTICAL.
    trials_before = len(tracking.client.search_runs([study.info.experiment_id]))
    versions_before = len(tracking.client.search_model_versions(f"name='{MODEL_NAME}'"))
    capsys.readouterr()
    code = rebuild_command(load_settings(), MODEL_NAME, str(champion.version), as_json=True)
    out = capsys.readouterr().out
    rebuild = json.loads(out[out.index("{") :])
    assert code == EXIT_IDENTICAL, out
    assert rebuild["run_id"] == champion.run_id == study.info.run_id
    # The lineage was walked in the instance the runs wrote to: nothing missing, nothing changed.
    assert not [n for n in rebuild["notes"] if n.startswith("lineage:")], rebuild["notes"]
    assert {m["name"] for m in rebuild["metrics"]} == set(study.data.metrics)
    assert {"eval_rmse", "eval_mae", "eval_r2"} <= set(study.data.metrics)
    assert all(m["equal"] for m in rebuild["metrics"])
    # The best trial's parameters, as recorded, are the ones refitted.
    assert {p["name"] for p in rebuild["params"]} >= {
        "best_max_depth",
        "best_learning_rate",
        "seed",
    }
    # Every holdout sale, priced alike by the registered and the rebuilt model.
    assert rebuild["predictions"]["rows_original"] == len(holdout)
    assert rebuild["predictions"]["differing_rows"] == 0

    # One new run (no nested trials: the search is not run again), tagged, never registered.
    runs = tracking.client.search_runs([study.info.experiment_id])
    assert len(runs) == trials_before + 1
    [rebuilt] = [r for r in runs if r.info.run_id == rebuild["rebuild_run_id"]]
    assert rebuilt.data.tags[TAG_REBUILD_OF] == str(champion.version)
    assert len(tracking.client.search_model_versions(f"name='{MODEL_NAME}'")) == versions_before
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


# -- a user's file: every problem is caught with a clear message, and nothing is published ------


def _sales_csv(local_home: Path, n_sales: int = 300, edit=None) -> Path:
    from mlops_assets.housing import sources

    frame = sources.generate_sales(sources.GeneratorConfig(n_sales=n_sales)).to_pandas()
    if edit is not None:
        frame = edit(frame)
    path = local_home / "sales.csv"
    frame.to_csv(path, index=False)
    return path


def _from_csv(path: Path, resources: dict, **config) -> dg.ExecuteInProcessResult:
    return _materialize(
        ["housing/raw", "housing/splits"],
        ops={"housing__raw": {"config": {"source": "csv", "path": str(path), **config}}},
        resources=resources,
    )


def _sales_check(run: dg.ExecuteInProcessResult) -> dict:
    [check] = [
        e for e in run.get_asset_check_evaluations() if e.check_name == "sales_meet_expectations"
    ]
    assert check.passed is False
    return {k: v.value for k, v in check.metadata.items()}


def _step_errors(run: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_failure_data.error.cls_name for e in run.all_events if e.is_step_failure]


def test_a_header_only_file_is_refused_naming_the_file(resources: dict, local_home: Path) -> None:
    path = _sales_csv(local_home, edit=lambda f: f.iloc[:0])
    run = _from_csv(path, resources)
    assert not run.success
    assert _step_errors(run) == ["Failure"]
    message = failures(run)
    assert f"housing/raw: {path}: the file has a header but no sales" in message
    assert "min() arg" not in message
    data = local_home / ".data" / "housing"
    assert not (data / "raw.parquet").exists()
    assert not (data / "splits.parquet").exists()


def test_null_sale_dates_fail_the_blocking_suite_with_the_count(
    resources: dict, local_home: Path
) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[schema.DATE] = frame[schema.DATE].astype(object)
        frame.loc[[2, 7, 11], schema.DATE] = None
        return frame

    run = _from_csv(_sales_csv(local_home, edit=edit), resources)
    assert not run.success
    assert _step_errors(run) == ["DagsterAssetCheckFailedError"]  # not a bare TypeError
    meta = _sales_check(run)
    assert meta["failing_expectations"] == [f"expect_column_values_to_not_be_null({schema.DATE})"]
    assert meta[f"unexpected_count:{schema.DATE}"] == 3
    assert metadata(run, "housing/raw")["published"] is False
    data = local_home / ".data" / "housing"
    assert not (data / "raw.parquet").exists()
    assert not (data / "splits.parquet").exists()


def test_implausible_prices_and_future_sales_fail_with_their_counts(
    resources: dict, local_home: Path
) -> None:
    good = _materialize(
        ["housing/raw"], ops={"housing__raw": {"config": {"n_sales": 300}}}, resources=resources
    )
    assert good.success, failures(good)
    published = local_home / ".data" / "housing" / "raw.parquet"
    before = published.read_bytes()

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[4, 8], schema.TARGET] = 1e12
        frame[schema.DATE] = frame[schema.DATE].astype(str)
        # In the future whenever this test runs: the default bound is today, read at run time.
        frame.loc[[1, 3, 5], schema.DATE] = "2100-01-01"
        return frame

    path = _sales_csv(local_home, edit=edit)
    run = _from_csv(path, resources)
    assert not run.success
    meta = _sales_check(run)
    assert meta["failing_expectations"] == [
        f"expect_column_values_to_be_between({schema.TARGET})",
        f"sale_date_is_not_in_the_future({schema.DATE})",
    ]
    assert meta[f"unexpected_count:{schema.TARGET}"] == 2
    assert meta[f"unexpected_count:{schema.DATE}"] == 3
    assert meta["samples"][f"sale_date_is_not_in_the_future({schema.DATE})"] == ["2100-01-01"] * 3
    assert published.read_bytes() == before
    assert not (local_home / ".data" / "housing" / "splits.parquet").exists()

    # Both bounds are the run's to set: a richer market, and sales known to be planned.
    run = _from_csv(path, resources, max_price=1e13, latest_sale_date="2100-12-31")
    assert run.success, failures(run)
    assert published.read_bytes() != before


def test_the_latest_sale_date_is_configurable_and_checked(
    resources: dict, local_home: Path
) -> None:
    from mlops_assets.housing import sources

    sales = sources.generate_sales(sources.GeneratorConfig(n_sales=300)).to_pandas()
    after = int((pd.to_datetime(sales[schema.DATE]) > pd.Timestamp("2019-12-31")).sum())
    assert 0 < after < len(sales)
    ops = {"housing__raw": {"config": {"n_sales": 300, "latest_sale_date": "2019-12-31"}}}
    run = _materialize(["housing/raw", "housing/splits"], ops=ops, resources=resources)
    assert not run.success
    meta = _sales_check(run)
    assert meta["failing_expectations"] == [f"sale_date_is_not_in_the_future({schema.DATE})"]
    assert meta[f"unexpected_count:{schema.DATE}"] == after
    assert not (local_home / ".data" / "housing" / "raw.parquet").exists()

    ops = {"housing__raw": {"config": {"n_sales": 300, "latest_sale_date": "31/12/2019"}}}
    run = _materialize(["housing/raw"], ops=ops, resources=resources)
    assert _step_errors(run) == ["Failure"]
    assert "latest_sale_date must be an ISO date (2024-06-30), got '31/12/2019'" in failures(run)
    assert not (local_home / ".data" / "housing" / "raw.parquet").exists()

    # Past pandas' last timestamp a sale would pass the check and break the splits.
    ops = {"housing__raw": {"config": {"n_sales": 300, "latest_sale_date": "2999-01-01"}}}
    run = _materialize(["housing/raw"], ops=ops, resources=resources)
    assert _step_errors(run) == ["Failure"]
    assert "latest_sale_date 2999-01-01 is past 2200-01-01" in failures(run)


def test_today_is_read_from_the_clock_when_the_check_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from mlops_assets.core.publishing import Staged
    from mlops_assets.housing import checks, sources
    from mlops_assets.housing.assets import RAW_AUDITS

    table = sources.generate_sales(sources.GeneratorConfig(n_sales=300))
    [sales, _] = RAW_AUDITS  # built at import, as the code server does
    key = sales.asset_key
    assert sales.evaluate(Staged(None, None, {key: table}, store=None)).success

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):  # the check's "now": 2020-06-29 (UTC), so the limit is 06-30
            return datetime(2020, 6, 29, 23, 0, tzinfo=UTC)

    monkeypatch.setattr(checks, "datetime", Clock)
    result = sales.evaluate(Staged(None, None, {key: table}, store=None))
    dates = pd.to_datetime(table.column(schema.DATE).to_pandas())
    rule = result.result_for(checks.FUTURE_RULE, schema.DATE)
    assert not result.success and rule.unexpected_count == int((dates > "2020-06-30").sum()) > 0
    assert rule.kwargs == {"max_value": "2020-06-30"}
