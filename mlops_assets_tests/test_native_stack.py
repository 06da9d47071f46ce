"""`mlops stack` end to end: the fraud use case through the native stack, as an operator runs it,
on a Celery cluster, and the stack's objects across a restart.

Each stack is started with the real command line (`mlops stack`) in a session of its own, with
MLOPS_PROFILE=local in its environment (the command runs the stack profile whatever it says),
fresh PostgreSQL databases that the launcher itself creates, and the tests' Redis database. The
fraud test's stack is a Celery cluster (`--workers 2 --training-workers 1`: workers `default-1`
and `default-2` on the `default` queue, `training-1` on `training`) on a RabbitMQ virtual host of
the test's own; it proves that:

* the launcher brings up SeaweedFS's S3, the MLflow server, the three workers and `dagster dev`
  (the webserver answers `/server_info`, every required daemon is healthy) and writes the
  environment of the stack, `MLOPS_EXECUTOR=celery` included, to `.dagster-stack/stack.env`,
  which is all another shell needs;
* `dagster job backfill -j fraud_ingestion` from that other shell puts one run per day on the
  queue (each run's events: ENQUEUED by the CLI, then STARTING when the daemon dequeued and
  launched it, then SUCCESS), and the runs, their partitions and statuses are rows of the
  `runs` table in PostgreSQL;
* every step of those runs, and of the UI's and the retraining's runs below, ran on a worker of
  this stack: each step that succeeded has the "Executing step" event of the worker that took
  it (its Celery name, host and pid those of a worker the launcher started, its queue, not
  redelivered), and the runs the daemon launched side by side spread their steps over both
  default workers;
* the data landed where the stack profile says: bronze and silver parquet per day in the S3
  bucket, Feast's registry in PostgreSQL and its online store in Redis;
* the UI's Materialize button (the webserver's GraphQL mutation, a partition tag) runs one day of
  `fraud/card_features` through the queue, on a default worker;
* `dagster job launch -j fraud_retraining` (run config and partition tag from the CLI) goes
  through the queue too and registers `fraud_classifier@champion` on the MLflow server, the
  version's run tagged with that Dagster run's id and its artifacts proxied into the bucket;
  `fraud__model`, of the training pool, ran on `training-1` from the `training` queue, and no
  other step of these runs did;
* the `fraud_rescore_on_champion_change` sensor, evaluated against this instance and registry,
  asks for the scored day again once the alias is moved to another version outside Dagster;
* SIGTERM stops the whole stack within 30 s with exit code 0, leaving no process and no port.

The daily volumes are the defaults (a backfill takes no run config): ~1 min per day on two
cores, most of it process start-up. The training set of 2024-01-10 (window of 3 days ending 7
days earlier, when legitimate payments are confirmed) covers the three ingested days. Without a
RabbitMQ to make a virtual host on, the fraud test is skipped (`fixtures/rabbitmq.py`).

The restart test (`--no-dagster`, ~2 min) replays what a user does: objects put through the S3
endpoint and an artifact logged through the MLflow server, the stack stopped with SIGTERM and
started again on the same folder, then the S3 server killed with SIGKILL and the stack started
once more: every object comes back with the same bytes and the artifact downloads each time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from mlops_assets.tooling.native_stack import (
    S3_DATA_DIR,
    SEAWEEDFS_GRPC_OFFSET,
    SEAWEEDFS_INTERNAL_PORTS,
    SEAWEEDFS_OPTIONS_FILE,
    port_is_open,
    s3_client,
    seaweedfs_ports,
)
from mlops_assets_tests.fixtures import rabbitmq
from mlops_assets_tests.fixtures.dagster_ui import Ui
from mlops_assets_tests.fixtures.paths import REPO_ROOT
from mlops_assets_tests.fixtures.services import free_port
from mlops_assets_tests.fixtures.stack_databases import (
    drop_databases,
    fresh_databases,
    stack_env,
)

rabbitmq_vhost = rabbitmq.rabbitmq_vhost  # the fixture, for `native_stack`

WORKSPACE = str(REPO_ROOT / "workspace.yaml")

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]
TRAIN_DAY = "2024-01-10"
RETRAINING_CONFIG = {
    "ops": {
        "fraud__training_set": {"config": {"window_days": 3, "maturity_days": 7}},
        # The baseline alone: the stack's plumbing is under test here, not model selection.
        "fraud__model": {"config": {"kinds": ["logreg"]}},
    }
}
MODEL_NAME = "fraud_classifier"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
QUEUE_PATH = ["PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS"]

# The fraud test's cluster: two workers of the default queue, one of the training queue.
WORKERS = ("--workers", "2", "--training-workers", "1")
DEFAULT_WORKERS = {"default-1", "default-2"}
TRAINING_WORKER = "training-1"
MODEL_STEP = "fraud__model"  # the one step of the training pool in these runs
# "started Celery worker default-1 (queues default, pid 1234; log: /.../worker-default-1.log)"
STARTED_WORKER = re.compile(r"started Celery worker (\S+) \(queues (\S+), pid (\d+); log: ")
# The message of the engine event a worker reports as it starts a step (core/cluster.py).
CELERY_STEP = (
    "Executing step {step} on Celery worker {node} (host {host}, pid {pid}), queue '{queue}'"
)


@dataclass
class NativeStack:
    """A running `mlops stack` and what a second shell needs to use it."""

    proc: subprocess.Popen
    home: Path
    output: Path
    ports: dict[str, int]
    databases: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    descendants: list[psutil.Process] = field(default_factory=list)
    workers: dict[str, int] = field(default_factory=dict)  # Celery worker name -> its pid

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['dagster']}"

    @property
    def dagster_dsn(self) -> str:
        return self.databases["dagster"]

    def tail(self) -> str:
        logs = [self.output, *sorted((self.home / ".dagster-stack" / "stack-logs").glob("*.log"))]
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            for p in logs
            if p.exists()
        )

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """A `dagster` command from "another shell": the exported environment of the stack."""
        done = subprocess.run(
            [sys.executable, "-m", "dagster", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"dagster {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


DAEMONS = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


def _ready(stack: NativeStack) -> bool:
    if not (stack.home / ".dagster-stack" / "stack.env").exists():
        return False
    try:
        with urllib.request.urlopen(f"{stack.dagster_url}/server_info", timeout=5) as response:
            if response.status != 200:
                return False
        statuses = _graphql(stack.dagster_url, DAEMONS)["instance"]["daemonHealth"]
    except (urllib.error.URLError, OSError, KeyError, TypeError):
        return False
    required = [s for s in statuses["allDaemonStatuses"] if s["required"]]
    return bool(required) and all(s["healthy"] for s in required)


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
            env[name] = value
    return env


def _launch(
    home: Path, env: dict[str, str], ports: dict[str, int], output: Path, *extra: str
) -> subprocess.Popen:
    """`mlops stack` on ``ports`` in a session of its own, its output to ``output``."""
    mlops = Path(sys.executable).with_name("mlops")
    command = [str(mlops)] if mlops.exists() else [sys.executable, "-m", "mlops_assets.tooling.cli"]
    command += ["stack", *(f"--{name}-port={port}" for name, port in ports.items()), *extra]
    with open(output, "wb") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_leftovers(stack: NativeStack) -> None:
    """The cleanup of a failed test: SIGTERM to the launcher, then SIGKILL to what is left."""
    if stack.proc.poll() is None:
        stack.descendants = stack.descendants or psutil.Process(stack.proc.pid).children(True)
        stack.proc.send_signal(signal.SIGTERM)
        try:
            stack.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack.proc.kill()
    for child in _alive(stack.descendants):
        child.kill()


@pytest.fixture
def native_stack(tmp_path: Path, redis_url: str, rabbitmq_vhost: str) -> Iterator[NativeStack]:
    """`mlops stack --workers 2 --training-workers 1` on free ports, MLOPS_HOME in ``tmp_path``,
    the broker a virtual host of the test's own; its databases dropped after."""
    databases = fresh_databases()
    ports = {"s3": free_port(), "mlflow": free_port(), "dagster": free_port()}
    env = {**stack_env(tmp_path, redis_url, databases), "MLOPS_CELERY_BROKER_URL": rabbitmq_vhost}
    output = tmp_path / "mlops-stack.out"
    proc = _launch(tmp_path, env, ports, output, *WORKERS)
    stack = NativeStack(proc=proc, home=tmp_path, output=output, ports=ports, databases=databases)
    try:
        deadline = time.monotonic() + 180
        while not _ready(stack):
            assert proc.poll() is None, (
                f"mlops stack exited with {proc.returncode}:\n{stack.tail()}"
            )
            assert time.monotonic() < deadline, f"the stack did not come up:\n{stack.tail()}"
            time.sleep(1)
        env_file = tmp_path / ".dagster-stack" / "stack.env"
        assert env_file.stat().st_mode & 0o777 == 0o600  # it holds the stack's credentials
        stack.env = {**env, **_read_env_file(env_file)}
        # The workers start before `dagster dev`: all of them are in the output by now.
        stack.workers = {
            name: int(pid) for name, _, pid in STARTED_WORKER.findall(output.read_text())
        }
        yield stack
    finally:
        # Normally stopped by the test itself; this is the cleanup of a failed test.
        _stop_leftovers(stack)
        drop_databases(databases)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _runs(dsn: str, job: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT r.run_id, r.status, t.value FROM runs r LEFT JOIN run_tags t "
            "ON t.run_id = r.run_id AND t.key = 'dagster/partition' "
            "WHERE r.pipeline_name = %s ORDER BY r.id",
            (job,),
        ).fetchall()


