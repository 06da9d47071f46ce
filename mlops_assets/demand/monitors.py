"""Watching the demand forecasters once they publish: ``demand/forecast_accuracy`` and its check
``champion_performs_as_validated``, which asks for a retraining when a champion's live error
breaks its backtest's promise.

The evaluation itself is pure (:mod:`mlops_assets.demand.accuracy`); this module reads the
inputs, looks the champions and their promises up in the registry, and records the result.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context`, the
# config and the resources.
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from mlops_assets.core import storage
from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.policies import NETWORK_RETRY, eager_on_published
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import MlflowTracking
from mlops_assets.demand.accuracy import DEFAULT_MIN_HOURS, DEFAULT_TOLERANCE
from mlops_assets.demand.assets import daily_asset
from mlops_assets.demand.schema import CASE, model_name

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

ACCURACY = CASE.key("forecast_accuracy")
CHECK = "champion_performs_as_validated"
#: The job a failed check asks for (defined in `demand/definitions.py`): backtest, leaderboard,
#: champion and forecasts of the evaluation day.
RETRAINING_JOB = "demand_retraining"
#: What the promise is: the figure the champion's MLflow run logged from its backtest.
PROMISED_METRIC = "rmse_mean"
#: Earlier days of this asset drawn beside the evaluated one in the per-day plot.
PLOT_DAYS = 14


@deployment_defaults(CASE.op("forecast_accuracy"))
class AccuracyConfig(dg.Config):
    """When a champion's live error breaks its backtest's promise."""

    tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        ge=0,
        description="How much worse than promised the realized RMSE of a day may be, as a share "
        f"of the promise: {DEFAULT_TOLERANCE:g} fails above {1 + DEFAULT_TOLERANCE:g} x the "
        "backtest RMSE. One day's RMSE swings widely around a promise measured on a few "
        "backtest days (2.57 x at most on 28 quiet generated days of five respondents), so a "
        "tight tolerance retrains on noise.",
    )
    min_hours: int = Field(
        default=DEFAULT_MIN_HOURS,
        ge=1,
        description="Fewest forecast hours of the champion with a known actual for the day to "
        "be judged; fewer says 'insufficient data'.",
    )


def _read_actuals(store: AssetStore, day: str) -> tuple["pd.DataFrame", str]:
    """The clean hours of ``day`` and what they are: their data version, or why there are none
    (the day is not published yet, or was rejected by its blocking checks): such a day has
    nothing to judge, it is not a failure."""
    import pandas as pd

    from mlops_assets.core.publishing import RejectedPartitionError

    empty = pd.DataFrame({"unique_id": [], "ds": pd.to_datetime([], utc=True), "y": []})
    try:
        table, versions = store.read_partitions(CASE.key("clean"), [day])
    except FileNotFoundError:
        return empty, f"none: demand/clean has no partition {day} yet"
    except RejectedPartitionError:
        return empty, f"none: demand/clean {day} was rejected by its blocking checks"
    return table.to_pandas(), versions[day]


def _read_forecasts(store: AssetStore, day: str) -> tuple["pd.DataFrame", dict[str, str]]:
    """Every published forecast that may reach ``day`` (the partitions of the
    ``MAX_LOOKBACK_DAYS`` days before it that exist), with each partition's data version."""
    import pandas as pd
    import pyarrow as pa

    from mlops_assets.demand import accuracy

    key = CASE.key("forecasts")
    published = store.published_partitions(key)
    days = [d for d in accuracy.issue_days(day) if d in published]
    if not days:
        columns = {c: [] for c in accuracy.FORECAST_COLUMNS}
        return pd.DataFrame(columns), {}
    tables, versions = [], {}
    # One partition at a time: a partition written by an older release may lack a column the
    # others have, and the evaluation only needs FORECAST_COLUMNS.
    for partition in days:
        table, version = store.read_partitions(key, [partition])
        tables.append(table.select(list(accuracy.FORECAST_COLUMNS)))
        versions.update(version)
    return pa.concat_tables(tables, promote_options="permissive").to_pandas(), versions


