"""`mlops stack` without starting the stack: addresses and variables, error messages, process
supervision. The whole stack end to end is `test_native_stack.py`."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.tooling import cli, native_stack
from mlops_assets.tooling.native_stack import StackError
from mlops_assets_tests.fixtures.services import POSTGRES_ADMIN_URL, free_port


def _plan(
    tmp_path: Path,
    environ: dict[str, str] | None = None,
    *,
    workers: int = 0,
    training_workers: int = 0,
    **ports: int,
):
    environ = {"MLOPS_HOME": str(tmp_path), **(environ or {})}
    settings = load_settings("stack", environ=environ)
    return native_stack.plan_stack(
        settings,
        tmp_path / ".dagster-stack",
        s3_port=ports.get("s3_port", 9000),
        mlflow_port=ports.get("mlflow_port", 5000),
        dagster_port=ports.get("dagster_port", 3000),
        environ=environ,
        workers=workers,
        training_workers=training_workers,
    )


def test_urls_name_the_database_and_driver() -> None:
    url = "postgresql://u:p@db:5433/mlops?sslmode=require"
    assert (
        native_stack.with_database(url, "dagster", "psycopg2")
        == "postgresql+psycopg2://u:p@db:5433/dagster?sslmode=require"
    )
    assert (
        native_stack.with_database(url, "mlflow")
        == "postgresql://u:p@db:5433/mlflow?sslmode=require"
    )
    assert native_stack.libpq_url("postgresql+psycopg://u@db/x") == "postgresql://u@db/x"
    assert native_stack.database_of(url) == "mlops"


def test_dagster_url_gets_the_psycopg2_driver() -> None:
    assert native_stack.dagster_postgres_url("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"
    kept = "postgresql+psycopg2://u@h/d"
    assert native_stack.dagster_postgres_url(kept) == kept
    with pytest.raises(StackError) as refused:
        native_stack.dagster_postgres_url("postgresql+psycopg://u:secret@h/d")
    message = str(refused.value)
    assert "DAGSTER_POSTGRES_URL" in message and "postgresql+psycopg2://" in message
    assert "secret" not in message


def test_plan_defaults_derive_from_the_stack_profile(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"AWS_ENDPOINT_URL": "http://minio:9000"})
    assert plan.dagster_postgres_url == "postgresql+psycopg2://postgres@127.0.0.1:5432/dagster"
    assert plan.mlflow_backend_uri == "postgresql+psycopg://postgres@127.0.0.1:5432/mlflow"
    assert plan.dagster_postgres_var == plan.mlflow_backend_var == "MLOPS_POSTGRES_URL"
    assert plan.mlflow_artifacts_destination == "s3://mlops-assets/mlflow"
    assert plan.buckets == ["mlops-assets"]
    assert plan.log_dir == tmp_path / ".dagster-stack" / "stack-logs"
    exports = plan.exports()
    assert exports["MLOPS_PROFILE"] == "stack"
    # The stack's own services, whatever the environment pointed at.
    assert exports["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert exports["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert exports["DAGSTER_HOME"] == str(tmp_path / ".dagster-stack")
    assert exports["AWS_ACCESS_KEY_ID"] == "testing"  # moto takes any key
    assert {var for var, _ in plan.databases()} == {
        "MLOPS_POSTGRES_URL",
        "MLOPS_FEAST_REGISTRY",
    }
    assert [url for _, url in plan.databases()].count(plan.settings.postgres_url) == 1


def test_plan_takes_explicit_urls_keys_and_free_ports(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        {
            "DAGSTER_POSTGRES_URL": "postgresql://d@h/runs",
            "MLFLOW_BACKEND_STORE_URI": "postgresql+psycopg://m@h/tracking",
            "AWS_ACCESS_KEY_ID": "minio",
            "AWS_SECRET_ACCESS_KEY": "minio-secret",
            "MLOPS_S3_BUCKET": "lake",
        },
        s3_port=0,
        mlflow_port=0,
    )
    assert plan.dagster_postgres_url == "postgresql+psycopg2://d@h/runs"
    assert plan.dagster_postgres_var == "DAGSTER_POSTGRES_URL"
    assert plan.mlflow_backend_var == "MLFLOW_BACKEND_STORE_URI"
    assert plan.aws_env["AWS_ACCESS_KEY_ID"] == "minio"
    assert plan.s3_port > 0 and plan.mlflow_port > 0
    assert plan.mlflow_artifacts_destination == "s3://lake/mlflow"
    lines = plan.env_lines()
    assert "export MLOPS_S3_BUCKET=lake" in lines
    assert all(line.startswith("export ") for line in lines)


def test_print_env_runs_the_stack_profile_whatever_the_active_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "local")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    # Exported for the local profile (`eval "$(mlops env)"`): not the stack's instance.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / ".dagster"))
    assert cli.main(["stack", "--print-env", "--s3-port", "9100"]) == 0
    out = capsys.readouterr().out
    assert "export MLOPS_PROFILE=stack" in out
    assert f"export DAGSTER_HOME={tmp_path}/.dagster-stack" in out
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:9100" in out
    assert (tmp_path / ".dagster-stack" / "dagster.yaml").read_text().startswith("# Dagster")


def test_missing_moto_says_to_install_the_dev_group(monkeypatch: pytest.MonkeyPatch) -> None:
    real = native_stack.importlib.util.find_spec
    monkeypatch.setattr(
        native_stack.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "moto" else real(name, *a),
    )
    with pytest.raises(StackError, match="install the dev group"):
        native_stack.require_moto()


def test_unreachable_services_name_their_variable(tmp_path: Path) -> None:
    nobody = free_port()
    url = f"postgresql://postgres:secret@127.0.0.1:{nobody}/mlops"
    with pytest.raises(StackError, match="MLOPS_POSTGRES_URL") as refused:
        native_stack.ensure_databases([("MLOPS_POSTGRES_URL", url)], timeout=2)
    assert "secret" not in str(refused.value)
    with pytest.raises(StackError, match="MLOPS_REDIS_URL"):
        native_stack.check_redis(f"redis://127.0.0.1:{nobody}/0", timeout=1)


def test_run_stack_stops_before_starting_anything_when_postgres_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = free_port()
    plan = _plan(
        tmp_path,
        {"MLOPS_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{nobody}/mlops"},
        s3_port=0,
        mlflow_port=0,
        dagster_port=0,
    )
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert native_stack.run_stack(plan) == 1
    assert "MLOPS_POSTGRES_URL" in capsys.readouterr().err
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    assert not plan.env_file.exists()


def test_a_taken_port_is_refused_with_the_option_to_change(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        plan = _plan(tmp_path, s3_port=busy.getsockname()[1], mlflow_port=0, dagster_port=0)
        with pytest.raises(StackError, match="--s3-port"):
            native_stack._ports_free(plan, start_dagster=True)


def test_stopping_a_group_stops_grandchildren_too() -> None:
    proc = native_stack.spawn(
        ["sh", "-c", "sleep 60 & sleep 60 & wait"], env={"PATH": "/usr/bin:/bin"}
    )
    try:
        deadline = time.monotonic() + 5
        while len(psutil.Process(proc.pid).children()) < 2:
            assert time.monotonic() < deadline, "sh did not start its children"
            time.sleep(0.05)
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        native_stack.stop_process_group(proc, timeout=5)
    assert proc.returncode is not None
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


def test_a_dead_service_stops_the_stack_with_its_log_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _plan(tmp_path, dagster_port=free_port())
    log = tmp_path / "mlflow.log"
    proc = native_stack.spawn(
        [sys.executable, "-c", "print('backend store is gone'); raise SystemExit(3)"],
        env={},
        log_path=log,
    )
    proc.wait(timeout=10)
    service = native_stack.Service("mlflow", proc, log)
    assert native_stack._supervise(plan, [service], False, print) == 3
    err = capsys.readouterr().err
    assert "mlflow exited with code 3" in err and "backend store is gone" in err


@pytest.mark.stack
def test_missing_databases_are_created_once() -> None:
    name = f"mlops_test_created_{uuid.uuid4().hex[:8]}"
    url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        assert native_stack.ensure_databases([("MLOPS_POSTGRES_URL", url)]) == [name]
        assert native_stack.ensure_databases([("MLOPS_POSTGRES_URL", url)]) == []
        psycopg.connect(url).close()
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_stack_help_states_what_is_kept_and_where() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlops_assets.tooling.cli", "stack", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "ON DISK" in done.stdout and "s3-data" in done.stdout
    assert "stack.env" in done.stdout and "stack-logs" in done.stdout


# -- Celery workers (`--workers`); started and stopped for real in test_stack_workers.py ----------


def test_workers_make_the_stack_a_celery_cluster_on_the_broker_found(tmp_path: Path) -> None:
    broker = "amqp://mlops:s3cret@rabbit.internal:5672/cluster"
    plan = _plan(tmp_path, {"MLOPS_CELERY_BROKER_URL": broker}, workers=2)
    exports = plan.exports()
    assert exports["MLOPS_EXECUTOR"] == "celery"
    assert exports["MLOPS_CELERY_BROKER_URL"] == broker
    assert exports["MLOPS_CELERY_BACKEND_URL"] == "rpc://"
    assert "export MLOPS_EXECUTOR=celery" in plan.env_lines()
    # Without workers nothing changes: the profile's executor, whatever the broker variable says.
    plain = _plan(tmp_path, {"MLOPS_CELERY_BROKER_URL": broker})
    assert plain.exports()["MLOPS_EXECUTOR"] == "multiprocess"
    assert {k: v for k, v in exports.items() if k != "MLOPS_EXECUTOR"} == {
        k: v for k, v in plain.exports().items() if k != "MLOPS_EXECUTOR"
    }


def test_print_env_with_workers_names_the_default_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLOPS_CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("MLOPS_EXECUTOR", raising=False)
    assert cli.main(["stack", "--print-env", "--workers", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "export MLOPS_EXECUTOR=celery" in out
    assert "export MLOPS_CELERY_BROKER_URL=amqp://127.0.0.1:5672//" in out  # RabbitMQ's guest


def test_training_workers_without_workers_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.main(["stack", "--print-env", "--training-workers", "1"])
    assert refused.value.code == 2
    assert "--training-workers needs --workers N" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        cli.main(["stack", "--print-env", "--workers", "-1"])
    assert refused.value.code == 2
    with pytest.raises(StackError, match="training workers need default workers"):
        _plan(tmp_path, training_workers=1)


def test_worker_commands_give_the_training_queue_a_consumer() -> None:
    from mlops_assets.core.cluster import QUEUES

    mlops = [sys.executable, "-m", "mlops_assets.tooling.cli", "worker"]
    shared = native_stack.worker_commands(2, 0)
    assert [w.command() for w in shared] == [
        [*mlops, "--queue", "default", "--queue", "training", "--name", "default-1"],
        [*mlops, "--queue", "default", "--queue", "training", "--name", "default-2"],
    ]
    split = native_stack.worker_commands(1, 1)
    assert [w.command() for w in split] == [
        [*mlops, "--queue", "default", "--name", "default-1"],
        [*mlops, "--queue", "training", "--name", "training-1"],
    ]
    assert set(QUEUES) == {q for w in shared for q in w.queues}  # the queues the cluster knows
    assert native_stack.worker_commands(0, 0) == []


def test_workers_are_stopped_together_the_other_services_one_by_one() -> None:
    def service(name: str, group: str = "") -> native_stack.Service:
        return native_stack.Service(name, None, Path(name), stop_group=group)  # type: ignore[arg-type]

    order = [
        service("dagster"),
        service("worker default-2", "workers"),
        service("worker default-1", "workers"),
        service("mlflow"),
        service("seaweedfs"),
    ]
    batches = native_stack._stop_batches(order)
    assert [[s.name for s in batch] for batch in batches] == [
        ["dagster"],
        ["worker default-2", "worker default-1"],
        ["mlflow"],
        ["seaweedfs"],
    ]


def test_a_dead_broker_stops_the_stack_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = free_port()
    plan = _plan(
        tmp_path,
        {"MLOPS_CELERY_BROKER_URL": f"amqp://guest:secret@127.0.0.1:{nobody}//"},
        workers=1,
        s3_port=0,
        mlflow_port=0,
        dagster_port=0,
    )
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert native_stack.run_stack(plan) == 1
    err = capsys.readouterr().err
    assert "MLOPS_CELERY_BROKER_URL" in err and "start RabbitMQ" in err
    assert "secret" not in err
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    assert not plan.env_file.exists() and not plan.log_dir.exists()
