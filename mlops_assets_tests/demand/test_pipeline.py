"""The demand pipeline on tiny data: raw → clean → checks → cv_results → leaderboard → champion →
forecasts, on the local profile (and, marked `stack`, on S3 + an MLflow server), plus the EIA
source through Dagster with its retries, and the daily schedule."""

import io
import itertools
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.definitions import resources_for
from mlops_assets.demand.assets import build_raw
from mlops_assets.demand.definitions import ASSETS, demand_daily_schedule
from mlops_assets.demand.definitions import defs as demand_defs
from mlops_assets.demand.schema import model_name
from mlops_assets_tests.fixtures.fake_eia import FakeEia
from mlops_assets_tests.fixtures.runs import check_verdicts, failures, materialized, metadata

FIRST, LAST = "2024-05-01", "2024-05-28"
RESPONDENTS = ["CISO", "NYIS"]
MODELS = ["seasonal_naive", "holt_winters", "gbm"]
BACKTEST = {"models": MODELS, "n_windows": 2, "history_days": 28}
FORECAST = {"history_days": 28}
MODELLING = ["demand/cv_results", "demand/leaderboard", "demand/champion", "demand/forecasts"]


def _materialize(keys: list[str], assets=ASSETS, **kwargs) -> dg.ExecuteInProcessResult:
    """Materialize the demand assets ``keys`` (and their checks), the rest of the group loaded."""
    selection = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    return dg.materialize(assets, selection=selection, raise_on_error=False, **kwargs)


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def _ingest(resources: dict, first: str = FIRST, last: str = LAST, assets=ASSETS, **raw):
    return _materialize(
        ["demand/raw", "demand/clean"],
        assets=assets,
        resources=resources,
        run_config={"ops": {"demand__raw": {"config": {"respondents": RESPONDENTS, **raw}}}},
        tags=_range_tags(first, last),
    )


def _model(resources: dict, day: str = LAST, keys: list[str] = MODELLING, backtest=BACKTEST):
    ops = {
        "demand__cv_results": {"config": backtest},
        "demand__champion": {"config": {"example_days": 28}},
        "demand__forecasts": {"config": FORECAST},
    }
    wanted = {f"demand__{k.split('/')[1]}" for k in keys}
    return _materialize(
        keys,
        resources=resources,
        partition_key=day,
        run_config={"ops": {op: cfg for op, cfg in ops.items() if op in wanted}},
    )


@pytest.fixture
def resources(local_home: Path) -> dict:
    return resources_for(load_settings())


