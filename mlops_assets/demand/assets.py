"""Hourly electricity demand as assets: raw → clean → cv_results → leaderboard → champion →
forecasts, partitioned by UTC day.

**Partitions.** Every asset is partitioned by UTC day, and respondents are a column, not a
partition dimension. A day of ``raw``/``clean`` holds all respondents; a day D of the modelling
assets is "the backtest, champion and forecasts as of the end of D", built from the clean days of
a history window ending at D. Respondents stay in one step on purpose: the backtest compares every
model on every respondent in one call of the forecasting libraries (which vectorise over series),
a day x respondent multi-partition would multiply the runs (each Dagster step pays seconds of
start-up) for series of a few thousand rows, and the daily schedule and ``--partition-range``
backfills need one time partitioning shared by the whole group. Each respondent still gets its own
model, MLflow run, registered model and champion alias.

``raw`` and ``clean`` are single-run backfills: ``--partition-range`` fetches the whole range in
one paginated API call sequence, then writes the days. Data is written only after the whole range
was fetched and parsed, so a failed ingest leaves earlier partitions untouched.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context`, the
# resources and the inputs.
import functools
import os
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from mlops_assets.core import storage
from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.champion import RmseGainConfig, sequential_gate
from mlops_assets.core.io_managers import frame_input
from mlops_assets.core.policies import (
    NETWORK_RETRY,
    SOURCE_API_POOL,
    daily_freshness,
    training_step,
)
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.sensors import champion_versions_metadata
from mlops_assets.core.tracking import MlflowTracking
from mlops_assets.demand import checks, schema
from mlops_assets.demand.cleaning import day_start, split_days

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

CASE = schema.CASE
# EIA-930 hourly data starts in mid-2015; 2019 leaves years of backfill without a huge partition list.
DAILY = dg.DailyPartitionsDefinition(start_date="2019-01-01")

# Default history of the modelling assets: eight weeks, enough for weekly seasonality (MSTL
# needs two weekly cycles) and for several backtest windows; a run may ask for more with
# `history_days`. The window is read by `read_clean_window`, which records the data version of
# every day read, not declared as a partition mapping: Dagster maps a window dependency both
# ways, so a backfill of two days of `clean` would also claim the 55 following days of every
# modelling asset, none of which has its history.
HISTORY_DAYS = 56
MAX_HISTORY_DAYS = 3 * 366

# Step-level retries of the ingest (on top of the client's per-request retries): the seed asks
# for 3 retries 5 minutes apart in production; tests and demos set the delay in seconds.
RETRY_DELAY_ENV = "MLOPS_DEMAND_INGEST_RETRY_DELAY_S"


# `@daily_asset("name", ...)`: keyed `<use case>/<name>`, in its group, one partition per UTC day.
daily_asset = functools.partial(CASE.asset, partitions_def=DAILY)


def history_days(day: str, n: int) -> list[str]:
    """The ``n`` UTC days ending with ``day``, oldest first."""
    last = date.fromisoformat(day)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(n - 1, -1, -1)]


# -- raw ----------------------------------------------------------------------------------------


@deployment_defaults(CASE.op("raw"))
class RawConfig(dg.Config):
    """Where hourly demand comes from, and for which balancing authorities."""

    source: Literal["generator", "eia", "files"] = Field(
        default="generator",
        description="'generator': deterministic offline data; 'eia': the EIA API v2 (needs "
        "EIA_API_KEY in the environment); 'files': your own CSV/parquet files under files_root.",
    )
    files_root: str = Field(
        default="",
        description="With source='files': folder (or s3:// URL) holding one file per UTC day, "
        "<YYYY-MM-DD>.csv or <YYYY-MM-DD>.parquet, with columns respondent, period (the hour's "
        "start with its UTC offset, e.g. 2024-05-01T05:00Z) and value (MWh).",
    )
    respondents: list[str] = Field(
        default=list(schema.RESPONDENTS),
        description="EIA respondent codes (balancing authorities), e.g. CISO, ERCO, PJM.",
    )
    seed: int = Field(default=42, description="Generator: seed of the series.")
    noise: float = Field(default=0.02, ge=0, lt=0.5, description="Generator: hourly noise.")
    level_shift_from: str | None = Field(
        default=None,
        description="Generator scenario: the first UTC day (YYYY-MM-DD) of a level shift, e.g. a "
        "large new load connecting; None: no shift.",
    )
    level_shift: float = Field(
        default=0.0,
        gt=-1,
        le=10,
        description="Generator scenario: relative change of demand from level_shift_from on "
        "(0.25: a quarter higher, -0.1: a tenth lower).",
    )
    level_shift_respondents: list[str] = Field(
        default=[],
        description="Generator scenario: the respondents whose demand shifts; empty: all.",
    )
    eia_base_url: str = Field(default="https://api.eia.gov/v2", description="EIA API root.")
    page_size: int = Field(default=5000, ge=1, le=5000, description="EIA rows per request.")
    request_retries: int = Field(
        default=5, ge=0, description="EIA: retries per request on 429/5xx, with backoff."
    )
    backoff_seconds: float = Field(
        default=1.0, ge=0, description="EIA: first backoff delay, doubled per retry."
    )


def ingest_retry_policy() -> dg.RetryPolicy:
    """Three retries with exponential backoff from ``MLOPS_DEMAND_INGEST_RETRY_DELAY_S`` seconds
    (default 300: the API's outages last minutes, not seconds)."""
    text = os.environ.get(RETRY_DELAY_ENV, "300")
    try:
        delay = float(text)
    except ValueError:
        raise ValueError(f"{RETRY_DELAY_ENV} must be a number of seconds, got {text!r}") from None
    return dg.RetryPolicy(max_retries=3, delay=delay, backoff=dg.Backoff.EXPONENTIAL)


def _fetch(config: RawConfig, start: datetime, end: datetime) -> "pa.Table":
    """The hours ``[start, end)`` of the configured respondents from the configured source."""
    if config.source == "generator":
        from mlops_assets.demand import generator

        try:
            shift_from = (
                date.fromisoformat(config.level_shift_from) if config.level_shift_from else None
            )
            settings = generator.GeneratorConfig(
                respondents=tuple(config.respondents),
                noise=config.noise,
                seed=config.seed,
                level_shift_from=shift_from,
                level_shift=config.level_shift,
                level_shift_respondents=tuple(config.level_shift_respondents),
            )
        except ValueError as exc:
            # A setting error: a retry would fail the same way.
            raise dg.Failure(f"demand/raw: {exc}", allow_retries=False) from exc
        return generator.generate(start.date(), end.date(), settings)
    if config.source == "files":
        return _read_files(config, start, end)
    return _fetch_eia(config, start, end)


def _read_files(config: RawConfig, start: datetime, end: datetime) -> "pa.Table":
    from mlops_assets.demand import sources

    if not config.files_root:
        raise dg.Failure(
            "demand/raw: source='files' needs files_root (the folder of your files)",
            allow_retries=False,
        )
    try:
        read = sources.read_files(config.files_root, config.respondents, start.date(), end.date())
    except sources.FilesError as exc:
        # Nothing is written: the whole range is read and checked before any day is staged.
        # Not retried: a bad or missing file fails the same way until it is fixed.
        raise dg.Failure(f"demand/raw: {exc}", allow_retries=False) from exc
    log = dg.get_dagster_logger()
    if read.extra_columns:
        log.warning(f"demand/raw: ignored columns not in the contract: {list(read.extra_columns)}")
    if read.ignored_rows:
        log.warning(f"demand/raw: ignored rows of respondents not asked for: {read.ignored_rows}")
    return read.table


def _fetch_eia(config: RawConfig, start: datetime, end: datetime) -> "pa.Table":
    from mlops_assets.demand import eia

    try:
        client = eia.EiaClientConfig(
            api_key=eia.api_key_from_env(),
            base_url=config.eia_base_url,
            page_size=config.page_size,
            max_retries=config.request_retries,
            backoff_seconds=config.backoff_seconds,
        )
        return eia.fetch_demand(config.respondents, start, end, client)
    except eia.EiaError as exc:
        # A Failure shows the message without a traceback. An outage that outlasted the client's
        # own retries goes to the step's retry policy; a rejected key, a bad request or bad data
        # would fail the same way again.
        raise dg.Failure(str(exc), allow_retries=exc.transient) from exc


RAW_AUDITS = checks.raw_audits(CASE.key("raw"), DAILY)


def build_raw(retry_policy: dg.RetryPolicy | None) -> dg.AssetsDefinition:
    """The ``raw`` asset with a given step retry policy (tests use seconds, not minutes)."""

    @daily_asset(
        "raw",
        # Single run: a range is fetched with one paginated request per respondent instead of
        # one per day, then split into days and written by the step itself.
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy,
        # EIA rate-limits each key: one ingest at a time, whatever number of runs are queued.
        pool=SOURCE_API_POOL,
        check_specs=check_specs(RAW_AUDITS),
        kinds={"parquet"},
    )
    def raw(context: dg.AssetExecutionContext, config: RawConfig, asset_store: AssetStore):
        """Hourly demand (type D) of each respondent as the source reported it: one row per
        respondent and UTC hour, the value kept as the text the source sent (bronze). Each day
        is published only when its blocking checks pass on it."""
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        table = _fetch(config, start, end)
        yield from publish(
            context,
            asset_store,
            {CASE.key("raw"): split_days(table, list(context.partition_keys))},
            RAW_AUDITS,
            metadata={
                CASE.key("raw"): {
                    "source": config.source,
                    "respondents": sorted(set(table.column("respondent").to_pylist())),
                    "hours": f"{start.isoformat()} .. {end.isoformat()}",
                }
            },
        )

    return raw


raw = build_raw(ingest_retry_policy())


# -- clean --------------------------------------------------------------------------------------


CLEAN_AUDITS = checks.clean_audits(CASE.key("clean"), DAILY)


@daily_asset(
    "clean",
    # Single run: the days of a range are cleaned together and written by the step itself.
    backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"raw": frame_input(CASE.key("raw"), load_as="arrow")},
    check_specs=check_specs(CLEAN_AUDITS),
    kinds={"polars", "parquet"},
)
def clean(context: dg.AssetExecutionContext, asset_store: AssetStore, raw):
    """Demand per respondent and UTC hour in the modelling contract `unique_id, ds, y` (MWh,
    float), sorted, with an integrity report per day: hours covered, rows, duplicate and missing
    hours, values the source left empty, implausible values. Duplicates and gaps are reported,
    not repaired: the blocking checks decide whether models may use the day."""
    from mlops_assets.demand import cleaning

    days = list(context.partition_keys)
    try:
        cleaned, reports = cleaning.clean_days(split_days(raw, days))
    except cleaning.CleanError as exc:
        raise dg.Failure(f"demand/clean: {exc}") from exc
    invalid = {d: r for d, r in reports.items() if r["status"] != "valid"}
    summary = {
        **cleaning.summarize(reports),
        "integrity": dg.MetadataValue.json(
            reports[days[0]] if len(days) == 1 else {"invalid_days": invalid}
        ),
    }
    yield from publish(
        context,
        asset_store,
        {CASE.key("clean"): cleaned},
        CLEAN_AUDITS,
        metadata={CASE.key("clean"): summary},
    )


