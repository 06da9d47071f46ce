"""The serving side for Dagster: the request log source, its monitoring table and their schedule."""

import dagster as dg

from mlops_assets.core.policies import scheduled_run_tags
from mlops_assets.serving.assets import MONITORING, prediction_monitoring, predictions_log

serving_monitoring = dg.define_asset_job(
    "serving_monitoring",
    selection=dg.AssetSelection.assets(MONITORING),
    description="The prediction API's monitoring table of one day, from its request log.",
    tags=scheduled_run_tags("monitoring"),
)

# Shortly after midnight UTC, for the day that ended: the API ships its log every few seconds,
# so the day is complete by then. Running by default: it only reads the log, and a day without
# an API gives an empty table rather than an error.
serving_monitoring_schedule = dg.build_schedule_from_partitioned_job(
    serving_monitoring,
    hour_of_day=0,
    minute_of_hour=15,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[predictions_log, prediction_monitoring],
    jobs=[serving_monitoring],
    schedules=[serving_monitoring_schedule],
)
