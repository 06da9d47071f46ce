"""The demand use case for Dagster: its assets (with their checks), jobs, schedule and sensors, and
the demo steps of `mlops demo`."""

import dagster as dg

from mlops_assets.core.monitoring.retraining import retrain_on_failed_monitors
from mlops_assets.core.policies import scheduled_run_tags
from mlops_assets.core.sensors import rescore_on_champion_change
from mlops_assets.demand.assets import champion, clean, cv_results, forecasts, leaderboard, raw
from mlops_assets.demand.monitors import ACCURACY, RETRAINING_JOB, forecast_accuracy
from mlops_assets.demand.schema import CASE
from mlops_assets.use_cases import DemoStep

ASSETS = [raw, clean, cv_results, leaderboard, champion, forecasts, forecast_accuracy]

demand_daily = dg.define_asset_job(
    "demand_daily",
    # The monitor is not part of the day's pipeline: it judges the forecasts published the days
    # before, and its automation condition runs it as soon as this job publishes the clean day.
    selection=dg.AssetSelection.groups(CASE.group) - dg.AssetSelection.assets(ACCURACY),
    description="One UTC day of demand: ingest, clean and validate it, backtest every model, "
    "promote the champions and publish the forecasts that follow the day.",
    tags=scheduled_run_tags("daily"),
)

# The seed's `--check-only`: ingest, clean and validate, no training.
demand_check_only = dg.define_asset_job(
    "demand_check_only",
    selection=dg.AssetSelection.assets(CASE.key("raw"), CASE.key("clean")),
    description="Ingest, clean and validate demand days without training or forecasting.",
)

# 06:00 UTC: the previous UTC day is complete and the EIA has published most of it. The schedule
# runs the day that just ended (the last complete partition). Running by default: forecasts are
# the product, and the promotion gate keeps a worse model from serving.
demand_daily_schedule = dg.build_schedule_from_partitioned_job(
    demand_daily,
    hour_of_day=6,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# The daily job promotes and then forecasts, so its forecasts are never stale; a champion moved
# outside it (a rollback in the MLflow UI) leaves the latest forecasts made by another model.
demand_reforecast = rescore_on_champion_change(
    name="demand_reforecast_on_champion_change", target=CASE.key("forecasts")
)

# What a failed `champion_performs_as_validated` asks for: the backtest, leaderboard, promotion
# gate and forecasts of the evaluated day. One job for every respondent (the backtest compares
# all of them in one call), so the monitor asks for it once per day, not once per respondent.
demand_retraining = dg.define_asset_job(
    RETRAINING_JOB,
    selection=dg.AssetSelection.assets(
        *(CASE.key(name) for name in ("cv_results", "leaderboard", "champion", "forecasts"))
    ),
    description="Backtest every model on the history ending with the day, let the promotion "
    "gate decide each respondent's champion, and forecast the hours that follow the day.",
    tags=scheduled_run_tags("retraining"),
)

# Closes the loop: a forecast_accuracy materialization whose check failed carries the trigger,
# and this sensor requests the retraining it names, at most once per champion version and day.
demand_retrain_on_monitors = retrain_on_failed_monitors(
    name="demand_retrain_on_monitors", monitors=[ACCURACY], jobs=[demand_retraining]
)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[demand_daily, demand_check_only, demand_retraining],
    schedules=[demand_daily_schedule],
    sensors=[demand_reforecast, demand_retrain_on_monitors],
)

# What `mlops demo` runs, as the seed's CLI does: eight weeks of demand ingested, cleaned and
# validated in one single-run backfill (`--start-date/--end-date`), then the backtest, champions
# and forecasts as of the last day.
DEMO_FIRST_DAY, DEMO_LAST_DAY = "2024-05-01", "2024-06-25"
demo = [
    DemoStep(
        select="demand/raw,demand/clean",
        partition_range=f"{DEMO_FIRST_DAY}...{DEMO_LAST_DAY}",
    ),
    DemoStep(
        select="demand/cv_results,demand/leaderboard,demand/champion,demand/forecasts",
        partition=DEMO_LAST_DAY,
    ),
]