def _promised_rmse(mlflow: MlflowTracking, name: str, version: str) -> float | None:
    """The backtest RMSE the run of ``name`` version ``version`` logged; None when the version or
    the metric is gone (a deleted version cannot be judged, it is not a failure)."""
    from mlflow.exceptions import MlflowException

    try:
        run_id = mlflow.client.get_model_version(name, version).run_id
        metrics = mlflow.client.get_run(run_id).data.metrics if run_id else {}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    value = metrics.get(PROMISED_METRIC)
    return None if value is None else float(value)


def _champions_and_promises(
    mlflow: MlflowTracking, respondents: list[str], joined: "pd.DataFrame"
) -> tuple[dict[str, tuple[str, str] | None], dict[tuple[str, str], float | None]]:
    """Each respondent's champion now (``(version, model kind)``, None before the first
    promotion), and the promised RMSE of every version that forecast the day or serves now."""
    champions: dict[str, tuple[str, str] | None] = {}
    for respondent in respondents:
        version = mlflow.champion(model_name(respondent))
        champions[respondent] = (
            None if version is None else (str(version.version), version.tags.get("model", ""))
        )
    versions = {(r, v) for r, v in zip(joined["unique_id"], joined["model_version"], strict=True)}
    versions |= {(r, c[0]) for r, c in champions.items() if c is not None}
    promised = {(r, v): _promised_rmse(mlflow, model_name(r), v) for r, v in sorted(versions)}
    return champions, promised


