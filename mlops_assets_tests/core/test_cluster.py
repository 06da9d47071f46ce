"""The Celery cluster's contract, without a broker: which executor each ``MLOPS_EXECUTOR`` gives,
the queue of a training step, the settings the run worker and the workers share, and the worker's
command line. The cluster running real steps is ``mlops_assets_tests/test_celery_cluster.py``."""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets.core.policies import CELERY_QUEUE_TAG, training_step
from mlops_assets.core.profiles import QUEUES, TRAINING_QUEUE, load_settings
from mlops_assets.core.runs import executor_for
from mlops_assets.tooling.cli import main

STACK_CELERY = {"MLOPS_PROFILE": "stack", "MLOPS_EXECUTOR": "celery"}


@pytest.mark.parametrize(
    ("name", "executor", "default_config"),
    [
        ("multiprocess", "multi_or_in_process_reaping_dead_runs", {"multiprocess": {}}),
        ("in_process", "multi_or_in_process_reaping_dead_runs", {"in_process": {}}),
        ("celery", "celery_reaping_dead_runs", {"retries": {"enabled": {}}}),
        ("k8s", "k8s", None),
    ],
)
def test_each_executor_setting_gives_its_executor(
    name: str, executor: str, default_config: dict | None
) -> None:
    definition = executor_for(name)
    assert definition.name == executor
    if default_config is not None:
        assert definition.config_schema.as_field().default_value == default_config


def test_a_job_of_the_code_location_runs_in_process_when_the_deployment_says_so() -> None:
    with dg.instance_for_test() as instance:
        result = dg.execute_job(dg.reconstructable(_in_process_job), instance=instance)
        assert result.success
        engine = [e.message or "" for e in result.all_events if e.is_engine_event]
        assert any(m.startswith("Executing steps in process") for m in engine), engine


@dg.asset
def _one() -> int:
    return 1


def _in_process_job() -> dg.JobDefinition:
    """A job as the code location builds it with ``MLOPS_EXECUTOR=in_process`` (module level:
    ``execute_job`` rebuilds it from here)."""
    job = dg.define_asset_job("one", selection=[_one], executor_def=executor_for("in_process"))
    return dg.Definitions(assets=[_one], jobs=[job]).resolve_job_def("one")


def test_training_steps_go_to_the_training_queue_and_keep_their_own_tags() -> None:
    assert training_step()["op_tags"] == {CELERY_QUEUE_TAG: TRAINING_QUEUE}
    mine = training_step(op_tags={"team": "risk"})
    assert mine["op_tags"] == {CELERY_QUEUE_TAG: TRAINING_QUEUE, "team": "risk"}
    assert mine["pool"] == "training"


def test_run_worker_and_workers_agree_on_how_steps_travel() -> None:
    from mlops_assets.core.cluster import TASK_NAME, celery_config, worker_app

    settings = load_settings(environ=STACK_CELERY)
    config = celery_config(settings)
    # A step is acknowledged after it ends, one at a time per worker, as JSON.
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_default_queue"] == "default"
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
    app = worker_app(settings)
    assert app.conf.broker_url == "amqp://127.0.0.1:5672//"
    assert app.conf.task_acks_late is True and app.conf.broker_heartbeat == 0
    task = app.tasks[TASK_NAME]
    assert task.acks_late and task.reject_on_worker_lost


def test_the_worker_runs_one_step_at_a_time_in_its_own_process() -> None:
    from mlops_assets.core.cluster import worker_argv

    argv = worker_argv(["training"], "big-1")
    assert argv[argv.index("--pool") + 1] == "solo"
    assert argv[argv.index("--queues") + 1] == "training"
    assert argv[argv.index("--hostname") + 1] == "big-1@%h"
    assert worker_argv(list(QUEUES), "w")[2] == "default,training"
    with pytest.raises(ValueError, match="queues must be among default, training"):
        worker_argv(["gpu"], "w")


def test_mlops_worker_refuses_a_deployment_without_the_celery_executor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "stack")
    monkeypatch.delenv("MLOPS_EXECUTOR", raising=False)
    assert main(["worker"]) == 2
    assert "MLOPS_EXECUTOR='multiprocess': a worker takes steps only" in capsys.readouterr().err


def test_mlops_check_hides_the_passwords_of_its_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_CELERY_BROKER_URL", "amqp://mlops:s3cret@rabbit:5672//")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "MLOPS_CELERY_BROKER_URL=amqp://mlops:***@rabbit:5672//" in out
    assert "s3cret" not in out
