"""The serving side for Dagster: the request log source, its monitoring table, the drift of the
inputs the API's models saw, the live comparison of champion and candidate, their schedules, and
the retraining that drift requests."""

from typing import Any

import dagster as dg

from mlops_assets.core.monitoring.retraining import retrain_on_failed_monitors
from mlops_assets.core.policies import scheduled_run_tags
from mlops_assets.serving.assets import (
    INPUT_DRIFT,
    MONITORING,
    RETRAINING_JOBS,
    input_drift,
    prediction_monitoring,
    predictions_log,
)
from mlops_assets.serving.comparison import ROLLOUT_COMPARISON, rollout_comparison
from mlops_assets.use_cases import load_use_case

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

serving_input_drift = dg.define_asset_job(
    "serving_input_drift",
    selection=dg.AssetSelection.assets(INPUT_DRIFT),
    description="Drift of one day's API inputs and predictions against each served version's "
    "training data (heart, housing, athletes).",
    tags=scheduled_run_tags("monitoring"),
)

# After the monitoring table, for the same day. Running by default: a day without requests only
# reads the log; models are loaded from MLflow only for versions that answered enough requests.
serving_input_drift_schedule = dg.build_schedule_from_partitioned_job(
    serving_input_drift,
    hour_of_day=0,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

serving_rollout_comparison = dg.define_asset_job(
    "serving_rollout_comparison",
    selection=dg.AssetSelection.assets(ROLLOUT_COMPARISON),
    description="Champion against candidate on the same requests of one day (shadow or canary): "
    "agreement, score correlation and, for fraud, both PR-AUCs on the labels known so far.",
    tags=scheduled_run_tags("monitoring"),
)

# After the drift, for the same day. Running by default: a day without a rollout only reads the
# log and stores an empty table; fraud's labelled figures read the chargeback horizon's labels.
serving_rollout_comparison_schedule = dg.build_schedule_from_partitioned_job(
    serving_rollout_comparison,
    hour_of_day=0,
    minute_of_hour=45,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def _retraining_job(use_case: str, name: str) -> Any:
    """The job ``name`` as the use case's own definitions declare it (the same object, so the
    merged code location holds one job of that name)."""
    jobs = {job.name: job for job in load_use_case(use_case).defs.jobs or []}
    if name not in jobs:
        raise ValueError(f"{use_case} declares no job {name!r} (it has {sorted(jobs)})")
    return jobs[name]


# A failed `inputs_have_not_drifted` asks for the use case's retraining (at most once per
# champion version and day); the promotion gate then decides, as for a scheduled retraining.
serving_retrain_on_drift = retrain_on_failed_monitors(
    name="serving_retrain_on_drift",
    monitors=[INPUT_DRIFT],
    jobs=[_retraining_job(use_case, job) for use_case, job in sorted(RETRAINING_JOBS.items())],
)

defs = dg.Definitions(
    assets=[predictions_log, prediction_monitoring, input_drift, rollout_comparison],
    jobs=[serving_monitoring, serving_input_drift, serving_rollout_comparison],
    schedules=[
        serving_monitoring_schedule,
        serving_input_drift_schedule,
        serving_rollout_comparison_schedule,
    ],
    sensors=[serving_retrain_on_drift],
)
