"""The fraud use case for Dagster: its assets (with their checks), jobs, schedules and sensors, and the
demo steps of `mlops demo`."""

import dagster as dg

from mlops_assets.core.monitoring.retraining import retrain_on_failed_monitors
from mlops_assets.core.policies import last_complete_day, scheduled_run_tags
from mlops_assets.core.sensors import rescore_on_champion_change
from mlops_assets.fraud.assets import (
    bronze,
    card_features,
    champion,
    fraud_feature_store,
    merchant_features,
    model,
    scores,
    training_set,
)
from mlops_assets.fraud.monitors import (
    MONITORS,
    RETRAINING_JOB,
    input_drift,
    live_performance,
)
from mlops_assets.fraud.schema import CASE
from mlops_assets.use_cases import DemoStep

ASSETS = [
    bronze,
    card_features,
    merchant_features,
    fraud_feature_store,
    training_set,
    model,
    champion,
    scores,
    live_performance,
    input_drift,
]

fraud_daily = dg.define_asset_job(
    "fraud_daily",
    selection=dg.AssetSelection.groups(CASE.group),
    description="Every fraud asset for one day: bronze, features, Feast, training set, models, "
    "champion, scores and the champion's monitors.",
)

INGESTION = [
    CASE.key(name)
    for name in ("transactions", "labels", "card_features", "merchant_features", "feature_store")
]
RETRAINING = [CASE.key(name) for name in ("training_set", "model", "champion")]

fraud_ingestion = dg.define_asset_job(
    "fraud_ingestion",
    selection=dg.AssetSelection.assets(*INGESTION),
    description="One day of payments and labels, the card and merchant snapshots, and their load "
    "into Feast's online store.",
    tags=scheduled_run_tags("ingestion"),
)

fraud_retraining = dg.define_asset_job(
    RETRAINING_JOB,
    selection=dg.AssetSelection.assets(*RETRAINING),
    description="The training set of a day's window, the candidate models and the promotion gate.",
    tags=scheduled_run_tags("retraining"),
)

# 01:00 UTC: the day that just ended is complete. Running by default: the API serves these
# snapshots, so a deployment without this schedule serves ever older features.
fraud_ingestion_schedule = dg.build_schedule_from_partitioned_job(
    fraud_ingestion,
    name="fraud_daily_ingestion",
    hour_of_day=1,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.schedule(
    name="fraud_weekly_retraining",
    job=fraud_retraining,
    # Mondays 03:00 UTC, two hours after the ingestion of Sunday.
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    # Running by default: only the promotion gate moves the champion, so a retraining that
    # finds nothing better changes nothing that serves.
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retrains on the window ending the day before and lets the promotion gate decide.",
)
def fraud_weekly_retraining(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = last_complete_day(context.scheduled_execution_time)
    return dg.RunRequest(run_key=day, partition_key=day)


# A promotion by the weekly retraining, or a rollback in the MLflow UI, leaves the latest scores
# made by another model; fraud/scores' automation condition only follows new days of data.
fraud_rescore = rescore_on_champion_change(
    name="fraud_rescore_on_champion_change", target=CASE.key("scores")
)

# A failed monitor (the champion's live PR-AUC below its validation, or its inputs drifted from its
# training set) requests the retraining of its day, at most once per champion version and day.
# Running by default: a retraining only proposes a candidate, and the promotion gate still
# decides whether it replaces the champion, as for the weekly one; without it a failed check
# changes nothing.
fraud_retrain_on_monitors = retrain_on_failed_monitors(
    name="fraud_retrain_on_monitors", monitors=MONITORS, jobs=[fraud_retraining]
)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[fraud_daily, fraud_ingestion, fraud_retraining],
    schedules=[fraud_ingestion_schedule, fraud_weekly_retraining],
    sensors=[fraud_rescore, fraud_retrain_on_monitors],
)

# What `mlops demo` runs: three weeks of bronze and features in one single-run backfill, the
# training set, models, champion and scores of the last day; then one monitored week with the
# drift scenario: from DEMO_DRIFT_FROM on, account takeover appears and prices rise. Each day of
# the week is scored by that champion; the monitors of the week's last day judge it (its live
# PR-AUC over the week, with 2-day chargebacks, and its inputs against its training set), fail,
# and record the retraining they ask for; the last step is one tick of the sensor
# `fraud_retrain_on_monitors`, as the daemon would make it: it requests that retraining
# (`fraud_retraining` for the week's last day, tagged with the trigger, `mlops/trigger_*`), the
# run executes there and then, and the gate promotes the model that learned the new pattern.
# Small volumes keep it quick.
DEMO_FIRST_DAY, DEMO_LAST_DAY = "2024-01-01", "2024-01-22"
DEMO_DRIFT_FROM, DEMO_WEEK_END = "2024-01-23", "2024-01-29"
DEMO_BRONZE = {
    "n_cards": 5_000,
    "n_merchants": 500,
    "tx_per_day": 4_000,
    "fraud_rate": 0.02,
    # Chargebacks within 2 days: a day's labels are final when the week's monitors judge it.
    "max_chargeback_days": 2,
    "drift_from": DEMO_DRIFT_FROM,
}
# The deployment settings `mlops demo` writes to `mlops.yaml` (when there is none): every later
# run, from the UI or the CLI, generates the same population (drift included), and trains on
# days whose labels are final, 2 days after the payment.
demo_run_config = {
    "bronze": {"config": DEMO_BRONZE},
    CASE.op("training_set"): {"config": {"maturity_days": 2}},
}
demo = [
    DemoStep(
        select="fraud/transactions,fraud/labels,fraud/card_features,fraud/merchant_features,"
        "fraud/feature_store",
        partition_range=f"{DEMO_FIRST_DAY}...{DEMO_WEEK_END}",
    ),
    DemoStep(
        select="fraud/training_set,fraud/model,fraud/champion,fraud/scores",
        partition=DEMO_LAST_DAY,
    ),
    # The week scored in one run (`fraud/scores` takes a range), then judged on its last day.
    DemoStep(select="fraud/scores", partition_range=f"{DEMO_DRIFT_FROM}...{DEMO_WEEK_END}"),
    DemoStep(select="fraud/live_performance,fraud/input_drift", partition=DEMO_WEEK_END),
    DemoStep(sensor="fraud_retrain_on_monitors"),
]
