"""A demo's sensor step: one tick of a sensor, evaluated as the daemon would, and the runs it
requests executed on the instance, with the request's partition and tags and the daemon's own."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.tooling.sensor_tick import tick, trigger_summary
from mlops_assets.use_cases import DemoStep

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
TRIGGER = {
    "mlops/purpose": "retraining",
    "mlops/trigger_check": "champion_performs_as_validated",
    "mlops/trigger_metric": "pr_auc",
    "mlops/trigger_value": "0.5",
}


@dg.asset(key=["uc", "model"], partitions_def=DAILY)
def uc_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """What the retraining makes: here only the partition it was asked for."""
    return dg.MaterializeResult(metadata={"partition": context.partition_key})


@dg.asset(key=["uc", "broken"])
def uc_broken() -> None:
    raise RuntimeError("this retraining fails")


RETRAINING = dg.define_asset_job("uc_retraining", selection=[uc_model], partitions_def=DAILY)
BROKEN = dg.define_asset_job("uc_broken_retraining", selection=[uc_broken])


@dg.sensor(jobs=[RETRAINING, BROKEN])
def uc_retrain() -> dg.SensorResult:
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                job_name="uc_retraining",
                partition_key="2024-01-29",
                run_key="retrain:uc_model:1:2024-01-29",
                tags=TRIGGER,
            )
        ],
        cursor="42",
    )


@dg.sensor(jobs=[RETRAINING])
def uc_quiet() -> dg.SensorResult:
    return dg.SensorResult(skip_reason="no failed monitor in 3 new materialization(s)")


@dg.sensor(jobs=[BROKEN])
def uc_retrain_badly() -> dg.RunRequest:
    return dg.RunRequest(job_name="uc_broken_retraining", run_key="broken", tags=TRIGGER)


DEFS = dg.Definitions(
    assets=[uc_model, uc_broken],
    jobs=[RETRAINING, BROKEN],
    sensors=[uc_retrain, uc_quiet, uc_retrain_badly],
)


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Iterator[dg.DagsterInstance]:
    """A persistent instance in a temporary DAGSTER_HOME, as the demo's."""
    home: Path = tmp_path_factory.mktemp("dagster_home")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def _tick(name: str, instance: dg.DagsterInstance) -> tuple[int, list[str]]:
    lines: list[str] = []
    return tick(name, defs=DEFS, instance=instance, print_fn=lines.append), lines


def test_a_sensor_tick_runs_what_the_sensor_requests_with_its_tags(instance) -> None:
    code, lines = _tick("uc_retrain", instance)
    assert code == 0
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "uc_retrain"}))
    assert len(runs) == 1
    run = runs[0]
    assert (run.job_name, run.status) == ("uc_retraining", dg.DagsterRunStatus.SUCCESS)
    assert {k: run.tags[k] for k in TRIGGER} == TRIGGER
    # The daemon's own tags: its run-key deduplication sees this run.
    assert run.tags["dagster/run_key"] == "retrain:uc_model:1:2024-01-29"
    assert run.tags["dagster/partition"] == "2024-01-29"
    made = instance.fetch_materializations(dg.AssetKey(["uc", "model"]), limit=1).records[0]
    assert made.partition_key == "2024-01-29" and made.run_id == run.run_id
    shown = (
        "uc_retrain: job uc_retraining partition 2024-01-29 run key "
        "retrain:uc_model:1:2024-01-29 trigger check=champion_performs_as_validated "
        "metric=pr_auc value=0.5"
    )
    assert lines == [f"{shown} -> running", f"{shown} -> success: run {run.run_id}"]

    # A second tick (the demo run again): the run key was used, no second run.
    code, lines = _tick("uc_retrain", instance)
    assert code == 0
    assert lines == [f"{shown} -> already requested: run {run.run_id} (SUCCESS)"]
    assert len(instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "uc_retrain"}))) == 1