# -- backtest -----------------------------------------------------------------------------------


@deployment_defaults(CASE.op("cv_results"))
class BacktestConfig(dg.Config):
    """The rolling-origin backtest: which models, how far ahead, over how many windows."""

    models: list[str] = Field(
        default=["seasonal_naive", "auto_arima", "holt_winters", "mstl", "gbm"],
        description="Models to compare; seasonal_naive is the baseline and always runs.",
    )
    horizon: int = Field(default=24, ge=1, le=24 * 14, description="Hours ahead.")
    n_windows: int = Field(default=3, ge=1, le=60, description="Rolling origins.")
    step_hours: int = Field(default=24, ge=1, description="Hours between origins.")
    history_days: int = Field(
        default=HISTORY_DAYS,
        ge=7,
        le=MAX_HISTORY_DAYS,
        description="Clean days the backtest reads, ending with the partition's day.",
    )
    input_hours: int | None = Field(
        default=28 * 24,
        ge=48,
        description="Training hours of the statistical models at each origin (AutoARIMA's "
        "cost grows fast with length); None = all the history.",
    )
    seed: int = Field(default=0, description="Seed of the gradient-boosting model.")


def read_clean_window(
    context: dg.AssetExecutionContext, store: AssetStore, n_days: int
) -> tuple["pd.DataFrame", dict[str, str], list[str]]:
    """The clean days ``[D - n_days + 1, D]`` as one pandas frame, their data versions and the
    days; fails, naming them, when days are missing or the window breaks the clean checks (a
    check that failed in an earlier run must still stop training now)."""
    import polars as pl

    from mlops_assets.demand import cleaning

    day = context.partition_key
    days = history_days(day, n_days)
    try:
        table, versions = store.read_partitions(CASE.key("clean"), days)
    except FileNotFoundError as exc:
        # A data error: retrying will not make the days appear (the step's network retries
        # would only delay the message by a minute).
        raise dg.Failure(
            f"{exc} (the history window is {days[0]} .. {days[-1]})", allow_retries=False
        ) from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    report = cleaning.integrity_report(
        frame, start=day_start(days[0]), end=day_start(day) + timedelta(days=1)
    )
    unfit = cleaning.unfit_to_train(report)
    if unfit is not None:
        problems, samples = unfit
        raise dg.Failure(
            f"demand/clean {days[0]} .. {days[-1]} is not fit to train on: {problems}; "
            f"e.g. {samples}. Fix or re-ingest those days (their blocking checks fail too).",
            metadata={"problems": dg.MetadataValue.json(problems)},
            allow_retries=False,
        )
    return frame.to_pandas(), versions, days


