"""How the code location runs in production: schedules (ticked with Dagster's test helpers),
default statuses, retry policies, pools, backfill policies, freshness and automation conditions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mlops_assets.core.dagster_internals import AssetCheckEvaluationTargetMaterializationData
from mlops_assets.core.policies import (
    NETWORK_RETRY,
    TRAINING_POOL,
    data_error,
    last_complete_day,
)
from mlops_assets.definitions import defs
from mlops_assets.use_cases import USE_CASES

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNNING, STOPPED = dg.DefaultScheduleStatus.RUNNING, dg.DefaultScheduleStatus.STOPPED

# name: (cron, job, default status). The statuses are decisions: see each definitions.py.
SCHEDULES = {
    "fraud_daily_ingestion": ("0 1 * * *", "fraud_ingestion", RUNNING),
    "fraud_weekly_retraining": ("0 3 * * 1", "fraud_retraining", RUNNING),
    "demand_daily_schedule": ("0 6 * * *", "demand_daily", RUNNING),
    "housing_weekly_retraining": ("0 2 * * 0", "housing_training", STOPPED),
    "heart_weekly_retraining": ("0 3 * * 0", "heart_training", STOPPED),
    "athletes_weekly_refresh": ("0 4 * * 0", "athletes_refresh", STOPPED),
    "serving_monitoring_schedule": ("15 0 * * *", "serving_monitoring", RUNNING),
    "serving_input_drift_schedule": ("30 0 * * *", "serving_input_drift", RUNNING),
    "serving_rollout_comparison_schedule": ("45 0 * * *", "serving_rollout_comparison", RUNNING),
}


def _selected(job_name: str) -> set[str]:
    job = defs.resolve_job_def(job_name)
    return {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


def _tick(name: str, when: datetime) -> list[dg.RunRequest]:
    schedule = defs.resolve_schedule_def(name)
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            repository_def=defs.get_repository_def(),
        )
        return list(schedule.evaluate_tick(context).run_requests or [])


def test_every_schedule_has_its_cadence_job_and_default_status() -> None:
    found = {
        s.name: (s.cron_schedule, s.job_name, s.default_status)
        for s in (defs.resolve_schedule_def(d.name) for d in defs.schedules)
    }
    assert found == SCHEDULES
    assert all(defs.resolve_schedule_def(n).execution_timezone == "UTC" for n in SCHEDULES)


def test_every_use_case_has_a_schedule_and_every_job_resolves() -> None:
    for use_case in USE_CASES:
        assert any(name.startswith(use_case) for name in SCHEDULES), use_case
    for _, job, _ in SCHEDULES.values():
        assert _selected(job), job


def test_fraud_ingestion_runs_the_day_that_just_ended_at_one_utc() -> None:
    [request] = _tick("fraud_daily_ingestion", datetime(2024, 3, 5, 1, tzinfo=UTC))
    assert request.partition_key == "2024-03-04"
    assert defs.resolve_job_def("fraud_ingestion").tags["mlops/purpose"] == "ingestion"
    assert _selected("fraud_ingestion") == {
        "fraud/transactions",
        "fraud/labels",
        "fraud/card_features",
        "fraud/merchant_features",
        "fraud/feature_store",
    }


def test_fraud_retraining_runs_on_mondays_for_sunday() -> None:
    [request] = _tick("fraud_weekly_retraining", datetime(2024, 3, 4, 3, tzinfo=UTC))
    assert (request.partition_key, request.run_key) == ("2024-03-03", "2024-03-03")
    assert _selected("fraud_retraining") == {
        "fraud/training_set",
        "fraud/model",
        "fraud/champion",
    }
    # The job's run config is valid for the partition the schedule picked.
    job = defs.resolve_job_def("fraud_retraining")
    assert job.partitions_def is not None
    assert job.partitions_def.has_partition_key(request.partition_key)


@pytest.mark.parametrize(
    ("name", "selected"),
    [
        ("housing_weekly_retraining", {"raw", "splits", "model", "champion", "holdout_report"}),
        ("heart_weekly_retraining", {"raw", "models", "champion", "deployment_package"}),
        ("athletes_weekly_refresh", {"raw", "clean"}),
    ],
)
def test_weekly_retrainings_of_unpartitioned_use_cases(name: str, selected: set[str]) -> None:
    [request] = _tick(name, datetime(2024, 3, 3, 2, tzinfo=UTC))
    assert request.partition_key is None
    use_case = name.split("_")[0]
    assert {f"{use_case}/{asset}" for asset in selected} <= _selected(SCHEDULES[name][1])


def test_serving_monitoring_runs_after_midnight_for_the_day_before() -> None:
    [request] = _tick("serving_monitoring_schedule", datetime(2026, 3, 5, 0, 15, tzinfo=UTC))
    assert request.partition_key == "2026-03-04"


def test_last_complete_day_is_the_utc_day_before() -> None:
    assert last_complete_day(datetime(2024, 3, 1, 0, 30, tzinfo=UTC)) == "2024-02-29"
    # 23:30 in New York on March 1st is already March 2nd in UTC.
    from zoneinfo import ZoneInfo

    assert last_complete_day(datetime(2024, 3, 1, 23, 30, tzinfo=ZoneInfo("America/New_York"))) == (
        "2024-03-01"
    )


def test_sensors_and_their_targets() -> None:
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {
        "fraud_rescore_on_champion_change",
        "demand_reforecast_on_champion_change",
        "fraud_retrain_on_monitors",
        "demand_retrain_on_monitors",
        "serving_retrain_on_drift",
        "mlops_automation",
    }
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    for name, target in (
        ("fraud_rescore_on_champion_change", "fraud/scores"),
        ("demand_reforecast_on_champion_change", "demand/forecasts"),
    ):
        job = defs.get_repository_def().get_job(sensors[name].job_name)
        assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {target}
    # A failed monitor asks for its use case's retraining job (or jobs: the API's drift monitor
    # watches three use cases).
    for name, jobs in (
        ("fraud_retrain_on_monitors", {"fraud_retraining"}),
        ("demand_retrain_on_monitors", {"demand_retraining"}),
        ("serving_retrain_on_drift", {"heart_training", "housing_training", "athletes_refresh"}),
    ):
        assert {target.job_name for target in sensors[name].targets} == jobs, name


# -- policies -------------------------------------------------------------------------------------


def _ops():
    graph = defs.resolve_asset_graph()
    for key in sorted(graph.get_all_asset_keys()):
        assets_def = graph.assets_def_for_key(key)
        for op in assets_def.node_def.iterate_op_defs():
            yield key.to_user_string(), assets_def, op


def test_every_step_that_calls_a_network_service_is_retried() -> None:
    networked = {
        name: op.retry_policy
        for name, _, op in _ops()
        if op.required_resource_keys & {"mlflow", "feature_store"}
    }
    assert len(networked) >= 15
    assert all(policy == NETWORK_RETRY for policy in networked.values()), networked
    assert NETWORK_RETRY.max_retries == 3 and NETWORK_RETRY.jitter is not None


def test_data_errors_are_not_retried() -> None:
    assert data_error("fraud_classifier has no champion yet").allow_retries is False


def test_training_steps_share_one_pool() -> None:
    training = {name for name, _, op in _ops() if op.pool == TRAINING_POOL}
    assert training == {
        "fraud/model",
        "demand/cv_results",
        "housing/model",
        "heart/models",
    }


def test_every_partitioned_asset_has_a_chosen_backfill_policy() -> None:
    graph = defs.resolve_asset_graph()
    missing = [
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if (a := graph.assets_def_for_key(key)).partitions_def is not None
        and a.is_materializable
        and a.backfill_policy is None
    ]
    assert missing == []
    # The ones that write their days themselves take a range in one run (`--partition-range`).
    single = dg.BackfillPolicy.single_run()
    for key in ("fraud/transactions", "fraud/card_features", "demand/raw", "demand/clean"):
        assert graph.assets_def_for_key(dg.AssetKey.from_user_string(key)).backfill_policy == single


def test_freshness_policies_state_the_schedules_promise() -> None:
    graph = defs.resolve_asset_graph()
    fresh = {
        key.to_user_string(): spec.freshness_policy
        for key in graph.get_all_asset_keys()
        if (spec := graph.get(key)) is not None and spec.freshness_policy is not None
    }
    assert set(fresh) == {
        "fraud/feature_store",
        "fraud/champion",
        "demand/champion",
        "demand/forecasts",
        "serving/prediction_monitoring",
        "serving/input_drift",
    }
    daily = fresh["demand/forecasts"]
    assert daily.warn_window.to_timedelta() == timedelta(hours=30)
    assert daily.fail_window.to_timedelta() == timedelta(hours=54)
    assert fresh["fraud/champion"].fail_window.to_timedelta() == timedelta(days=15)


@pytest.mark.parametrize("path", ["dagster.yaml", "docker/dagster.yaml"])
def test_instances_retry_dead_workers_only_and_cap_backfills(path: str) -> None:
    config = yaml.safe_load((REPO_ROOT / path).read_text())
    retries = config["run_retries"]
    assert retries["enabled"] and retries["max_retries"] >= 1
    assert retries["retry_on_asset_or_op_failure"] is False
    runs = config["concurrency"]["runs"]
    [backfills] = [t for t in runs["tag_concurrency_limits"] if t["key"] == "dagster/backfill"]
    assert 0 < backfills["limit"] < runs["max_concurrent_runs"]
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert config["freshness"] == {"enabled": True}


# -- automation conditions -----------------------------------------------------------------------


def _athletes(*keys: str) -> list[dg.AssetKey]:
    return [dg.AssetKey(["athletes", k]) for k in keys]


def _land(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None, *, passed=True
) -> None:
    """A materialization of ``key`` and the verdicts of its blocking checks on it, as an audited
    asset's step records them (a rejected version is materialized with failed checks)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records[0]
    target = AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )
    graph = defs.resolve_asset_graph()
    # One run id per landing: the instance keeps one check execution per run and partition.
    run_id = str(uuid.uuid4())
    for check_key in graph.get_check_keys_for_assets({key}):
        evaluation = dg.AssetCheckEvaluation(
            asset_key=key,
            check_name=check_key.name,
            passed=passed,
            target_materialization_data=target,
            severity=dg.AssetCheckSeverity.ERROR,
            blocking=True,
            partition=partition,
        )
        instance.report_dagster_event(
            dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
                job_name="audited_step",
                event_specific_data=evaluation,
            ),
            run_id=run_id,
        )


