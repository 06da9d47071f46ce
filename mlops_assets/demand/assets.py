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

# No `from __future__ import annotations`: Dagster reads the annotations of `context` and inputs.
import os
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from mlops_assets.core.io_managers import ParquetIOManager, frame_input
from mlops_assets.core.policies import (
    NETWORK_RETRY,
    SOURCE_API_POOL,
    TRAINING_POOL,
    daily_freshness,
    data_error,
)
from mlops_assets.core.publishing import check_specs, publish
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.sensors import champion_versions_metadata
from mlops_assets.core.tracking import CANDIDATE, CHAMPION, MlflowTracking
from mlops_assets.demand import checks, schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

GROUP = schema.USE_CASE
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


def demand_key(name: str) -> dg.AssetKey:
    """The key of demand asset `name`: `demand/<name>`, stored at `<root>/demand/<name>/`."""
    return dg.AssetKey([schema.USE_CASE, name])


def model_name(respondent: str) -> str:
    """The registered MLflow model of a respondent's forecaster: `demand_forecaster_ciso`."""
    return f"demand_forecaster_{respondent.lower()}"


def _day_start(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def history_days(day: str, n: int) -> list[str]:
    """The ``n`` UTC days ending with ``day``, oldest first."""
    last = date.fromisoformat(day)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(n - 1, -1, -1)]


# -- raw ----------------------------------------------------------------------------------------


@deployment_defaults("demand__raw")
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
    if config.source == "generator":
        from mlops_assets.demand import generator

        return generator.generate(
            start.date(),
            end.date(),
            generator.GeneratorConfig(
                respondents=tuple(config.respondents), noise=config.noise, seed=config.seed
            ),
        )
    if config.source == "files":
        from mlops_assets.demand import sources

        if not config.files_root:
            raise dg.Failure(
                "demand/raw: source='files' needs files_root (the folder of your files)",
                allow_retries=False,
            )
        try:
            read = sources.read_files(
                config.files_root, config.respondents, start.date(), end.date()
            )
        except sources.FilesError as exc:
            # Nothing is written: the whole range is read and checked before any day is staged.
            # Not retried: a bad or missing file fails the same way until it is fixed.
            raise dg.Failure(f"demand/raw: {exc}", allow_retries=False) from exc
        log = dg.get_dagster_logger()
        if read.extra_columns:
            log.warning(
                f"demand/raw: ignored columns not in the contract: {list(read.extra_columns)}"
            )
        if read.ignored_rows:
            log.warning(
                f"demand/raw: ignored rows of respondents not asked for: {read.ignored_rows}"
            )
        return read.table
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


def _split_days(table: "pa.Table", days: list[str]) -> dict[str, "pa.Table"]:
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return {
        day: frame.filter(pl.col("period").dt.date() == date.fromisoformat(day)).to_arrow()
        for day in days
    }


RAW_AUDITS = checks.raw_audits(demand_key("raw"), DAILY)


def build_raw(retry_policy: dg.RetryPolicy | None) -> dg.AssetsDefinition:
    """The ``raw`` asset with a given step retry policy (tests use seconds, not minutes)."""

    @dg.asset(
        key=demand_key("raw"),
        partitions_def=DAILY,
        group_name=GROUP,
        # Single run: a range is fetched with one paginated request per respondent instead of
        # one per day, then split into days and written by the step itself.
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy,
        # EIA rate-limits each key: one ingest at a time, whatever number of runs are queued.
        pool=SOURCE_API_POOL,
        required_resource_keys={"io_manager"},
        check_specs=check_specs(RAW_AUDITS),
        kinds={"parquet"},
    )
    def raw(context: dg.AssetExecutionContext, config: RawConfig):
        """Hourly demand (type D) of each respondent as the source reported it: one row per
        respondent and UTC hour, the value kept as the text the source sent (bronze). Each day
        is published only when its blocking checks pass on it."""
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        table = _fetch(config, start, end)
        days = list(context.partition_keys)
        yield from publish(
            context,
            {demand_key("raw"): _split_days(table, days)},
            RAW_AUDITS,
            metadata={
                demand_key("raw"): {
                    "source": config.source,
                    "respondents": sorted(set(table.column("respondent").to_pylist())),
                    "hours": f"{start.isoformat()} .. {end.isoformat()}",
                }
            },
        )

    return raw


raw = build_raw(ingest_retry_policy())


# -- clean --------------------------------------------------------------------------------------


CLEAN_AUDITS = checks.clean_audits(demand_key("clean"), DAILY)