@daily_asset(
    "cv_results",
    # One run per day: each day is its own backtest on the history ending with it.
    **training_step(
        per_partition=True, deps=[CASE.key("clean")], kinds={"statsforecast", "parquet"}
    ),
)
def cv_results(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
):
    """Rolling-origin backtest of every model on every respondent over the clean history ending
    with the partition's day: one row per respondent, model, origin (`cutoff`) and forecast hour,
    with the actual `y`, the forecast `yhat` and its 80%/95% intervals. Each window's model saw
    only the hours up to its cutoff. The current champion's model is always included, so the
    promotion gate compares candidate and champion on the same windows."""
    import time

    from mlops_assets.demand import champions, forecasting, reports

    frame, versions, days = read_clean_window(context, asset_store, config.history_days)
    respondents = sorted(frame["unique_id"].unique())
    serving = champions.champion_models(mlflow, respondents)
    models = list(dict.fromkeys([forecasting.BASELINE, *config.models, *serving.values()]))
    spec = forecasting.BacktestSpec(
        horizon=config.horizon,
        n_windows=config.n_windows,
        step=config.step_hours,
        input_hours=config.input_hours,
        seed=config.seed,
    )
    started = time.perf_counter()
    try:
        results = forecasting.backtest(frame, models, spec)
    except forecasting.ForecastingError as exc:
        # The data or the settings are at fault: a retry would fail the same way.
        raise dg.Failure(f"demand/cv_results: {exc}", allow_retries=False) from exc
    context.add_output_metadata(
        {
            **reports.backtest_summary(results, models, serving, spec),
            "respondents": respondents,
            "history": f"{days[0]} .. {days[-1]}",
            "clean_data_version": storage.combined_version(versions),
            "backtest_seconds": round(time.perf_counter() - started, 2),
        }
    )
    return results