def test_athletes_keep_themselves_up_to_date(tmp_path: Path) -> None:
    """Automation conditions: both feature versions follow the clean table, the champion follows
    an updated grid, and nothing runs while nothing changed."""
    selection = dg.AssetSelection.groups("athletes")
    models, clean = _athletes("models", "clean")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for version in ("v1", "v2"):
            for key in _athletes("features", "models"):
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=version))
        for key in _athletes("raw", "clean", "champion", "feature_store"):
            _land(instance, key)
        first = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection
        )
        assert first.total_requested == 0

        # A clean table rejected by its checks (quarantined, not published) triggers nothing.
        _land(instance, clean, passed=False)
        rejected = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        assert rejected.total_requested == 0

        _land(instance, clean)
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=rejected.cursor
        )
        assert result.get_requested_partitions(_athletes("features")[0]) == {"v1", "v2"}
        assert result.get_num_requested(_athletes("champion")[0]) == 0

        instance.report_runless_asset_event(dg.AssetMaterialization(models, partition="v1"))
        grid = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=result.cursor
        )
        assert grid.get_num_requested(_athletes("champion")[0]) == 1
        # The feature store follows the features, which were requested, not yet rebuilt.
        assert grid.get_num_requested(_athletes("feature_store")[0]) == 0
        assert grid.get_requested_partitions(models) == set()

        quiet = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=grid.cursor
        )
        assert quiet.total_requested == 0