@dg.asset(
    key=demand_key("clean"),
    partitions_def=DAILY,
    group_name=GROUP,
    # Single run: the days of a range are cleaned together and written by the step itself.
    backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"raw": frame_input(demand_key("raw"), load_as="arrow")},
    required_resource_keys={"io_manager"},
    check_specs=check_specs(CLEAN_AUDITS),
    kinds={"polars", "parquet"},
)
def clean(context: dg.AssetExecutionContext, raw):
    """Demand per respondent and UTC hour in the modelling contract `unique_id, ds, y` (MWh,
    float), sorted, with an integrity report per day: hours covered, rows, duplicate and missing
    hours, values the source left empty, implausible values. Duplicates and gaps are reported,
    not repaired: the blocking checks decide whether models may use the day."""
    from mlops_assets.demand import cleaning

    days = list(context.partition_keys)
    by_day = _split_days(raw, days)
    cleaned, reports = {}, {}
    try:
        for day, table in by_day.items():
            start = _day_start(day)
            cleaned[day], reports[day] = cleaning.to_clean(
                table, start=start, end=start + timedelta(days=1)
            )
    except cleaning.CleanError as exc:
        raise dg.Failure(f"demand/clean: {exc}") from exc
    invalid = {d: r for d, r in reports.items() if r["status"] != "valid"}
    summary = {
        **_report_summary(reports),
        "integrity": dg.MetadataValue.json(
            reports[days[0]] if len(days) == 1 else {"invalid_days": invalid}
        ),
    }
    yield from publish(
        context,
        {demand_key("clean"): cleaned},
        CLEAN_AUDITS,
        metadata={demand_key("clean"): summary},
    )


def _report_summary(reports: dict[str, dict]) -> dict[str, Any]:
    counts = ("duplicate_hours", "missing_hours", "null_values", "implausible_values")
    first = min((r["first_hour"] for r in reports.values() if r["first_hour"]), default=None)
    last = max((r["last_hour"] for r in reports.values() if r["last_hour"]), default=None)
    return {
        "status": "valid" if all(r["status"] == "valid" for r in reports.values()) else "invalid",
        "date_range": f"{first} .. {last}",
        **{name: sum(r[name] for r in reports.values()) for name in counts},
    }


# -- backtest -----------------------------------------------------------------------------------


@deployment_defaults("demand__cv_results")
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
    context: dg.AssetExecutionContext, io: ParquetIOManager, n_days: int
) -> tuple["pd.DataFrame", dict[str, str], list[str]]:
    """The clean days ``[D - n_days + 1, D]`` as one pandas frame, their data versions and the
    days; fails, naming them, when days are missing or the window breaks the clean checks (a
    check that failed in an earlier run must still stop training now)."""
    import polars as pl

    from mlops_assets.demand import cleaning

    day = context.partition_key
    days = history_days(day, n_days)
    try:
        table, versions = io.read_partitions(demand_key("clean"), days)
    except FileNotFoundError as exc:
        # A data error: retrying will not make the days appear (the step's network retries
        # would only delay the message by a minute).
        raise dg.Failure(
            f"{exc} (the history window is {days[0]} .. {days[-1]})", allow_retries=False
        ) from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    report = cleaning.integrity_report(
        frame, start=_day_start(days[0]), end=_day_start(day) + timedelta(days=1)
    )
    if report["status"] != "valid":
        problems = {
            k: report[k]
            for k in ("duplicate_hours", "missing_hours", "implausible_values")
            if report[k]
        }
        samples = {
            k: report[k]
            for k in ("duplicate_samples", "missing_samples", "implausible_samples")
            if report[k]
        }
        raise dg.Failure(
            f"demand/clean {days[0]} .. {days[-1]} is not fit to train on: {problems}; "
            f"e.g. {samples}. Fix or re-ingest those days (their blocking checks fail too).",
            metadata={"problems": dg.MetadataValue.json(problems)},
            allow_retries=False,
        )
    return frame.to_pandas(), versions, days


def _combined_version(versions: dict[str, str]) -> str:
    import hashlib

    joined = "\n".join(f"{k}:{v}" for k, v in sorted(versions.items()))
    return hashlib.sha256(joined.encode()).hexdigest()


def _champion_models(mlflow: MlflowTracking, respondents: list[str]) -> dict[str, str]:
    """The model kind serving as champion of each respondent that has one."""
    kinds = {}
    for respondent in respondents:
        version = mlflow.get_version_by_alias(model_name(respondent), CHAMPION)
        if version is not None and version.tags.get("model"):
            kinds[respondent] = version.tags["model"]
    return kinds