def _arrow(frame: "pd.DataFrame") -> "pa.Table":
    """The accuracy table with a fixed schema: a day with no rows has the same columns and types
    as any other, so the partitions read back as one table."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("day", pa.string()),
            ("unique_id", pa.string()),
            ("model", pa.string()),
            ("model_version", pa.string()),
            ("lead_hour", pa.int64()),
            ("forecasts", pa.int64()),
            ("actuals", pa.int64()),
            ("rmse", pa.float64()),
            ("mae", pa.float64()),
            ("mape", pa.float64()),
            ("bias", pa.float64()),
            ("promised_rmse", pa.float64()),
        ]
    )
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _md(frame: "pd.DataFrame") -> dg.MetadataValue:
    from mlops_assets.core import reporting

    rows = [
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    return dg.MetadataValue.md(reporting.markdown_table(rows, list(frame.columns)))


def _daily_plot(store: AssetStore, day: str, table: "pd.DataFrame", threshold: float) -> Any:
    """Realized / promised RMSE per day of each respondent's versions over the last
    ``PLOT_DAYS`` days (earlier partitions of this asset, and the day evaluated)."""
    import pandas as pd

    from mlops_assets.core.monitoring.plots import metric_by_day_figure
    from mlops_assets.core.reporting import figure_markdown
    from mlops_assets.demand import accuracy

    published = store.published_partitions(ACCURACY)
    earlier = [d for d in accuracy.issue_days(day, PLOT_DAYS) if d in published]
    frames = [store.read_partitions(ACCURACY, [d])[0].to_pandas() for d in earlier]
    history = accuracy.daily_ratio(pd.concat([*frames, table], ignore_index=True))
    if history["day"].nunique() < 2:
        return None  # one day is no trend: the lead-hour plot shows it
    figure = metric_by_day_figure(
        history,
        day="day",
        metric="ratio",
        series="series",
        title="Realized / promised RMSE per day (dashed: the check's threshold)",
        reference=threshold,
    )
    return figure_markdown(figure, alt="Realized over promised RMSE per day")


@daily_asset(
    "forecast_accuracy",
    # The clean day P (the actuals) is the dependency that matters; the forecasts of the days
    # before P are read through the store, not declared with a window partition mapping: Dagster
    # maps windows both ways, so a backfill of a few forecast days would also claim two weeks of
    # this asset. Their partitions and data versions are in the metadata.
    deps=[CASE.key("clean")],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=ACCURACY,
            description="Each respondent's champion forecast the day within the tolerance of "
            "the RMSE its backtest promised.",
        )
    ],
    # Keeps itself up to date: the latest day is judged as soon as its clean actuals are
    # published (the daily job's ingest); a day rejected by its checks is not.
    automation_condition=eager_on_published(),
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # It asks the MLflow registry for the champions and their promises.
    retry_policy=NETWORK_RETRY,
    kinds={"pandas", "parquet"},
)
def forecast_accuracy(
    context: dg.AssetExecutionContext,
    config: AccuracyConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
):
    """How the published forecasts of the day fared once its actual hours arrived: one row per
    respondent, model version and lead hour (1 = the first hour after the forecast's origin) with
    the rows compared, realized RMSE, MAE, MAPE and bias, beside the RMSE that version's backtest
    promised. The check judges each respondent's current champion on all its hours of the day and
    asks for a retraining when one is too far above its promise."""
    from mlops_assets.core import reporting
    from mlops_assets.core.monitoring.retraining import trigger_metadata
    from mlops_assets.demand import accuracy

    day = context.partition_key
    clean, clean_version = _read_actuals(asset_store, day)
    forecasts, forecast_versions = _read_forecasts(asset_store, day)
    try:
        made = accuracy.forecasts_of_day(forecasts, day)
        actuals = accuracy.actuals_of_day(clean, day)
    except accuracy.AccuracyError as exc:
        raise dg.Failure(f"demand/forecast_accuracy {day}: {exc}", allow_retries=False) from exc
    joined = accuracy.join_actuals(made, actuals)
    respondents = sorted(set(made["unique_id"]) | set(actuals["unique_id"]))

    champions, promised = _champions_and_promises(mlflow, respondents, joined)
    table = accuracy.lead_hour_accuracy(joined, day, promised)
    covered = accuracy.coverage(made, actuals)
    served = accuracy.champion_accuracy(joined, respondents, champions, promised)
    verdicts = accuracy.champion_verdicts(
        served, tolerance=config.tolerance, min_hours=config.min_hours
    )
    versions = {r: (c[0] if c else None) for r, c in champions.items()}
    verdict, _ = accuracy.combined_verdict(verdicts, versions)
    trigger, failing = accuracy.retraining_trigger(
        verdicts,
        versions,
        check=CHECK,
        asset=ACCURACY.to_user_string(),
        day=day,
        job=RETRAINING_JOB,
    )
    shown = served.assign(status=[verdicts[r].status for r in served["unique_id"]])

    out = _arrow(table)
    metadata: dict[str, Any] = {
        **reporting.table_metadata(out),
        "status": verdict.status,
        "reason": verdict.reason,
        "champions": _md(shown),
        "coverage": _md(covered),
        "promise": f"{PROMISED_METRIC} of each version's MLflow run: its backtest's RMSE per "
        "horizon window, averaged over the windows (one figure over all lead hours; the backtest "
        "logs none per lead hour)",
        "threshold": f"realized RMSE > promised x {1 + config.tolerance:g} fails, on at least "
        f"{config.min_hours} hours",
        "forecast_partitions": sorted(forecast_versions),
        "forecasts_data_version": storage.combined_version(forecast_versions)
        if forecast_versions
        else "none",
        "actuals": clean_version,
        **trigger_metadata([trigger] if trigger else []),
    }
    if failing:
        metadata["retraining"] = (
            f"one {RETRAINING_JOB} run for {day} (it retrains every respondent), named after "
            f"the worst, {failing[0]}"
            + (f"; also failing: {', '.join(failing[1:])}" if failing[1:] else "")
        )
    if len(table):
        metadata["plot"] = reporting.figure_markdown(
            accuracy.lead_hour_figure(table, title=f"Forecasts of {day}: realized vs promised"),
            alt="Realized RMSE by lead hour, promised RMSE dashed",
        )
    daily = _daily_plot(asset_store, day, table, 1 + config.tolerance)
    if daily is not None:
        metadata["plot_by_day"] = daily
    yield dg.Output(out, metadata=metadata)
    yield verdict.check_result(
        CHECK,
        metadata={
            "champions": _md(shown),
            **trigger_metadata([trigger] if trigger else []),
        },
    )
