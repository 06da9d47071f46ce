"""Steps on a Celery cluster (``MLOPS_EXECUTOR=celery``, :mod:`mlops_assets.core.cluster`), on this
machine's real RabbitMQ, PostgreSQL, Redis, moto's S3 and an MLflow server.

Two ``mlops worker`` processes take the steps of the fraud pipeline, launched as a user does, by
``dagster asset materialize``: a four-day backfill, then the training set, model, champion and
scores of the last day. In the middle of the model's step, the worker running it is killed with
SIGKILL; the broker hands the step to the other worker, and the run succeeds. Every data version
must then equal the same pipeline's on the in-process executor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.tracking import TAG_ENDED_BY, TAG_RUN_ID
from mlops_assets.definitions import resources_for
from mlops_assets.fraud.assets import MODEL_NAME
from mlops_assets.tooling.cli import dagster_home
from mlops_assets.tooling.native_stack import dagster_postgres_url
from mlops_assets_tests.fixtures import rabbitmq
from mlops_assets_tests.fixtures.local_profile import use_local_profile
from mlops_assets_tests.fraud.test_pipeline import (
    DATA_VERSION_TAG,
    PARITY_DAYS,
    PARITY_FIRST,
    PARITY_KINDS,
    PARITY_LAST,
    PARITY_TRAINING,
    SILVER,
    TINY_BRONZE,
    _data_versions,
    _forget_registered_model,
    _run_parity_pipeline,
)

rabbitmq_vhost = rabbitmq.rabbitmq_vhost

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
TRAINED = ["fraud/training_set", "fraud/model", "fraud/champion", "fraud/scores"]
MODEL_STEP = "fraud__model"
STARTED = "Executing step "


class Worker:
    """One ``mlops worker`` process, in a process group of its own, logging to a file."""

    def __init__(self, name: str, log: Path, env: dict[str, str]):
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "mlops"), "worker", "--name", name],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"{self.name}@" in (text := self.log.read_text()) and " ready." in text:
                return
            assert self.proc.poll() is None, f"worker {self.name} exited:\n{text[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def cluster(
    stack_profile, postgres_database, rabbitmq_vhost: str, tmp_path: Path, monkeypatch
) -> Iterator[tuple[list[Worker], dict[str, str]]]:
    """The fraud stack profile with the Celery executor on a broker of its own, its Dagster
    instance on PostgreSQL, and two workers listening to both queues."""
    stack_profile("fraud")
    monkeypatch.setenv("MLOPS_EXECUTOR", "celery")
    monkeypatch.setenv("MLOPS_CELERY_BROKER_URL", rabbitmq_vhost)
    dagster_db = postgres_database("dagster_celery")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_postgres_url(dagster_db))
    settings = load_settings()
    _forget_registered_model(resources_for(settings)["mlflow"])
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(settings)))
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    workers = [Worker(f"w{i}", tmp_path / f"worker-{i}.log", env) for i in (1, 2)]
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers, env
    finally:
        for worker in workers:
            worker.stop()


def _materialize(env: dict[str, str], select: list[str], partition: list[str], config: dict):
    return subprocess.Popen(
        [
            str(VENV_BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "mlops_assets.definitions",
            "--select",
            ",".join(select),
            *partition,
            "--config-json",
            json.dumps(config),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finished(proc: subprocess.Popen, timeout: float = 600.0) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-6000:]
    return out


def _step_starts(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, dict[str, str]]]:
    """(step key, the worker's metadata) of every step a Celery worker took, in order."""
    starts = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is not None and STARTED in (event.message or ""):
            metadata = event.engine_event_data.metadata
            starts.append((event.step_key, {k: str(v.value) for k, v in metadata.items()}))
    return starts


def _latest_run(instance: dg.DagsterInstance, after: set[str]) -> dg.DagsterRun | None:
    runs = [r for r in instance.get_runs(limit=5) if r.run_id not in after]
    return runs[0] if runs else None


@pytest.mark.stack
def test_fraud_on_two_celery_workers_survives_a_killed_worker(
    cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers, env = cluster
    pids = {str(w.proc.pid): w for w in workers}
    with dg.DagsterInstance.get() as instance:
        backfill = _materialize(
            env,
            [*SILVER, "fraud/feature_store"],
            ["--partition-range", f"{PARITY_FIRST}...{PARITY_LAST}"],
            {"ops": {"bronze": {"config": TINY_BRONZE}}},
        )
        _finished(backfill)
        [feeds] = instance.get_runs(limit=1)

        # Training, scores: the worker that takes the model's step dies in its middle, once the
        # step has opened its MLflow run (which the dead process cannot end).
        tracking = resources_for(load_settings())["mlflow"]
        training = _materialize(
            env,
            TRAINED,
            ["--partition", PARITY_LAST],
            {
                "ops": {
                    "fraud__training_set": {"config": PARITY_TRAINING},
                    "fraud__model": {"config": {"kinds": PARITY_KINDS}},
                }
            },
        )
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and training.poll() is None:
            time.sleep(0.05)
            if (run := _latest_run(instance, {feeds.run_id})) is None:
                continue
            taken = [w for step, w in _step_starts(instance, run.run_id) if step == MODEL_STEP]
            if taken and _mlflow_runs(tracking, run.run_id, status="RUNNING"):
                killed = pids[taken[0]["pid"]]
                killed.proc.send_signal(signal.SIGKILL)
        assert killed is not None, (
            "the model's step never ran on a worker:\n" + _finished(training)[-5000:]
        )
        _finished(training)
        trains = _latest_run(instance, {feeds.run_id})
        assert trains is not None and trains.is_success
        assert killed.proc.wait(10) == -signal.SIGKILL

        # Every step ran on a worker, which the run's events name; both workers ran steps.
        feeds_starts = _step_starts(instance, feeds.run_id)
        train_starts = _step_starts(instance, trains.run_id)
        for run, starts in ((feeds, feeds_starts), (trains, train_starts)):
            succeeded = {
                r.dagster_event.step_key
                for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            }
            assert succeeded and succeeded <= {step for step, _ in starts}
        ran_on = {w["pid"] for _, w in feeds_starts + train_starts}
        assert ran_on == set(pids), (ran_on, set(pids))
        assert all(w["host"] and w["Celery worker"].startswith("w") for _, w in train_starts)

        # The model's step: taken by the killed worker, redelivered to the other, run there once
        # more; training steps on the training queue, the rest on the default one.
        model_starts = [w for step, w in train_starts if step == MODEL_STEP]
        [first, again] = model_starts
        survivor = next(w for w in workers if w is not killed)
        assert first["pid"] == str(killed.proc.pid) and first["redelivered"] == "false"
        assert again["pid"] == str(survivor.proc.pid) and again["redelivered"] == "true"
        queues = {step: w["queue"] for step, w in train_starts}
        assert queues == {
            "fraud__training_set": "default",
            MODEL_STEP: "training",
            "fraud__champion": "default",
            "fraud__scores": "default",
        }, queues

        # Nothing twice, nothing half: one registered version; the killed attempt's MLflow run
        # ended KILLED by the attempt that finished, none left RUNNING.
        versions = tracking.client.search_model_versions(f"name = '{MODEL_NAME}'")
        assert [v.version for v in versions] == ["1"]
        runs = _mlflow_runs(tracking, trains.run_id)
        statuses = sorted((r.info.status, r.data.tags.get(TAG_ENDED_BY, "")) for r in runs)
        assert [s for s, _ in statuses] == ["FINISHED", "KILLED"], statuses
        assert statuses[1][1].endswith(f":{survivor.proc.pid}")

        on_celery = _materialized_versions(instance, [feeds.run_id, trains.run_id])

        # Ctrl-C on a run: the step that runs ends, the steps not yet started never run.
        interrupted = _materialize(
            env,
            [*SILVER, "fraud/feature_store"],
            ["--partition", "2024-01-05"],
            {"ops": {"bronze": {"config": TINY_BRONZE}}},
        )
        run = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and interrupted.poll() is None:
            time.sleep(0.05)
            run = _latest_run(instance, {feeds.run_id, trains.run_id})
            if run is not None and _step_starts(instance, run.run_id):
                interrupted.send_signal(signal.SIGINT)
                break
        out, _ = interrupted.communicate(timeout=120)
        assert interrupted.returncode != 0, out[-3000:]
        run = instance.get_run_by_id(run.run_id)
        assert run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)
        ran = [step for step, _ in _step_starts(instance, run.run_id)]
        assert ran == ["bronze"], ran
        assert "fraud/feature_store [2024-01-05]" not in _materialized_versions(
            instance, [run.run_id]
        )

    # The same pipeline on the in-process executor (local profile: the stack's equals it, as
    # fraud/test_pipeline.py's parity test shows) gives every asset the same data version.
    use_local_profile(monkeypatch, tmp_path / "local")
    for var in ("MLOPS_S3_BUCKET", "MLOPS_REDIS_URL", "MLOPS_POSTGRES_URL", "MLOPS_EXECUTOR"):
        monkeypatch.delenv(var, raising=False)
    from mlops_assets.core.feature_store import clear_caches

    clear_caches()
    in_process = _data_versions(_run_parity_pipeline(resources_for(load_settings())))
    expected = {
        *(f"{key} [{day}]" for key in [*SILVER, "fraud/feature_store"] for day in PARITY_DAYS),
        *(f"{key} [{PARITY_LAST}]" for key in TRAINED),
    }
    assert set(on_celery) == set(in_process) == expected
    differing = {
        k: (on_celery[k], in_process[k]) for k in expected if on_celery[k] != in_process[k]
    }
    assert not differing, differing


def _mlflow_runs(tracking, dagster_run_id: str, status: str | None = None) -> list:
    query = f"tags.`{TAG_RUN_ID}` = '{dagster_run_id}'"
    if status:
        query += f" AND attributes.status = '{status}'"
    return tracking.client.search_runs([tracking.experiment_id("fraud")], filter_string=query)


def _materialized_versions(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, str]:
    versions = {}
    for run_id in run_ids:
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = record.dagster_event.step_materialization_data.materialization
            name = f"{materialization.asset_key.to_user_string()} [{materialization.partition}]"
            versions[name] = materialization.tags[DATA_VERSION_TAG]
    return versions