def _failures(dsn: str, run_ids: list[str]) -> str:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT run_id, event FROM event_logs WHERE run_id = ANY(%s) "
            "AND dagster_event_type IN ('STEP_FAILURE', 'PIPELINE_FAILURE') ORDER BY id",
            (run_ids,),
        ).fetchall()
    return "\n".join(f"{run_id}: {event[:3000]}" for run_id, event in rows)


def _wait_for_runs(stack: NativeStack, job: str, count: int, timeout: float) -> list[tuple]:
    """The ``count`` runs of ``job`` once all are finished; fails on the first failed one."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs(stack.dagster_dsn, job)
        failed = [r[0] for r in runs if r[1] in ("FAILURE", "CANCELED")]
        assert not failed, (
            f"{job} runs failed:\n{_failures(stack.dagster_dsn, failed)}\n{stack.tail()}"
        )
        if len(runs) == count and all(r[1] in TERMINAL for r in runs):
            return runs
        assert stack.proc.poll() is None, f"the stack died:\n{stack.tail()}"
        assert time.monotonic() < deadline, f"{job} runs after {timeout:.0f} s: {runs}"
        time.sleep(2)


def _run_events(dsn: str, run_id: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT dagster_event_type FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = ANY(%s) ORDER BY id",
            (run_id, QUEUE_PATH),
        ).fetchall()
    return [r[0] for r in rows]


def _step_starts(dsn: str, run_id: str) -> list[tuple[str, dict[str, str], str]]:
    """(step key, the worker's metadata, the message) of every step a Celery worker took in
    ``run_id``, in order: the engine event the worker reports as it starts the step."""
    import dagster as dg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ENGINE_EVENT' ORDER BY id",
            (run_id,),
        ).fetchall()
    starts = []
    for (serialized,) in rows:
        event = dg.deserialize_value(serialized, dg.EventLogEntry).dagster_event
        # "[CeleryExecutor] Executing step ...": the instance prefixes the executor's name.
        if event is not None and "Executing step " in (event.message or ""):
            metadata = event.engine_event_data.metadata
            worker = {key: str(value.value) for key, value in metadata.items()}
            starts.append((event.step_key, worker, event.message))
    return starts


def _succeeded_steps(dsn: str, run_id: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT step_key FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'STEP_SUCCESS'",
            (run_id,),
        ).fetchall()
    return {r[0] for r in rows}


def _steps_on_workers(stack: NativeStack, run_id: str) -> list[tuple[str, str]]:
    """(step key, worker name) of each step of ``run_id`` a worker took, once checked that every
    step that succeeded was taken by a worker of this stack, named with its pid and host, from
    the queue of its pool: `training` for the model's step, on the training worker only."""
    host = socket.gethostname()
    starts = _step_starts(stack.dagster_dsn, run_id)
    succeeded = _succeeded_steps(stack.dagster_dsn, run_id)
    assert succeeded, f"run {run_id} has no successful step"
    assert succeeded <= {step for step, _, _ in starts}, (run_id, succeeded, starts)
    ran_on = []
    for step, worker, message in starts:
        name, _, node_host = worker["Celery worker"].partition("@")
        queue = "training" if step == MODEL_STEP else "default"
        assert name in stack.workers, (step, worker, stack.workers)
        assert (worker["pid"], worker["host"], node_host) == (str(stack.workers[name]), host, host)
        assert (worker["queue"], worker["redelivered"]) == (queue, "false"), (step, worker)
        assert (name == TRAINING_WORKER) == (step == MODEL_STEP), (step, worker)
        expected = CELERY_STEP.format(
            step=step, node=worker["Celery worker"], host=host, pid=worker["pid"], queue=queue
        )
        assert expected in message, (message, expected)
        ran_on.append((step, name))
    return ran_on


@pytest.mark.stack
@pytest.mark.timeout(600)
def test_fraud_use_case_through_the_native_stack(
    native_stack: NativeStack, rabbitmq_vhost: str
) -> None:
    stack = native_stack
    env = stack.env
    assert env["MLOPS_PROFILE"] == "stack"
    assert env["DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://")
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{stack.ports['s3']}"
    assert env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{stack.ports['mlflow']}"
    assert (env["MLOPS_EXECUTOR"], env["MLOPS_CELERY_BROKER_URL"]) == ("celery", rabbitmq_vhost)
    stack.descendants = psutil.Process(stack.proc.pid).children(recursive=True)
    assert set(stack.workers) == {*DEFAULT_WORKERS, TRAINING_WORKER}, stack.output.read_text()
    assert set(stack.workers.values()) <= {p.pid for p in stack.descendants}

    # -- ingestion: a backfill from another shell, one queued run per day -------------------
    done = stack.cli(
        "job", "backfill", "-j", "fraud_ingestion", "--partitions", ",".join(DAYS),
        "--noprompt", "-w", WORKSPACE,
    )  # fmt: skip
    assert "Launched backfill" in done.stdout, done.stdout
    runs = _wait_for_runs(stack, "fraud_ingestion", len(DAYS), timeout=330)
    assert sorted(r[2] for r in runs) == DAYS
    assert {r[1] for r in runs} == {"SUCCESS"}
    ingestion_workers = set()
    for run_id, _, _ in runs:
        # Enqueued by the CLI, dequeued and launched by the daemon's run coordinator.
        assert _run_events(stack.dagster_dsn, run_id) == QUEUE_PATH
        ingestion_workers |= {name for _, name in _steps_on_workers(stack, run_id)}
    # The daemon launched the days side by side: both default workers took steps.
    assert ingestion_workers == DEFAULT_WORKERS

    s3 = s3_client(env["AWS_ENDPOINT_URL"], env)
    bucket = env["MLOPS_S3_BUCKET"]
    keys = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }
    for asset in ("transactions", "labels", "card_features", "merchant_features"):
        for day in DAYS:
            assert f"fraud/{asset}/{day}.parquet" in keys, sorted(keys)[:20]

    with psycopg.connect(stack.databases["mlops"]) as conn:
        views = {r[0] for r in conn.execute("SELECT feature_view_name FROM feature_views")}
    assert {"card_features", "merchant_features"} <= views

    online = redis.Redis.from_url(env["MLOPS_REDIS_URL"])
    try:
        sample = [k for k, _ in zip(online.scan_iter(count=1000), range(50), strict=False)]
        assert online.dbsize() > 1000
        assert sample and all(k.endswith(env["MLOPS_FEAST_PROJECT"].encode()) for k in sample)
    finally:
        online.close()

    # -- the UI's Materialize button: one day of one asset, through the webserver -----------
    ui = Ui(stack.dagster_url)
    ui_run = ui.wait_run(
        ui.launch([["fraud", "card_features"]], tags={"dagster/partition": DAYS[0]})
    )
    assert ui_run["status"] == "SUCCESS", (ui_run, _failures(stack.dagster_dsn, [ui_run["run_id"]]))
    [(step, worker)] = _steps_on_workers(stack, ui_run["run_id"])
    assert step == "fraud__card_features"
    assert worker in DEFAULT_WORKERS

    # -- retraining: launched from the CLI through the queue --------------------------------
    stack.cli(
        "job", "launch", "-j", "fraud_retraining", "-w", WORKSPACE,
        "--tags", json.dumps({"dagster/partition": TRAIN_DAY}),
        "--config-json", json.dumps(RETRAINING_CONFIG),
    )  # fmt: skip
    [(run_id, status, partition)] = _wait_for_runs(stack, "fraud_retraining", 1, timeout=240)
    assert (status, partition) == ("SUCCESS", TRAIN_DAY)
    assert _run_events(stack.dagster_dsn, run_id) == QUEUE_PATH
    trained_on = _steps_on_workers(stack, run_id)
    assert [name for step, name in trained_on if step == MODEL_STEP] == [TRAINING_WORKER]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    tags = client.get_run(champion.run_id).data.tags
    assert tags["dagster.run_id"] == run_id
    assert tags["dagster.partition_key"] == TRAIN_DAY
    artifacts = s3.list_objects_v2(Bucket=bucket, Prefix="mlflow/")
    assert artifacts.get("KeyCount", 0) > 0, "MLflow's artifacts did not reach the bucket"

    # -- rescoring: a champion moved outside Dagster makes the sensor ask again -------------
    scored = DAYS[-1]
    stack.cli(
        "asset", "materialize", "-m", "mlops_assets.definitions",
        "--select", "fraud/scores", "--partition", scored,
    )  # fmt: skip
    assert f"fraud/scores/{scored}.parquet" in {
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="fraud/scores/")["Contents"]
    }
    preview = ["sensor", "preview", "fraud_rescore_on_champion_change", "-w", WORKSPACE]
    before = stack.cli(*preview)
    assert "Sensor returned false" in before.stdout, before.stdout  # the current champion made it
    # Another version of the same logged model (MLflow 3: a models:/<model_id> source).
    model_id = champion.model_id or champion.source.removeprefix("models:/")
    rollback = client.create_model_version(
        MODEL_NAME, source=champion.source, run_id=champion.run_id, model_id=model_id
    )
    client.set_registered_model_alias(MODEL_NAME, "champion", rollback.version)
    after = stack.cli(*preview)
    # "Sensor returning run requests for 1 run(s)", or, when the daemon's own tick came first
    # and launched it, "Skipping run requests for 1 run(s) that already have runs matching".
    assert "run requests for 1 run(s)" in after.stdout, after.stdout

    # -- stop: SIGTERM, everything down within 30 s ------------------------------------------
    _stop_and_check(stack)