@dg.asset(
    key=demand_key("cv_results"),
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[demand_key("clean")],
    required_resource_keys={"io_manager", "mlflow"},
    # One run per day: each day is its own backtest on the history ending with it.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    pool=TRAINING_POOL,
    retry_policy=NETWORK_RETRY,
    kinds={"statsforecast", "parquet"},
)
def cv_results(context: dg.AssetExecutionContext, config: BacktestConfig):
    """Rolling-origin backtest of every model on every respondent over the clean history ending
    with the partition's day: one row per respondent, model, origin (`cutoff`) and forecast hour,
    with the actual `y`, the forecast `yhat` and its 80%/95% intervals. Each window's model saw
    only the hours up to its cutoff. The current champion's model is always included, so the
    promotion gate compares candidate and champion on the same windows."""
    import dataclasses
    import time

    from mlops_assets.demand import forecasting

    io: ParquetIOManager = context.resources.io_manager
    frame, versions, days = read_clean_window(context, io, config.history_days)
    respondents = sorted(frame["unique_id"].unique())
    champions = _champion_models(context.resources.mlflow, respondents)
    models = list(dict.fromkeys([forecasting.BASELINE, *config.models, *champions.values()]))
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
    cutoffs = sorted({c.isoformat() for c in results["cutoff"]})
    context.add_output_metadata(
        {
            "models": models,
            "champion_models": dg.MetadataValue.json(champions),
            "respondents": respondents,
            "cutoffs": cutoffs,
            "horizon": config.horizon,
            "spec": dg.MetadataValue.json(dataclasses.asdict(spec)),
            "history": f"{days[0]} .. {days[-1]}",
            "clean_data_version": _combined_version(versions),
            "backtest_seconds": round(time.perf_counter() - started, 2),
            # Seconds and captured library warnings (e.g. ARIMA convergence) per model.
            "diagnostics": dg.MetadataValue.json(
                {
                    model: {k: v for k, v in notes.items() if k in ("seconds", "warnings")}
                    for model, notes in results.attrs.get("diagnostics", {}).items()
                }
            ),
        }
    )
    return results


@dg.asset(
    key=demand_key("leaderboard"),
    partitions_def=DAILY,
    group_name=GROUP,
    ins={"cv_results": frame_input(demand_key("cv_results"), load_as="pandas")},
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    kinds={"pandas", "parquet"},
)
def leaderboard(context: dg.AssetExecutionContext, cv_results):
    """Models ranked per respondent by backtest RMSE (mean over windows), with its spread, MAE,
    MAPE and skill against the seasonal-naive baseline (1 - rmse / baseline rmse)."""
    from mlops_assets.core import reporting
    from mlops_assets.demand import forecasting

    board = forecasting.leaderboard(cv_results)
    best = board[board["rank"] == 1]
    shown = ["unique_id", "model", "rmse_mean", "rmse_std", "mae_mean", "mape_mean"]
    shown += ["skill_vs_baseline", "rank"]
    rows = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in board[shown].to_dict("records")
    ]
    context.add_output_metadata(
        {
            "best_model": dg.MetadataValue.json(
                dict(zip(best["unique_id"], best["model"], strict=True))
            ),
            "respondents_beating_baseline": int((best["model"] != forecasting.BASELINE).sum()),
            "leaderboard": dg.MetadataValue.md(reporting.markdown_table(rows, shown)),
        }
    )
    return board


# -- champion -----------------------------------------------------------------------------------


@deployment_defaults("demand__champion")
class ChampionConfig(dg.Config):
    """The promotion gate of the demand forecasters."""

    min_rmse_gain_pct: float = Field(
        default=1.0,
        ge=0,
        description="The candidate's backtest RMSE must be lower than the champion's by more "
        "than this percentage of the champion's RMSE.",
    )
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
        dg.AssetRecordsFilter(asset_key=demand_key("cv_results"), asset_partitions=[day]), limit=1
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


_METRICS = ("rmse_mean", "rmse_std", "mae_mean", "mape_mean", "skill_vs_baseline")


def _row_metrics(row: "pd.Series") -> dict[str, float]:
    return {m: float(row[m]) for m in _METRICS}