def test_whole_group_backtests_promotes_and_forecasts(resources: dict, local_home: Path) -> None:
    ingest = _ingest(resources)
    assert ingest.success, failures(ingest)
    assert check_verdicts(ingest) == {
        "values_are_numbers": True,
        "no_missing_hours": True,
        "no_duplicate_hours": True,
        "demand_values_are_plausible": True,
    }
    data = local_home / ".data" / "demand"
    days = sorted(p.stem for p in (data / "clean").glob("*.parquet"))
    assert (days[0], days[-1], len(days)) == (FIRST, LAST, 28)
    day = pl.read_parquet(data / "clean" / f"{LAST}.parquet")
    assert day.columns == ["unique_id", "ds", "y"] and day.height == 2 * 24
    assert metadata(ingest, "demand/clean")["status"] == "valid"

    run = _model(resources)
    assert run.success, failures(run)
    cv = pd.read_parquet(data / "cv_results" / f"{LAST}.parquet")
    assert len(cv) == len(RESPONDENTS) * len(MODELS) * 2 * 24
    assert (cv["ds"] > cv["cutoff"]).all()
    board = pd.read_parquet(data / "leaderboard" / f"{LAST}.parquet")
    for respondent, rows in board.groupby("unique_id"):
        assert sorted(rows["rank"]) == [1, 2, 3], respondent
        baseline = rows[rows["model"] == "seasonal_naive"].iloc[0]
        assert baseline["skill_vs_baseline"] == pytest.approx(0.0)

    tracking = resources["mlflow"]
    best = board[board["rank"] == 1].set_index("unique_id")["model"]
    champions = {}
    for respondent in RESPONDENTS:
        champion = tracking.get_version_by_alias(model_name(respondent), "champion")
        assert champion is not None
        assert champion.tags["model"] == best[respondent]
        champions[respondent] = champion
        mlflow_run = tracking.client.get_run(champion.run_id)
        assert mlflow_run.data.tags["dagster.run_id"] == run.run_id
        assert mlflow_run.data.tags["dagster.partition_key"] == LAST
        assert mlflow_run.data.params["model"] == best[respondent]

    forecasts = pd.read_parquet(data / "forecasts" / f"{LAST}.parquet")
    assert len(forecasts) == len(RESPONDENTS) * 24
    for respondent, rows in forecasts.groupby("unique_id"):
        assert rows["ds"].iloc[0] == pd.Timestamp("2024-05-29T00:00", tz="UTC")
        assert rows["ds"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
        assert set(rows["model_version"]) == {str(champions[respondent].version)}
    ordered = ["yhat_lo_95", "yhat_lo_80", "yhat", "yhat_hi_80", "yhat_hi_95"]
    for low, high in itertools.pairwise(ordered):
        assert (forecasts[low] <= forecasts[high] + 1e-9).all(), (low, high)

    # Same data, same code: the same leaderboard and forecasts, byte for byte, and the gate keeps
    # the champions (an equal candidate is not an improvement).
    before = {
        name: (data / name / f"{LAST}.parquet").read_bytes()
        for name in ("leaderboard", "cv_results")
    }
    forecast_bytes = (data / "forecasts" / f"{LAST}.parquet").read_bytes()
    again = _model(resources)
    assert again.success, failures(again)
    for name, content in before.items():
        assert (data / name / f"{LAST}.parquet").read_bytes() == content, name
    assert (data / "forecasts" / f"{LAST}.parquet").read_bytes() == forecast_bytes
    assert metadata(again, "demand/champion")["promoted"] == 0
    for respondent in RESPONDENTS:
        name = model_name(respondent)
        assert (
            tracking.get_version_by_alias(name, "champion").version == champions[respondent].version
        )
        candidate = tracking.get_version_by_alias(name, "candidate")
        assert int(candidate.version) > int(champions[respondent].version)
        assert candidate.tags["promotion.decision"] == "kept"

    # A bad day: a duplicated hour and a missing one. The blocking checks fail, the clean day is
    # quarantined instead of published, no model step runs in that run, a later backtest refuses
    # the window, naming the rejected day, and the forecasts stay as they were.
    clean_day = data / "clean" / f"{LAST}.parquet"
    published = clean_day.read_bytes()
    raw_day = data / "raw" / f"{LAST}.parquet"
    good = pl.read_parquet(raw_day)
    bad = pl.concat([good.filter(pl.int_range(pl.len()) != 5), good.slice(10, 1)])
    bad.write_parquet(raw_day)
    broken = _materialize(
        ["demand/clean", *MODELLING],
        resources=resources,
        partition_key=LAST,
        run_config={
            "ops": {
                "demand__cv_results": {"config": BACKTEST},
                "demand__forecasts": {"config": FORECAST},
            }
        },
    )
    checks = check_verdicts(broken)
    assert checks["no_missing_hours"] is False and checks["no_duplicate_hours"] is False
    assert materialized(broken) == {"demand/clean"}
    [missing] = [
        e for e in broken.get_asset_check_evaluations() if e.check_name == "no_missing_hours"
    ]
    assert "CISO" in str(missing.metadata) and "2024-05-28T05:00" in str(missing.metadata)
    assert (data / "forecasts" / f"{LAST}.parquet").read_bytes() == forecast_bytes

    assert clean_day.read_bytes() == published
    assert metadata(broken, "demand/clean")["published"] is False
    quarantined = Path(metadata(broken, "demand/clean")["quarantine"])
    # The quarantine holds the rejected day itself: its duplicated hour is there.
    assert pl.read_parquet(quarantined).select("unique_id", "ds").is_duplicated().sum() == 2

    later = _model(resources, keys=["demand/cv_results"])
    assert not later.success
    assert "rejected by its blocking checks" in failures(later)
    assert "no_missing_hours" in failures(later) and LAST in failures(later)
    assert (data / "cv_results" / f"{LAST}.parquet").read_bytes() == before["cv_results"]


def test_a_better_model_takes_over_and_forecasts_follow_it(resources: dict, local_home: Path):
    assert _ingest(resources).success
    baseline_only = {**BACKTEST, "models": ["seasonal_naive"]}
    first = _model(resources, backtest=baseline_only)
    assert first.success, failures(first)
    tracking = resources["mlflow"]
    name = model_name("CISO")
    before = tracking.get_version_by_alias(name, "champion")
    assert before.tags["model"] == "seasonal_naive"

    # The gradient-boosting model joins; the backtest re-scores the serving seasonal naive on the
    # same windows. It wins clearly on CISO and loses on NYIS: one alias moves, the other stays.
    challenger = _model(resources, backtest={**BACKTEST, "models": ["gbm"]})
    assert challenger.success, failures(challenger)
    assert set(metadata(challenger, "demand/cv_results")["models"]) == {"seasonal_naive", "gbm"}
    board = pd.read_parquet(local_home / ".data" / "demand" / "leaderboard" / f"{LAST}.parquet")
    rmse = board.set_index(["unique_id", "model"])["rmse_mean"]
    assert rmse["CISO", "gbm"] < 0.99 * rmse["CISO", "seasonal_naive"]
    assert rmse["NYIS", "gbm"] > rmse["NYIS", "seasonal_naive"]
    after = tracking.get_version_by_alias(name, "champion")
    assert after.tags["model"] == "gbm" and int(after.version) > int(before.version)
    assert "better by" in after.tags["promotion.reason"]
    nyis = tracking.get_version_by_alias(model_name("NYIS"), "champion")
    assert nyis.tags["model"] == "seasonal_naive"
    # NYIS's best is still seasonal naive: a new version of the same model ties, and a tie is
    # not an improvement.
    retrained = tracking.get_version_by_alias(model_name("NYIS"), "candidate")
    assert retrained.tags["model"] == "seasonal_naive"
    assert "not better" in retrained.tags["promotion.reason"]

    longer = _materialize(
        ["demand/forecasts"],
        resources=resources,
        partition_key=LAST,
        run_config={"ops": {"demand__forecasts": {"config": {**FORECAST, "horizon": 36}}}},
    )
    assert longer.success, failures(longer)
    forecasts = pd.read_parquet(local_home / ".data" / "demand" / "forecasts" / f"{LAST}.parquet")
    assert forecasts.groupby("unique_id").size().to_dict() == {"CISO": 36, "NYIS": 36}
    served = forecasts.groupby("unique_id")["model"].unique().map(list).to_dict()
    assert served == {"CISO": ["gbm"], "NYIS": ["seasonal_naive"]}
    assert forecasts["ds"].max() == pd.Timestamp("2024-05-30T11:00", tz="UTC")


def test_backtest_needs_every_day_of_its_window(resources: dict) -> None:
    assert _ingest(resources, "2024-05-20", LAST).success
    run = _model(resources, keys=["demand/cv_results"])
    assert not run.success
    message = failures(run)
    assert "2024-05-01" in message and "materialize" in message


def test_eia_source_through_dagster_keeps_bad_values_out_of_clean(
    resources: dict, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIA_API_KEY", "test-key")
    with FakeEia(api_key="test-key") as fake:
        fake.add_series(
            RESPONDENTS, datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC)
        )
        eia = {"source": "eia", "eia_base_url": fake.base_url, "page_size": 30}
        good = _ingest(resources, "2024-05-01", "2024-05-02", **eia)
        assert good.success, failures(good)
        assert all(check_verdicts(good).values())
        assert len(fake.requests) == 4  # 96 rows in pages of 30
        clean = pl.read_parquet(local_home / ".data" / "demand" / "clean" / "2024-05-02.parquet")
        assert clean.height == 48

        fake.set_value("NYIS", datetime(2024, 5, 2, 7, tzinfo=UTC), "n/a")
        bad = _ingest(resources, "2024-05-02", "2024-05-02", **eia)
        check = {e.check_name: e for e in bad.get_asset_check_evaluations()}["values_are_numbers"]
        assert check.passed is False
        assert "NYIS" in str(check.metadata) and "2024-05-02T07:00Z" in str(check.metadata)
        assert materialized(bad) == {"demand/raw"}  # clean did not run on it
        assert pl.read_parquet(
            local_home / ".data" / "demand" / "clean" / "2024-05-02.parquet"
        ).equals(clean)


def test_ingest_step_retries_outages_but_not_a_rejected_key(
    resources: dict, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries = [build_raw(dg.RetryPolicy(max_retries=3, delay=0.01)), *ASSETS[1:]]
    monkeypatch.setenv("EIA_API_KEY", "test-key")
    with FakeEia(api_key="test-key") as fake:
        fake.add_series(
            RESPONDENTS, datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)
        )
        eia = {"source": "eia", "eia_base_url": fake.base_url, "request_retries": 0}
        fake.fail_next(503, times=2)
        recovered = _ingest(resources, "2024-05-01", "2024-05-01", assets=fast_retries, **eia)
        assert recovered.success, failures(recovered)
        restarts = [e for e in recovered.all_events if e.event_type_value == "STEP_RESTARTED"]
        assert len(restarts) == 2
        raw = local_home / ".data" / "demand" / "raw" / "2024-05-01.parquet"
        assert raw.exists()
        raw.unlink()

        fake.fail_next(500, times=4)  # the first try and its 3 retries
        down = _ingest(resources, "2024-05-01", "2024-05-01", assets=fast_retries, **eia)
        assert not down.success
        assert len([e for e in down.all_events if e.event_type_value == "STEP_RESTARTED"]) == 3
        assert "500" in failures(down)
        assert not raw.exists()

        monkeypatch.setenv("EIA_API_KEY", "wrong-key")
        fake.requests.clear()
        rejected = _ingest(resources, "2024-05-01", "2024-05-01", assets=fast_retries, **eia)
        assert not rejected.success
        assert "EIA_API_KEY" in failures(rejected) and "wrong-key" not in failures(rejected)
        assert len(fake.requests) == 1  # no retry of a rejected key
        assert not raw.exists()


def test_daily_schedule_runs_the_day_that_just_ended_at_six_utc(resources: dict) -> None:
    defs = dg.Definitions.merge(demand_defs, dg.Definitions(resources=resources))
    schedule = defs.resolve_schedule_def(demand_daily_schedule.name)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "UTC")
    assert schedule.job_name == "demand_daily"
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2024, 5, 29, 6, tzinfo=UTC)
        )
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2024-05-28"
    job = defs.resolve_job_def("demand_daily")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        f"demand/{name}" for name in ("raw", "clean", *[k.split("/")[1] for k in MODELLING])
    }