@daily_asset(
    "leaderboard",
    ins={"cv_results": frame_input(CASE.key("cv_results"), load_as="pandas")},
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    kinds={"pandas", "parquet"},
)
def leaderboard(context: dg.AssetExecutionContext, cv_results):
    """Models ranked per respondent by backtest RMSE (mean over windows), with its spread, MAE,
    MAPE and skill against the seasonal-naive baseline (1 - rmse / baseline rmse)."""
    from mlops_assets.demand import forecasting, reports

    board = forecasting.leaderboard(cv_results)
    context.add_output_metadata(reports.leaderboard_summary(board, forecasting.BASELINE))
    return board


# -- champion -----------------------------------------------------------------------------------


@deployment_defaults(CASE.op("champion"))
class ChampionConfig(RmseGainConfig):
    """The promotion gate of the demand forecasters: on the backtest's windows."""

    example_days: int = Field(
        default=28,
        ge=7,
        le=MAX_HISTORY_DAYS,
        description="Clean days (ending with the partition's day) the model's input example is "
        "cut from, at least: more are read when the winning model needs more to forecast.",
    )


def _backtest_spec(context: dg.AssetExecutionContext, day: str) -> Any:
    """The backtest settings of the day's `cv_results`, from its materialization: the champion
    forecasts with the settings it was selected with."""
    from mlops_assets.demand import forecasting

    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CASE.key("cv_results"), asset_partitions=[day]), limit=1
    ).records
    if not records:
        raise dg.Failure(
            f"demand/cv_results has no materialization for {day}: backtest first",
            allow_retries=False,
        )
    spec = records[0].asset_materialization.metadata.get("spec")
    if spec is None:
        raise dg.Failure(
            f"demand/cv_results of {day} predates its recorded spec: re-materialize it",
            allow_retries=False,
        )
    return forecasting.BacktestSpec(**spec.value)