def _stop_and_check(stack: NativeStack, timeout: float = 30) -> None:
    """SIGTERM to the launcher: exit code 0 within ``timeout``, no process and no port left."""
    stack.descendants += psutil.Process(stack.proc.pid).children(recursive=True)
    started = time.monotonic()
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=timeout) == 0, stack.tail()
    stopped = time.monotonic() - started
    left = _alive(stack.descendants)
    assert not left, f"left running: {[p.pid for p in left]}"
    assert not [name for name, port in stack.ports.items() if port_is_open("127.0.0.1", port)]
    assert stopped < timeout


# -- the stack's objects across restarts ------------------------------------------------------

SERVICES_READY = "stack ready (no Dagster)"
ARTIFACT = "model/weights.bin"


def _start_services(
    home: Path,
    env: dict[str, str],
    ports: dict[str, int],
    databases: dict[str, str],
    run: str,
    *extra: str,
) -> NativeStack:
    """`mlops stack --no-dagster EXTRA` on ``home``; returns once it says it is ready."""
    output = home / f"mlops-stack-{run}.out"
    proc = _launch(home, env, ports, output, "--no-dagster", *extra)
    stack = NativeStack(proc=proc, home=home, output=output, ports=ports, databases=databases)
    deadline = time.monotonic() + 180
    while SERVICES_READY not in output.read_text(errors="replace"):
        assert proc.poll() is None, f"mlops stack exited with {proc.returncode}:\n{stack.tail()}"
        assert time.monotonic() < deadline, f"the stack did not come up:\n{stack.tail()}"
        time.sleep(0.5)
    stack.env = {**env, **_read_env_file(home / ".dagster-stack" / "stack.env")}
    stack.descendants = psutil.Process(proc.pid).children(recursive=True)
    return stack


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put_objects(s3, bucket: str, prefix: str) -> dict[str, str]:
    """Objects of several sizes under ``prefix``, one of them uploaded in parts; their sha256."""
    from boto3.s3.transfer import TransferConfig

    bodies = {
        f"{prefix}/empty.bin": b"",
        f"{prefix}/small.txt": b"a stack must survive a restart\n",
        f"{prefix}/random-1mb.bin": os.urandom(1 << 20),
    }
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    multipart = f"{prefix}/multipart-11mb.bin"
    bodies[multipart] = os.urandom(11 << 20)
    parts = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_fileobj(io.BytesIO(bodies[multipart]), bucket, multipart, Config=parts)
    assert s3.head_object(Bucket=bucket, Key=multipart)["ETag"].endswith('-3"')  # 3 parts
    return {key: _sha256(body) for key, body in bodies.items()}