@pytest.mark.stack
def test_whole_group_on_the_stack_profile(stack_profile) -> None:
    """Asset data on S3 through moto's server and models on an MLflow server backed by
    PostgreSQL: the same pipeline gives the same leaderboard as on local disk."""
    stack = stack_profile("demand")
    resources = resources_for(stack.settings)
    backtest = {"models": ["seasonal_naive", "holt_winters"], "n_windows": 1, "history_days": 28}

    assert _ingest(resources).success
    run = _model(resources, backtest=backtest)
    assert run.success, failures(run)

    assert {f"demand/clean/{FIRST}.parquet", f"demand/forecasts/{LAST}.parquet"} <= stack.keys()
    board = pd.read_parquet(io.BytesIO(stack.read(f"demand/leaderboard/{LAST}.parquet")))
    assert set(board["unique_id"]) == set(RESPONDENTS)
    for respondent in RESPONDENTS:
        champion = resources["mlflow"].get_version_by_alias(model_name(respondent), "champion")
        assert champion is not None
        best = board[(board["unique_id"] == respondent) & (board["rank"] == 1)]
        assert champion.tags["model"] == best["model"].iloc[0]


def _write_user_csvs(root: Path, first: str, last: str) -> pl.DataFrame:
    """A user's hourly load, one CSV per UTC day, its hours written in each respondent's local
    time with the offset (as a utility's export would), values as plain numbers. Returns the
    series as (respondent, UTC hour, MWh)."""
    from datetime import date
    from zoneinfo import ZoneInfo

    from mlops_assets.demand import generator

    table = generator.generate(
        date.fromisoformat(first),
        date.fromisoformat(last) + pd.Timedelta(days=1).to_pytimedelta(),
        generator.GeneratorConfig(respondents=tuple(RESPONDENTS), seed=7),
    )
    series = pl.from_arrow(table).select(
        "respondent", "period", pl.col("value").cast(pl.Float64).alias("mwh")
    )
    zones = {"CISO": "America/Los_Angeles", "NYIS": "America/New_York"}
    root.mkdir(parents=True, exist_ok=True)
    for day, rows in series.group_by(pl.col("period").dt.date().alias("day")):
        lines = ["respondent,period,value,note"]
        for respondent, period, mwh in rows.select("respondent", "period", "mwh").iter_rows():
            local = period.astimezone(ZoneInfo(zones[respondent]))
            lines.append(f"{respondent},{local.isoformat()},{mwh:.1f},metered")
        (root / f"{day[0].isoformat()}.csv").write_text("\n".join(lines) + "\n")
    return series