@daily_asset(
    "champion",
    ins={"leaderboard": frame_input(CASE.key("leaderboard"), load_as="pandas")},
    **sequential_gate(deps=[CASE.key("clean")], freshness_policy=daily_freshness()),
)
def champion(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
    leaderboard,
) -> dg.MaterializeResult:
    """Per respondent, the leaderboard's best model logged to MLflow and registered as
    `demand_forecaster_<respondent>` with alias `candidate`; alias `champion` moves to it only if
    its backtest RMSE beats the current champion's on the same windows by the margin."""
    from mlops_assets.demand import champions, forecasting

    spec = _backtest_spec(context, context.partition_key)
    # At least as many days as the winning models need for their input example: a longer
    # horizon (48 h in README's example) or a longer season needs more than `example_days`.
    needed = forecasting.minimum_history_hours(
        sorted(set(leaderboard["model"])), spec, backtest=False
    )
    n_days = max(config.example_days, -(-needed // 24))
    history, versions, _ = read_clean_window(context, asset_store, n_days)
    rule = config.rule("rmse_mean")
    promotions = [
        champions.register_and_gate(
            context,
            mlflow,
            respondent,
            board,
            history[history["unique_id"] == respondent],
            spec,
            rule,
        )
        for respondent, board in leaderboard.groupby("unique_id", sort=True)
    ]
    return dg.MaterializeResult(
        metadata={
            **champions.promotions_metadata(mlflow, promotions),
            "clean_data_version": storage.combined_version(versions),
        }
    )


# -- forecasts ----------------------------------------------------------------------------------


@deployment_defaults(CASE.op("forecasts"))
class ForecastConfig(dg.Config):
    """How far ahead to forecast, from how much history."""

    horizon: int | None = Field(
        default=None,
        ge=1,
        le=24 * 14,
        description="Hours ahead; default: the horizon the champion was selected for.",
    )
    history_days: int = Field(
        default=HISTORY_DAYS,
        ge=7,
        le=MAX_HISTORY_DAYS,
        description="Clean days the champion is refit on, ending with the partition's day.",
    )


@daily_asset(
    "forecasts",
    deps=[
        CASE.key("clean"),
        # Forecasts use whichever model is champion when they run; in a backfill of the group,
        # the day's champion is decided first.
        CASE.key("champion"),
    ],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=NETWORK_RETRY,
    # Grid operators read these every morning: the 06:00 schedule keeps them within a day.
    freshness_policy=daily_freshness(),
    kinds={"mlflow", "parquet"},
)
def forecasts(
    context: dg.AssetExecutionContext,
    config: ForecastConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
):
    """Demand of the next `horizon` hours after the partition's day for each respondent: each
    champion refit on the clean history, with 80% and 95% prediction intervals; the model and
    its registry version on every row. Written all at once, so a failure keeps the previous
    forecasts."""
    from mlops_assets.demand import champions, reports

    history, versions, days = read_clean_window(context, asset_store, config.history_days)
    origin = day_start(context.partition_key) + timedelta(days=1)
    made = champions.forecast_with_champions(mlflow, history, origin, config.horizon)
    out = made.frame
    context.add_output_metadata(
        {
            "champions": dg.MetadataValue.json(made.served),
            **champion_versions_metadata(made.versions),
            "origin": origin.isoformat(),
            "hours_ahead": int(out.groupby("unique_id").size().max()),
            "history": f"{days[0]} .. {days[-1]}",
            "clean_data_version": storage.combined_version(versions),
            "plot": reports.forecast_plot(history, out),
        }
    )
    return out
