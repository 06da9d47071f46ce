"""The retraining sensor, against a real Dagster instance: daily monitors recording (or not) the
triggers of their failed verdicts, and the runs the sensor requests from them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.core.monitoring.retraining import (
    RETRAINING_TRIGGER,
    recorded_triggers,
    retrain_on_failed_monitors,
    trigger_metadata,
    triggers_to_request,
)
from mlops_assets.core.monitoring.verdicts import Trigger, performance_verdict

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
MODEL = "uc_model"
PERFORMANCE_CHECK = "champion_performs_as_validated"
DRIFT_CHECK = "inputs_have_not_drifted"


@dg.asset(key=["uc", "model"], partitions_def=DAILY)
def uc_model() -> None:
    """What retraining materializes (nothing here: the sensor only requests it)."""


RETRAINING = dg.define_asset_job("uc_retraining", selection=[uc_model], partitions_def=DAILY)


@dg.op
def _refit() -> None:
    pass


@dg.job
def uc_weekly_retraining() -> None:
    """An unpartitioned retraining job (the housing and athletes kind)."""
    _refit()


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """One instance for the module (creating one takes about a second); each test watches
    monitors of its own, so no test sees another's records. Runs are queued, as in both
    deployments, and never launched: the tests count requests, not trainings."""
    queued = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    with dg.instance_for_test(overrides={"run_coordinator": queued}) as instance:
        yield instance


class Monitors:
    """A use case's two daily monitors (performance and drift), as one test's own asset keys, with
    the sensor over them."""

    def __init__(self, instance: dg.DagsterInstance, prefix: str) -> None:
        self.instance = instance
        self.performance = dg.AssetKey([prefix, "live_performance"])
        self.drift = dg.AssetKey([prefix, "drift"])

    def sensor(self, **kwargs) -> dg.SensorDefinition:
        return retrain_on_failed_monitors(
            name="uc_retrain_on_failed_monitors",
            monitors=[self.performance, self.drift],
            jobs=[RETRAINING, uc_weekly_retraining],
            **kwargs,
        )

    def trigger(self, day: str, *, check: str = PERFORMANCE_CHECK, **kwargs) -> Trigger | None:
        key = self.performance if check == PERFORMANCE_CHECK else self.drift
        return _trigger(day, check=check, asset=key.to_user_string(), **kwargs)

    def record(
        self,
        key: dg.AssetKey,
        day: str,
        triggers: Sequence[Trigger | None] = (),
        metadata: dict | None = None,
    ) -> int:
        """A materialization of monitor ``key`` for ``day`` with the metadata a monitor records;
        its storage id. Reported without a run: the sensor reads the same record, in a fraction
        of the time (one test materializes for real)."""
        found = [t for t in triggers if t is not None]
        self.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=key,
                partition=day,
                metadata={**trigger_metadata(found), **(metadata or {})},
            )
        )
        return self.latest(key)

    def latest(self, key: dg.AssetKey) -> int:
        return self.instance.fetch_materializations(key, limit=1).records[0].storage_id

    def tick(
        self, sensor: dg.SensorDefinition, cursor: str | None
    ) -> tuple[list[dg.RunRequest], str | None, str | None]:
        """One evaluation, as the daemon makes it: requests, new cursor, skip message."""
        definitions = dg.Definitions(
            assets=[uc_model, _stub(self.performance), _stub(self.drift)],
            jobs=[RETRAINING, uc_weekly_retraining],
            sensors=[sensor],
        )
        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor, definitions=definitions
        )
        result = sensor.evaluate_tick(context)
        return list(result.run_requests or []), result.cursor, result.skip_message


def _stub(key: dg.AssetKey | Sequence[str]) -> dg.AssetsDefinition:
    @dg.asset(key=key, partitions_def=DAILY)
    def _monitor() -> None:
        """The monitor as the code location declares it."""

    return _monitor


def _trigger(
    day: str,
    *,
    version: str = "1",
    check: str = PERFORMANCE_CHECK,
    asset: str = "uc/live_performance",
    live: float = 0.5,
    labelled_rows: int = 500,
    job: str = "uc_retraining",
) -> Trigger | None:
    """The trigger of a day's verdict, as a monitor builds it (None: nothing to retrain)."""
    verdict = performance_verdict(
        metric="pr_auc",
        live=live,
        promised=0.8,
        labelled_rows=labelled_rows,
        min_labelled_rows=200,
        tolerance=0.05,
    )
    return verdict.trigger(
        check=check,
        asset=asset,
        model_name=MODEL,
        model_version=version,
        day=day,
        job=job,
        partition=day if job == "uc_retraining" else None,
    )


