"""Profiles: settings resolved from the environment, and start-up checks that name the setting."""

import os
from pathlib import Path

import pytest

from mlops_assets.core.profiles import ProfileError, check_stack, load_settings
from mlops_assets_tests.fixtures.cli import validate_code_location
from mlops_assets_tests.fixtures.services import (
    FAKE_AWS_ENV,
    REDIS_TEST_URL,
    S3Server,
    free_port,
    moto_s3,
)


def test_local_defaults_live_under_home(tmp_path: Path) -> None:
    s = load_settings(environ={"MLOPS_HOME": str(tmp_path)})
    assert s.profile == "local"
    assert s.data_root == f"{tmp_path}/.data"
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path}/.mlflow/mlflow.db"
    assert s.feast_registry == f"{tmp_path}/.data/feast/registry.db"
    assert s.feast_online_store == "sqlite"
    assert not s.data_on_s3


def test_stack_defaults_and_overrides() -> None:
    s = load_settings(
        environ={
            "MLOPS_PROFILE": "stack",
            "MLOPS_S3_BUCKET": "lake",
            "MLOPS_REDIS_URL": "redis://cache:6380/2",
        }
    )
    assert s.data_root == "s3://lake"
    assert s.s3_endpoint_url == "http://127.0.0.1:9000"
    assert s.redis_url == "redis://cache:6380/2"
    assert s.feast_online_store == "redis"
    assert s.as_env()["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"MLOPS_PROFILE": "prod"}, "MLOPS_PROFILE"),
        ({"MLOPS_PROFILE": "stack", "AWS_ENDPOINT_URL": "minio:9000"}, "AWS_ENDPOINT_URL"),
        ({"MLOPS_PROFILE": "stack", "MLOPS_DATA_ROOT": "s3:///x"}, "MLOPS_DATA_ROOT"),
        ({"MLOPS_FEAST_ONLINE_STORE": "dynamo"}, "MLOPS_FEAST_ONLINE_STORE"),
        ({"MLOPS_PROFILE": "stack", "MLOPS_REDIS_URL": "localhost:6379"}, "MLOPS_REDIS_URL"),
        ({"MLFLOW_TRACKING_URI": "ftp://x"}, "MLFLOW_TRACKING_URI"),
        ({"MLOPS_EXECUTOR": "dask"}, "MLOPS_EXECUTOR"),
        # Steps on other machines cannot read the local profile's SQLite and files.
        ({"MLOPS_EXECUTOR": "celery"}, "MLOPS_EXECUTOR=celery needs MLOPS_PROFILE=stack"),
        ({"MLOPS_EXECUTOR": "k8s"}, "MLOPS_EXECUTOR=k8s needs MLOPS_PROFILE=stack"),
        (
            {
                "MLOPS_PROFILE": "stack",
                "MLOPS_EXECUTOR": "celery",
                "MLOPS_CELERY_BROKER_URL": "http://u:secret@broker:5672",
            },
            r"MLOPS_CELERY_BROKER_URL='http://u:\*\*\*@broker:5672' is not an amqp://",
        ),
        (
            {
                "MLOPS_PROFILE": "stack",
                "MLOPS_EXECUTOR": "celery",
                "MLOPS_CELERY_BACKEND_URL": "db+sqlite:///results.db",
            },
            "MLOPS_CELERY_BACKEND_URL",
        ),
    ],
)
def test_malformed_settings_name_their_variable(environ: dict, named: str) -> None:
    with pytest.raises(ProfileError, match=named):
        load_settings(environ=environ)


def _stack(s3: S3Server, **overrides: str):
    environ = {
        "MLOPS_PROFILE": "stack",
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "MLOPS_S3_BUCKET": s3.bucket,
        "MLOPS_REDIS_URL": REDIS_TEST_URL,
        "MLOPS_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "MLOPS_FEAST_REGISTRY": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "MLFLOW_TRACKING_URI": "sqlite:///unused.db",
        **overrides,
    }
    return load_settings(environ=environ)


@pytest.mark.stack
def test_stack_check_passes_against_real_services(aws_env: S3Server) -> None:
    check_stack(_stack(aws_env), force=True)


@pytest.mark.stack
@pytest.mark.parametrize(
    ("overrides", "named", "reason"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:{closed}"}, "AWS_ENDPOINT_URL", "does not answer"),
        ({"MLOPS_S3_BUCKET": "no-such-bucket"}, "MLOPS_S3_BUCKET", "does not exist"),
        (
            {"MLOPS_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/no_such_db"},
            "MLOPS_POSTGRES_URL",
            "no_such_db",
        ),
        ({"MLOPS_REDIS_URL": "redis://127.0.0.1:{closed}/0"}, "MLOPS_REDIS_URL", "does not answer"),
        (
            {"MLFLOW_TRACKING_URI": "http://127.0.0.1:{closed}"},
            "MLFLOW_TRACKING_URI",
            "does not answer",
        ),
        (
            {
                "MLOPS_EXECUTOR": "celery",
                "MLOPS_CELERY_BROKER_URL": "amqp://mlops:secret@127.0.0.1:{closed}//",
            },
            "MLOPS_CELERY_BROKER_URL='amqp://mlops:***@127.0.0.1:",
            "the Celery broker refused",
        ),
    ],
)
def test_misconfigured_stack_fails_naming_the_setting(
    aws_env: S3Server, overrides: dict, named: str, reason: str
) -> None:
    closed = free_port()
    settings = _stack(aws_env, **{k: v.format(closed=closed) for k, v in overrides.items()})
    with pytest.raises(ProfileError) as err:
        check_stack(settings, force=True)
    message = str(err.value)
    assert named in message and reason in message
    # Only the broken setting is reported.
    assert message.count("\n- ") == 1


@pytest.mark.stack
def test_rejected_s3_credentials_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # A moto server that enforces authentication: unknown keys get 403 InvalidAccessKeyId.
    with moto_s3(None, INITIAL_NO_AUTH_ACTION_COUNT="0") as server:
        for key, value in FAKE_AWS_ENV.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        with pytest.raises(ProfileError, match="AWS_ACCESS_KEY_ID") as err:
            check_stack(_stack(S3Server(server.endpoint_url, bucket="any")), force=True)
    assert "rejected the credentials" in str(err.value)


@pytest.mark.stack
def test_code_location_refuses_to_load_on_a_broken_stack(aws_env: S3Server, tmp_path) -> None:
    env = {
        **os.environ,
        **_stack(aws_env, MLOPS_S3_BUCKET="missing-bucket").as_env(),
        "DAGSTER_HOME": str(tmp_path),
    }
    proc = validate_code_location(env)
    assert proc.returncode != 0
    assert "MLOPS_S3_BUCKET" in proc.stdout + proc.stderr