@dg.asset(
    key=demand_key("champion"),
    partitions_def=DAILY,
    group_name=GROUP,
    ins={"leaderboard": frame_input(demand_key("leaderboard"), load_as="pandas")},
    deps=[demand_key("clean")],
    required_resource_keys={"io_manager", "mlflow"},
    # Promotions are decided one day after the other, in order, never as a batch.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=NETWORK_RETRY,
    freshness_policy=daily_freshness(),
    kinds={"mlflow"},
)
def champion(
    context: dg.AssetExecutionContext, config: ChampionConfig, leaderboard
) -> dg.MaterializeResult:
    """Per respondent, the leaderboard's best model logged to MLflow and registered as
    `demand_forecaster_<respondent>` with alias `candidate`; alias `champion` moves to it only if
    its backtest RMSE beats the current champion's on the same windows by the margin."""
    from mlops_assets.core import evaluation, reporting
    from mlops_assets.demand import forecaster, forecasting

    day = context.partition_key
    mlflow: MlflowTracking = context.resources.mlflow
    spec = _backtest_spec(context, day)
    # At least as many days as the winning models need for their input example: a longer
    # horizon (48 h in README's example) or a longer season needs more than `example_days`.
    needed = forecasting.minimum_history_hours(
        sorted(set(leaderboard["model"])), spec, backtest=False
    )
    history, versions, _ = read_clean_window(
        context, context.resources.io_manager, max(config.example_days, -(-needed // 24))
    )
    decisions = []
    for respondent, board in leaderboard.groupby("unique_id", sort=True):
        board = board.sort_values("rank")
        best = board.iloc[0]
        name = model_name(respondent)
        with mlflow.start_run(
            context,
            use_case=schema.USE_CASE,
            run_name=f"{respondent}-{best['model']}-{day}",
            tags={"respondent": respondent, "model": best["model"]},
        ) as run:
            run.log_params(
                {
                    "respondent": respondent,
                    "model": best["model"],
                    "horizon": spec.horizon,
                    "n_windows": int(best["n_windows"]),
                    "models_compared": ",".join(board["model"]),
                }
            )
            run.log_metrics(
                {
                    **_row_metrics(best),
                    **{
                        f"rmse_mean.{r['model']}": float(r["rmse_mean"])
                        for _, r in board.iterrows()
                    },
                }
            )
            example = history[history["unique_id"] == respondent]
            try:
                signature, input_example = forecaster.signature_and_example(
                    example, spec, model=best["model"]
                )
            except forecasting.ForecastingError as exc:
                raise dg.Failure(
                    f"demand/champion {respondent}: {exc}",
                    allow_retries=False,
                ) from exc
            info = run.log_model(
                forecaster.DemandForecaster(best["model"], spec),
                name="forecaster",
                input_example=input_example,
                signature=signature,
                flavor="pyfunc",
                pip_requirements=forecaster.pip_requirements(),
            )
        version = mlflow.register(
            info, name, alias=CANDIDATE, tags={"model": best["model"], "respondent": respondent}
        )
        current = mlflow.get_version_by_alias(name, CHAMPION)
        champion_metrics = None
        if current is not None:
            row = board[board["model"] == current.tags.get("model")]
            champion_metrics = _row_metrics(row.iloc[0]) if len(row) else None
        rule = evaluation.PromotionRule(
            metric="rmse_mean",
            higher_is_better=False,
            min_relative_improvement=config.min_rmse_gain_pct / 100,
        )
        decision = mlflow.promote(
            name,
            version.version,
            rule,
            candidate_metrics=_row_metrics(best),
            champion_metrics=champion_metrics,
            compared_with=current.version if current is not None else None,
        )
        serving = mlflow.get_version_by_alias(name, CHAMPION)
        decisions.append(
            {
                "respondent": respondent,
                "candidate": f"v{version.version} {best['model']}",
                "candidate_rmse": round(float(best["rmse_mean"]), 3),
                "champion_before": f"v{current.version} {current.tags.get('model')}"
                if current
                else "none",
                "promoted": decision.promote,
                "champion": f"v{serving.version} {serving.tags.get('model')}"
                if serving
                else "none",
                "reason": decision.reason,
                "mlflow_run": run.run_id,
            }
        )
    columns = list(decisions[0])
    return dg.MaterializeResult(
        metadata={
            "promoted": sum(d["promoted"] for d in decisions),
            "champions": dg.MetadataValue.json({d["respondent"]: d["champion"] for d in decisions}),
            "decisions": dg.MetadataValue.md(reporting.markdown_table(decisions, columns)),
            "mlflow_runs": dg.MetadataValue.json(
                {d["respondent"]: mlflow.run_url(d["mlflow_run"]) for d in decisions}
            ),
            "clean_data_version": _combined_version(versions),
        }
    )


# -- forecasts ----------------------------------------------------------------------------------


@deployment_defaults("demand__forecasts")
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


@dg.asset(
    key=demand_key("forecasts"),
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[
        demand_key("clean"),
        # Forecasts use whichever model is champion when they run; in a backfill of the group,
        # the day's champion is decided first.
        demand_key("champion"),
    ],
    required_resource_keys={"io_manager", "mlflow"},
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=NETWORK_RETRY,
    # Grid operators read these every morning: the 06:00 schedule keeps them within a day.
    freshness_policy=daily_freshness(),
    kinds={"mlflow", "parquet"},
)
def forecasts(context: dg.AssetExecutionContext, config: ForecastConfig):
    """Demand of the next `horizon` hours after the partition's day for each respondent: each
    champion refit on the clean history, with 80% and 95% prediction intervals; the model and
    its registry version on every row. Written all at once, so a failure keeps the previous
    forecasts."""
    import pandas as pd

    from mlops_assets.core import reporting
    from mlops_assets.demand import forecasting

    mlflow: MlflowTracking = context.resources.mlflow
    io: ParquetIOManager = context.resources.io_manager
    history, versions, days = read_clean_window(context, io, config.history_days)
    origin = _day_start(context.partition_key) + timedelta(days=1)
    frames, served, used = [], {}, {}
    for respondent, series in history.groupby("unique_id", sort=True):
        last = series["ds"].max()
        if last != pd.Timestamp(origin - timedelta(hours=1)):
            raise dg.Failure(
                f"demand/clean of {respondent} ends at {last.isoformat()}, not at the last "
                f"hour of {context.partition_key}: forecasts start at {origin.isoformat()}",
                allow_retries=False,
            )
        name = model_name(respondent)
        version = mlflow.get_version_by_alias(name, CHAMPION)
        if version is None:
            raise data_error(
                f"{name} has no champion yet: materialize demand/champion for {respondent} first"
            )
        # By version, not alias: the alias may move between the look-up and the download.
        model = mlflow.load_model_version(name, version.version, flavor="pyfunc")
        horizon = config.horizon
        params = {"horizon": horizon} if horizon else None
        try:
            frame = model.predict(series.reset_index(drop=True), params=params)
        except forecasting.ForecastingError as exc:
            raise dg.Failure(f"demand/forecasts {respondent}: {exc}", allow_retries=False) from exc
        frames.append(
            frame.assign(
                model=version.tags.get("model", ""),
                model_name=name,
                model_version=str(version.version),
                issued_at=pd.Timestamp(origin),
            )
        )
        served[respondent] = f"v{version.version} {version.tags.get('model', '')}"
        used[name] = str(version.version)
    out = pd.concat(frames, ignore_index=True).sort_values(["unique_id", "ds"], ignore_index=True)
    context.add_output_metadata(
        {
            "champions": dg.MetadataValue.json(served),
            **champion_versions_metadata(used),
            "origin": origin.isoformat(),
            "hours_ahead": int(out.groupby("unique_id").size().max()),
            "history": f"{days[0]} .. {days[-1]}",
            "clean_data_version": _combined_version(versions),
            "plot": reporting.figure_markdown(
                _forecast_figure(history, out), alt="Last week and the forecast"
            ),
        }
    )
    return out


def _forecast_figure(history: "pd.DataFrame", forecast: "pd.DataFrame") -> Any:
    """The last week of each respondent and its forecast with the 80%/95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = sorted(forecast["unique_id"].unique())
    figure, axes = plt.subplots(len(ids), 1, figsize=(8, 2.2 * len(ids)), squeeze=False)
    for ax, uid in zip(axes[:, 0], ids, strict=True):
        past = history[history["unique_id"] == uid].tail(7 * 24)
        ahead = forecast[forecast["unique_id"] == uid]
        ax.plot(past["ds"], past["y"], color="black", linewidth=0.8, label="actual")
        ax.fill_between(ahead["ds"], ahead["yhat_lo_95"], ahead["yhat_hi_95"], alpha=0.2)
        ax.fill_between(ahead["ds"], ahead["yhat_lo_80"], ahead["yhat_hi_80"], alpha=0.3)
        ax.plot(ahead["ds"], ahead["yhat"], color="tab:blue", label="forecast")
        ax.set_title(f"{uid} ({ahead['model'].iloc[0]} v{ahead['model_version'].iloc[0]})")
        ax.set_ylabel("MWh")
    figure.tight_layout()
    return figure