@pytest.fixture
def uc(instance, request) -> Monitors:
    return Monitors(instance, request.node.name.split("[")[0].removeprefix("test_")[:40])


def test_the_sensor_requests_one_retraining_per_champion_version_and_failed_day(uc) -> None:
    sensor = uc.sensor()
    requests, cursor, skipped = uc.tick(sensor, None)
    assert (requests, cursor) == ([], None)
    assert "no failed monitor in 0 new materialization(s)" in skipped

    # Day 1: the performance monitor fails for version 1 (a real materialization, as the asset
    # records it).
    @dg.asset(key=uc.performance, partitions_def=DAILY)
    def live_performance() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=trigger_metadata([uc.trigger("2024-01-01")]))

    assert dg.materialize(
        [live_performance], instance=uc.instance, partition_key="2024-01-01"
    ).success
    requests, cursor, _ = uc.tick(sensor, cursor)
    assert [(r.job_name, r.partition_key, r.run_key) for r in requests] == [
        ("uc_retraining", "2024-01-01", "retrain:uc_model:1:2024-01-01")
    ]
    tags = requests[0].tags
    assert {k: v for k, v in tags.items() if k.startswith("mlops/")} == {
        "mlops/purpose": "retraining",
        "mlops/trigger_check": PERFORMANCE_CHECK,
        "mlops/trigger_asset": uc.performance.to_user_string(),
        "mlops/trigger_metric": "pr_auc",
        "mlops/trigger_value": "0.5",
        "mlops/trigger_threshold": "0.75",
        "mlops/trigger_model": MODEL,
        "mlops/trigger_model_version": "1",
        "mlops/trigger_day": "2024-01-01",
    }
    # Dagster adds the tag of the job's partition when it resolves the request.
    assert tags["dagster/partition"] == "2024-01-01"
    assert cursor == str(uc.latest(uc.performance))

    # The same cursor again: nothing new, nothing requested, the cursor stays.
    assert uc.tick(sensor, cursor)[:2] == ([], cursor)

    # The drift monitor fails on the same day for the same version: the same run key, so
    # Dagster starts no second run.
    uc.record(uc.drift, "2024-01-01", [uc.trigger("2024-01-01", check=DRIFT_CHECK)])
    requests, cursor, _ = uc.tick(sensor, cursor)
    assert [(r.run_key, r.tags["mlops/trigger_check"]) for r in requests] == [
        ("retrain:uc_model:1:2024-01-01", DRIFT_CHECK)
    ]

    # A quiet day and a day with too few labels (a value that would fail if it were judged)
    # record no trigger and request nothing; the cursor moves past them.
    assert uc.trigger("2024-01-03", live=0.1, labelled_rows=12) is None
    for day, trigger in [
        ("2024-01-02", uc.trigger("2024-01-02", live=0.79)),
        ("2024-01-03", uc.trigger("2024-01-03", live=0.1, labelled_rows=12)),
    ]:
        storage_id = uc.record(uc.performance, day, [trigger])
        requests, cursor, skipped = uc.tick(sensor, cursor)
        assert requests == []
        assert "no failed monitor in 1 new materialization(s)" in skipped
        assert cursor == str(storage_id)
    quiet = uc.instance.fetch_materializations(uc.performance, limit=1).records[0]
    assert RETRAINING_TRIGGER not in quiet.asset_materialization.metadata

    # A later day fails again for the same version: a new run.
    uc.record(uc.performance, "2024-01-04", [uc.trigger("2024-01-04")])
    requests, cursor, _ = uc.tick(sensor, cursor)
    assert [r.run_key for r in requests] == ["retrain:uc_model:1:2024-01-04"]

    # Version 2 is promoted that day and fails too: it asks for its own retraining.
    uc.record(uc.performance, "2024-01-04", [uc.trigger("2024-01-04", version="2")])
    requests, cursor, _ = uc.tick(sensor, cursor)
    assert [(r.run_key, r.tags["mlops/trigger_model_version"]) for r in requests] == [
        ("retrain:uc_model:2:2024-01-04", "2")
    ]
    assert uc.tick(sensor, cursor)[:2] == ([], cursor)