def _bucket_digests(s3, bucket: str) -> dict[str, str]:
    """The sha256 of every object of ``bucket``, by key."""
    return {
        o["Key"]: _sha256(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }


def _log_artifact(tracking_uri: str, folder: Path) -> tuple[str, str]:
    """A run with one artifact (:data:`ARTIFACT`) logged through the MLflow server, which
    proxies it into the bucket; its run id and the artifact's sha256."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.create_run(client.create_experiment("restart"))
    blob = folder / Path(ARTIFACT).name
    blob.write_bytes(os.urandom(300_000))
    client.log_artifact(run.info.run_id, str(blob), str(Path(ARTIFACT).parent))
    client.set_terminated(run.info.run_id)
    return run.info.run_id, _sha256(blob.read_bytes())


def _artifact_digest(tracking_uri: str, run_id: str, folder: Path) -> str:
    """The sha256 of :data:`ARTIFACT` of ``run_id``, downloaded through the MLflow server."""
    from mlflow.artifacts import download_artifacts

    folder.mkdir(parents=True)
    path = download_artifacts(
        run_id=run_id, artifact_path=ARTIFACT, dst_path=str(folder), tracking_uri=tracking_uri
    )
    return _sha256(Path(path).read_bytes())


@pytest.mark.stack
@pytest.mark.timeout(480)
def test_objects_and_artifacts_survive_a_restart_and_a_killed_s3_server(
    tmp_path: Path, redis_url: str
) -> None:
    databases = fresh_databases()
    ports = {"s3": free_port(), "mlflow": free_port(), "dagster": free_port()}
    env = stack_env(tmp_path, redis_url, databases)
    stacks: list[NativeStack] = []
    try:
        # -- a first stack: objects through S3, an artifact through MLflow ------------------
        stacks.append(_start_services(tmp_path, env, ports, databases, "first"))
        stack = stacks[-1]
        tracking_uri, bucket = stack.env["MLFLOW_TRACKING_URI"], stack.env["MLOPS_S3_BUCKET"]
        s3 = s3_client(stack.env["AWS_ENDPOINT_URL"], stack.env)
        written = _put_objects(s3, bucket, "before-restart")
        run_id, artifact = _log_artifact(tracking_uri, tmp_path)
        before = _bucket_digests(s3, bucket)
        assert written.items() <= before.items()
        assert [k for k in before if k.startswith("mlflow/") and k.endswith(ARTIFACT)], before
        assert any((tmp_path / ".dagster-stack" / S3_DATA_DIR).glob("*.dat"))  # on disk
        _stop_and_check(stack)

        # -- SIGTERM, then a new stack on the same folder: everything is back -------------
        stacks.append(_start_services(tmp_path, env, ports, databases, "after-sigterm"))
        stack = stacks[-1]
        s3 = s3_client(stack.env["AWS_ENDPOINT_URL"], stack.env)
        assert _bucket_digests(s3, bucket) == before
        assert _artifact_digest(tracking_uri, run_id, tmp_path / "download-1") == artifact

        # -- SIGKILL to the S3 server: the launcher stops the rest; what was written stays --
        before |= _put_objects(s3, bucket, "before-kill")
        [weed] = [p for p in stack.descendants if p.name() == "weed"]
        weed.kill()
        assert stack.proc.wait(timeout=60) == 1, stack.tail()
        assert not _alive(stack.descendants), stack.tail()
        stacks.append(_start_services(tmp_path, env, ports, databases, "after-sigkill"))
        stack = stacks[-1]
        s3 = s3_client(stack.env["AWS_ENDPOINT_URL"], stack.env)
        assert _bucket_digests(s3, bucket) == before
        assert _artifact_digest(tracking_uri, run_id, tmp_path / "download-2") == artifact
        _stop_and_check(stack)
    finally:
        for leftover in stacks:
            _stop_leftovers(leftover)
        drop_databases(databases)


def test_seaweedfs_keeps_the_ports_of_its_last_start_while_they_are_free(tmp_path: Path) -> None:
    s3_port = free_port()
    first = seaweedfs_ports(tmp_path, s3_port)
    assert s3_port not in first.values()
    assert len(set(first.values())) == len(first)
    for name in SEAWEEDFS_INTERNAL_PORTS:
        assert first[f"{name}.grpc"] == first[name] + SEAWEEDFS_GRPC_OFFSET
    # As `weed mini` writes them at its start.
    lines = [f"{name}={port}" for name, port in first.items()]
    options = tmp_path / SEAWEEDFS_OPTIONS_FILE
    options.write_text("# Mini server configuration\nadmin.ui=false\n" + "\n".join(lines) + "\n")
    assert seaweedfs_ports(tmp_path, s3_port) == first

    with socket.socket() as busy:  # someone else took the master's port meanwhile
        busy.bind(("127.0.0.1", first["master.port"]))
        busy.listen()
        again = seaweedfs_ports(tmp_path, s3_port)
    assert again["master.port"] != first["master.port"]
    assert again["master.port.grpc"] == again["master.port"] + SEAWEEDFS_GRPC_OFFSET
    assert {k: v for k, v in again.items() if not k.startswith("master.")} == {
        k: v for k, v in first.items() if not k.startswith("master.")
    }