def test_a_sensor_that_requests_nothing_says_so(instance) -> None:
    assert _tick("uc_quiet", instance) == (
        0,
        ["uc_quiet: no retraining requested (no failed monitor in 3 new materialization(s))"],
    )


def test_a_failed_run_fails_the_step_and_is_retried_by_the_next_tick(instance) -> None:
    code, lines = _tick("uc_retrain_badly", instance)
    assert code == 1
    assert lines[-1].startswith("uc_retrain_badly: job uc_broken_retraining partition - ")
    assert " -> FAILURE: run " in lines[-1]
    # Unlike the daemon, a failed run key is tried again: a demo that failed here can finish.
    code, lines = _tick("uc_retrain_badly", instance)
    assert code == 1 and lines[0].endswith(" -> running")
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "uc_retrain_badly"}))
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE] * 2


def test_an_unknown_sensor_is_a_usage_error(instance) -> None:
    code, lines = _tick("nobody", instance)
    assert code == 2 and lines[0].startswith("nobody: no such sensor")


def test_trigger_summary_shows_the_trigger_tags_only() -> None:
    assert trigger_summary(TRIGGER) == (
        "check=champion_performs_as_validated metric=pr_auc value=0.5"
    )
    assert trigger_summary({"dagster/partition": "2024-01-29"}) == "-"


def test_a_demo_step_is_a_materialization_or_a_sensor_tick() -> None:
    step = DemoStep(sensor="uc_retrain")
    assert step.describe() == "sensor uc_retrain (one tick)"
    with pytest.raises(ValueError, match="no materialization"):
        step.cli_args()
    assert DemoStep(select="uc/model", partition="2024-01-29").cli_args()[-2:] == [
        "--partition",
        "2024-01-29",
    ]
    for wrong in (
        {},
        {"select": "uc/model", "sensor": "uc_retrain"},
        {"sensor": "uc_retrain", "partition": "2024-01-29"},
        {"sensor": "uc_retrain", "config": {"ops": {}}},
        {"select": "uc/model", "partition": "2024-01-29", "partition_range": "a...b"},
    ):
        with pytest.raises(ValueError):
            DemoStep(**wrong)


def test_the_demo_runs_a_sensor_step_as_a_tick_in_the_materializations_environment(
    monkeypatch, capsys
) -> None:
    from mlops_assets import use_cases
    from mlops_assets.tooling import cli

    env = {"DAGSTER_HOME": "/somewhere/.dagster", "MLOPS_HOME": "/somewhere"}
    calls: list[tuple[list[str], dict]] = []
    steps = [
        ("uc", DemoStep(select="uc/model", partition="2024-01-29")),
        ("uc", DemoStep(sensor="uc_retrain")),
    ]
    monkeypatch.setattr(use_cases, "demo_steps", lambda: steps)
    monkeypatch.setattr(cli, "_demo_settings", lambda settings: None)
    monkeypatch.setattr(cli, "command_env", lambda settings: env)
    monkeypatch.setattr(cli, "_print_demo_summary", lambda settings, home: None)
    monkeypatch.setattr(cli, "_run", lambda args, env: calls.append((args, env)) or 0)

    assert cli.demo(settings=None) == 0
    assert [args[len(cli.DAGSTER) :] for args, _ in calls[:1]] == [
        ["asset", "materialize", "-m", cli.CODE_LOCATION, *steps[0][1].cli_args()]
    ]
    assert calls[1] == ([*cli.SENSOR_TICK, "uc_retrain"], env)
    assert calls[0][1] is env
    assert capsys.readouterr().out.splitlines() == [
        "[uc] uc/model",
        "[uc] sensor uc_retrain (one tick)",
    ]

    # A failed tick (a requested run failed) stops the demo with its exit code.
    calls.clear()
    monkeypatch.setattr(cli, "_run", lambda args, env: calls.append((args, env)) or 1)
    monkeypatch.setattr(use_cases, "demo_steps", lambda: steps[1:] + steps[:1])
    assert cli.demo(settings=None) == 1
    assert len(calls) == 1