def test_a_tick_that_catches_up_on_many_days_retrains_each_version_once(uc) -> None:
    """A monitor backfill (or late labels re-judging past days) seen in one tick: one request per
    champion version, on the latest failed day, named by the monitor that fired first."""
    uc.record(uc.drift, "2024-01-05", [uc.trigger("2024-01-05", check=DRIFT_CHECK)])
    uc.record(uc.performance, "2024-01-05", [uc.trigger("2024-01-05")])
    for day in ("2024-01-03", "2024-01-04"):
        uc.record(uc.performance, day, [uc.trigger(day)])
    # Version 2 failed on an earlier day, and is retrained by the unpartitioned job.
    last = uc.record(
        uc.performance,
        "2024-01-02",
        [uc.trigger("2024-01-02", version="2", job="uc_weekly_retraining")],
    )

    requests, cursor, _ = uc.tick(uc.sensor(), None)
    shown = [
        (r.job_name, r.partition_key, r.run_key, r.tags["mlops/trigger_check"]) for r in requests
    ]
    assert shown == [
        ("uc_retraining", "2024-01-05", "retrain:uc_model:1:2024-01-05", DRIFT_CHECK),
        ("uc_weekly_retraining", None, "retrain:uc_model:2:2024-01-02", PERFORMANCE_CHECK),
    ]
    assert "dagster/partition" not in requests[1].tags
    assert cursor == str(last)


def test_the_first_tick_looks_back_only_as_far_as_it_is_told(uc) -> None:
    old = uc.record(uc.performance, "2024-01-01", [uc.trigger("2024-01-01")])

    # Nothing recorded within the lookback: no request, but the sensor starts after what exists.
    sensor = uc.sensor(first_tick_lookback=timedelta(0))
    requests, cursor, _ = uc.tick(sensor, None)
    assert (requests, cursor) == ([], str(old))

    uc.record(uc.performance, "2024-01-02", [uc.trigger("2024-01-02")])
    requests, _, _ = uc.tick(sensor, cursor)
    assert [r.run_key for r in requests] == ["retrain:uc_model:1:2024-01-02"]

    # The default lookback (a day) acts on the failures recorded just before the sensor started:
    # one request for the version, on the latest day.
    requests, _, _ = uc.tick(uc.sensor(), None)
    assert [r.run_key for r in requests] == ["retrain:uc_model:1:2024-01-02"]


def test_a_trigger_the_sensor_cannot_act_on_is_skipped_without_stopping_the_others(
    uc, capfd
) -> None:
    uc.record(uc.performance, "2024-01-01", [uc.trigger("2024-01-01", job="someone_elses_job")])
    uc.record(
        uc.drift, "2024-01-01", metadata={RETRAINING_TRIGGER: dg.MetadataValue.json({"not": 1})}
    )
    last = uc.record(uc.performance, "2024-01-02", [uc.trigger("2024-01-02")])
    capfd.readouterr()
    requests, cursor, _ = uc.tick(uc.sensor(), None)
    assert [r.run_key for r in requests] == ["retrain:uc_model:1:2024-01-02"]
    assert cursor == str(last)
    # Each skipped trigger is an error in the tick's log (Dagster's logger writes to stderr).
    errors = [line for line in capfd.readouterr().err.splitlines() if " - ERROR - " in line]
    assert len(errors) == 2
    assert "partition 2024-01-01 asks for job 'someone_elses_job'" in errors[0]
    assert "retraining_trigger should be a JSON list, not {'not': 1}" in errors[1]

    malformed = uc.instance.fetch_materializations(uc.drift, limit=1).records[0]
    with pytest.raises(ValueError, match="should be a JSON list"):
        recorded_triggers(malformed)