def test_fraud_scores_follow_each_new_day(tmp_path: Path) -> None:
    def fraud(name: str) -> dg.AssetKey:
        return dg.AssetKey(["fraud", name])

    scores = fraud("scores")
    selection = dg.AssetSelection.assets(scores)
    now = datetime(2024, 1, 11, 2, tzinfo=UTC)  # the latest complete day is 2024-01-10
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:

        def evaluate(cursor=None, at=now):
            return dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                asset_selection=selection,
                evaluation_time=at,
                cursor=cursor,
            )

        def land(key: dg.AssetKey, day: str, passed: bool = True) -> None:
            _land(instance, key, day, passed=passed)

        first = evaluate()
        for day in ("2024-01-09", "2024-01-10"):
            for name in ("transactions", "card_features", "merchant_features"):
                land(fraud(name), day)
        # The weekly champion's last partition (2024-01-10) is missing: the day is scored anyway,
        # by whichever version is champion. Only the latest day: history is rescored by the
        # sensor or a backfill, never automatically.
        ready = evaluate(first.cursor)
        assert ready.get_requested_partitions(scores) == {"2024-01-10"}
        assert evaluate(ready.cursor).total_requested == 0

        # A new champion materialization alone requests nothing: that is the sensor's job.
        land(fraud("champion"), "2024-01-10")
        assert evaluate(ready.cursor).total_requested == 0

        # A day whose transactions were rejected by their blocking checks is not scored; once a
        # fixed version passes, it is.
        later = datetime(2024, 1, 12, 2, tzinfo=UTC)
        land(fraud("transactions"), "2024-01-11", passed=False)
        for name in ("card_features", "merchant_features"):
            land(fraud(name), "2024-01-11")
        held = evaluate(ready.cursor, at=later)
        assert held.get_requested_partitions(scores) == set()
        land(fraud("transactions"), "2024-01-11")
        assert evaluate(held.cursor, at=later).get_requested_partitions(scores) == {"2024-01-11"}
