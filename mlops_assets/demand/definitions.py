"""The demand use case for Dagster: its assets (with their checks), jobs and schedule, and the demo steps of
`mlops demo`."""

import dagster as dg

from mlops_assets.core.policies import scheduled_run_tags
from mlops_assets.core.sensors import rescore_on_champion_change
from mlops_assets.demand.assets import champion, clean, cv_results, forecasts, leaderboard, raw
from mlops_assets.demand.schema import CASE
from mlops_assets.use_cases import DemoStep

ASSETS = [raw, clean, cv_results, leaderboard, champion, forecasts]

demand_daily = dg.define_asset_job(
    "demand_daily",
    selection=dg.AssetSelection.groups(CASE.group),
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

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[demand_daily, demand_check_only],
    schedules=[demand_daily_schedule],
    sensors=[demand_reforecast],
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