def test_your_own_files_feed_the_whole_group(resources: dict, local_home: Path) -> None:
    files = local_home / "my_load"
    series = _write_user_csvs(files, FIRST, LAST)
    ingest = _ingest(resources, source="files", files_root=str(files))
    assert ingest.success, failures(ingest)
    assert all(check_verdicts(ingest).values()), check_verdicts(ingest)
    data = local_home / ".data" / "demand"
    clean = pl.concat(
        [pl.read_parquet(p) for p in sorted((data / "clean").glob("*.parquet"))]
    ).sort("unique_id", "ds")
    expected = series.sort("respondent", "period")
    assert clean.height == 28 * 24 * len(RESPONDENTS)
    assert clean["ds"].to_list() == expected["period"].to_list()  # local hours, now UTC
    assert clean["y"].to_list() == expected["mwh"].to_list()
    assert metadata(ingest, "demand/raw")["source"] == "files"

    run = _model(resources)
    assert run.success, failures(run)
    forecasts = pd.read_parquet(data / "forecasts" / f"{LAST}.parquet")
    assert set(forecasts["unique_id"]) == set(RESPONDENTS)
    assert forecasts["ds"].min() == pd.Timestamp("2024-05-29T00:00", tz="UTC")


def test_bad_user_files_fail_the_ingest_naming_file_column_and_count(
    resources: dict, local_home: Path
) -> None:
    files = local_home / "my_load"
    _write_user_csvs(files, "2024-05-01", "2024-05-02")
    raw = local_home / ".data" / "demand" / "raw"

    missing = _ingest(resources, "2024-05-01", "2024-05-03", source="files", files_root=str(files))
    assert not missing.success
    assert "no demand file for 2024-05-03" in failures(missing)
    assert str(files / "2024-05-03.csv") in failures(missing)
    assert not list(raw.glob("*.parquet"))  # nothing written, not even the good days

    day = files / "2024-05-02.csv"
    good = day.read_text()
    day.write_text(good.replace("respondent,period,", "respondent,when,"))
    no_column = _ingest(
        resources, "2024-05-01", "2024-05-02", source="files", files_root=str(files)
    )
    assert not no_column.success
    assert str(day) in failures(no_column) and "missing column 'period'" in failures(no_column)

    # Local times without their offset: which UTC hour is "2024-05-02T01:00"? Refused.
    naive = [
        ",".join([r, p[:16], *rest]) if i else ",".join([r, p, *rest])
        for i, (r, p, *rest) in enumerate(line.split(",") for line in good.splitlines())
    ]
    day.write_text("\n".join(naive) + "\n")
    no_offset = _ingest(
        resources, "2024-05-01", "2024-05-02", source="files", files_root=str(files)
    )
    assert not no_offset.success
    message = failures(no_offset)
    assert str(day) in message and "column 'period' has 48 values" in message
    assert "UTC offset" in message and "row 1 '2024-05-01T17:00'" in message
    assert not list(raw.glob("*.parquet"))

    day.write_text(good)
    fixed = _ingest(resources, "2024-05-01", "2024-05-02", source="files", files_root=str(files))
    assert fixed.success, failures(fixed)