def test_trigger_metadata_is_absent_on_a_quiet_day_and_round_trips_otherwise() -> None:
    assert trigger_metadata([]) == {}
    triggers = [_trigger("2024-01-01"), _trigger("2024-01-01", version="2")]
    entry = trigger_metadata(triggers)[RETRAINING_TRIGGER]
    assert [Trigger.from_json(t) for t in json.loads(json.dumps(entry.value))] == triggers


def test_one_request_per_version_on_its_latest_day_named_by_the_first_that_fired() -> None:
    drift = _trigger("2024-01-02", check=DRIFT_CHECK, asset="uc/drift")
    performance = _trigger("2024-01-02")
    earlier = _trigger("2024-01-01")
    other = _trigger("2024-01-01", version="2")
    assert triggers_to_request([earlier, drift, performance, other]) == [drift, other]
    assert triggers_to_request([performance, drift, earlier]) == [performance]
    assert triggers_to_request([]) == []


# -- The daemon's own loop -------------------------------------------------------------------------
# A code location the sensor daemon loads in process: its monitors, retraining job and sensor.
LOOP_PERFORMANCE = dg.AssetKey(["loop", "live_performance"])
LOOP_DRIFT = dg.AssetKey(["loop", "drift"])
LOOP_SENSOR = "loop_retrain_on_failed_monitors"
loop_defs = dg.Definitions(
    assets=[uc_model, _stub(LOOP_PERFORMANCE), _stub(LOOP_DRIFT)],
    jobs=[RETRAINING],
    sensors=[
        retrain_on_failed_monitors(
            name=LOOP_SENSOR, monitors=[LOOP_PERFORMANCE, LOOP_DRIFT], jobs=[RETRAINING]
        )
    ],
)


def test_the_daemon_starts_one_run_when_both_monitors_fail_the_same_day(instance) -> None:
    """Through Dagster's own sensor daemon (one iteration at a time): its run-key dedupe is what
    makes "whichever monitor fired first" hold across ticks."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    loop = Monitors(instance, "loop")
    origin = LoadableTargetOrigin(
        module_name=__name__,
        attribute="loop_defs",
        working_directory=str(Path(__file__).parents[2]),
    )
    target = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin))
    now = datetime.now(UTC)

    def runs() -> list[tuple[str, str]]:
        found = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": LOOP_SENSOR}))
        return sorted((r.tags["dagster/run_key"], r.tags["mlops/trigger_check"]) for r in found)

    with create_test_daemon_workspace_context(target, instance) as workspace:

        def tick(minute: int) -> None:
            # Past the sensor's minimum interval since the previous tick.
            with freeze_time(now + timedelta(minutes=minute)):
                list(execute_sensor_iteration(workspace, logging.getLogger(__name__), None, None))

        loop.record(LOOP_PERFORMANCE, "2024-01-01", [loop.trigger("2024-01-01")])
        tick(0)
        assert runs() == [("retrain:uc_model:1:2024-01-01", PERFORMANCE_CHECK)]

        # The drift monitor fails the same day, a tick later: Dagster skips the run key.
        loop.record(LOOP_DRIFT, "2024-01-01", [loop.trigger("2024-01-01", check=DRIFT_CHECK)])
        tick(2)
        assert runs() == [("retrain:uc_model:1:2024-01-01", PERFORMANCE_CHECK)]

        # The next day it fails again: a second retraining.
        loop.record(LOOP_DRIFT, "2024-01-02", [loop.trigger("2024-01-02", check=DRIFT_CHECK)])
        tick(4)
        assert runs() == [
            ("retrain:uc_model:1:2024-01-01", PERFORMANCE_CHECK),
            ("retrain:uc_model:1:2024-01-02", DRIFT_CHECK),
        ]
    queued = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": LOOP_SENSOR}))
    assert {(r.job_name, r.status, r.tags["dagster/partition"]) for r in queued} == {
        ("uc_retraining", dg.DagsterRunStatus.QUEUED, "2024-01-01"),
        ("uc_retraining", dg.DagsterRunStatus.QUEUED, "2024-01-02"),
    }
