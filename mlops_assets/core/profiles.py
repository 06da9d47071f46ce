"""Deployment profiles: the one place that decides where data, runs, models and features live.

Two profiles share one code base:

* ``local`` (default, embedded): asset data under ``.data/``, the Dagster instance and MLflow on
  SQLite, the Feast registry in a file and its online store in SQLite. No server is needed.
* ``stack`` (production-like): asset data in an S3 bucket (MinIO, or moto's server in tests),
  PostgreSQL for the Dagster instance and the Feast registry, Redis as the Feast online store,
  and an MLflow tracking server.

Every setting comes from an environment variable with a default per profile; the defaults sit side
by side in ``_DEFAULTS`` so the difference between deployments reads in one screen. Every variable is
listed, with its default, in ``.env.example``. Nobody else reads ``os.environ`` for these decisions.

This module is imported by the code location, so it imports nothing heavy at module level.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse, urlunparse

Profile = Literal["local", "stack"]
PROFILES: tuple[Profile, ...] = ("local", "stack")

PROFILE_ENV = "MLOPS_PROFILE"

# Setting name -> environment variable. Where a well-known variable exists (AWS_ENDPOINT_URL,
# MLFLOW_TRACKING_URI) we use it, because boto3, s3fs and MLflow read it themselves too.
ENV_VARS: dict[str, str] = {
    "home": "MLOPS_HOME",
    "data_root": "MLOPS_DATA_ROOT",
    "s3_bucket": "MLOPS_S3_BUCKET",
    "s3_endpoint_url": "AWS_ENDPOINT_URL",
    "aws_region": "AWS_DEFAULT_REGION",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
    "mlflow_artifact_root": "MLOPS_MLFLOW_ARTIFACT_ROOT",
    "feast_repo_path": "MLOPS_FEAST_REPO",
    "feast_project": "MLOPS_FEAST_PROJECT",
    "feast_registry": "MLOPS_FEAST_REGISTRY",
    "feast_online_store": "MLOPS_FEAST_ONLINE_STORE",
    "redis_url": "MLOPS_REDIS_URL",
    "postgres_url": "MLOPS_POSTGRES_URL",
    "run_config": "MLOPS_RUN_CONFIG",
    "executor": "MLOPS_EXECUTOR",
    "celery_broker_url": "MLOPS_CELERY_BROKER_URL",
    "celery_backend_url": "MLOPS_CELERY_BACKEND_URL",
}

#: Where a run's steps execute: in the run worker's process, in a process each on its machine
#: (Dagster's default), on a Celery cluster (:mod:`.cluster`), or in a Kubernetes Job each
#: (``dagster-k8s``'s ``k8s_job_executor``: deploy/helm/values.yaml).
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")
#: The queues of a Celery cluster (:mod:`.cluster`): every step, and the steps of the training
#: pool (:func:`mlops_assets.core.policies.training_step`), which big workers can take alone.
DEFAULT_QUEUE = "default"
TRAINING_QUEUE = "training"
QUEUES = (DEFAULT_QUEUE, TRAINING_QUEUE)

# Defaults per profile. "{home}" and "{s3_bucket}" are filled in from the resolved settings, so
# overriding MLOPS_HOME or MLOPS_S3_BUCKET moves everything that derives from them.
_DEFAULTS: dict[Profile, dict[str, str]] = {
    "local": {
        "home": ".",
        "data_root": "{home}/.data",
        "s3_bucket": "",
        "s3_endpoint_url": "",
        "aws_region": "us-east-1",
        "mlflow_tracking_uri": "sqlite:///{home}/.mlflow/mlflow.db",
        "mlflow_artifact_root": "{home}/.mlflow/artifacts",
        "feast_repo_path": "{home}/feature_repo",
        "feast_project": "mlops_assets",
        "feast_registry": "{home}/.data/feast/registry.db",
        "feast_online_store": "sqlite",
        "redis_url": "",
        "postgres_url": "",
        "run_config": "{home}/mlops.yaml",
        "executor": "multiprocess",
        # Unused unless MLOPS_EXECUTOR=celery, which the local profile refuses (see the check).
        "celery_broker_url": "amqp://127.0.0.1:5672//",
        "celery_backend_url": "rpc://",
    },
    "stack": {
        "home": ".",
        "data_root": "s3://{s3_bucket}",
        "s3_bucket": "mlops-assets",
        "s3_endpoint_url": "http://127.0.0.1:9000",
        "aws_region": "us-east-1",
        "mlflow_tracking_uri": "http://127.0.0.1:5000",
        # Empty: the tracking server decides (it proxies artifacts to S3), so clients need no keys.
        "mlflow_artifact_root": "",
        "feast_repo_path": "{home}/feature_repo",
        "feast_project": "mlops_assets",
        "feast_registry": "postgresql+psycopg://postgres@127.0.0.1:5432/mlops",
        "feast_online_store": "redis",
        "redis_url": "redis://127.0.0.1:6379/0",
        "postgres_url": "postgresql://postgres@127.0.0.1:5432/mlops",
        "run_config": "{home}/mlops.yaml",
        "executor": "multiprocess",
        # RabbitMQ's guest user (no password in the URL: AMQP's default); redis:// is accepted.
        "celery_broker_url": "amqp://127.0.0.1:5672//",
        # Step results travel back to the run worker on the broker itself (Celery's RPC backend).
        "celery_backend_url": "rpc://",
    },
}


class ProfileError(ValueError):
    """A profile setting is missing, malformed or points at something that does not answer."""


@dataclass(frozen=True)
class Settings:
    """Every path, URI and endpoint of one deployment, resolved from the environment."""

    profile: Profile
    home: str
    data_root: str
    s3_bucket: str
    s3_endpoint_url: str
    aws_region: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    feast_repo_path: str
    feast_project: str
    feast_registry: str
    feast_online_store: str
    redis_url: str
    postgres_url: str
    run_config: str
    executor: str
    celery_broker_url: str
    celery_backend_url: str

    @property
    def data_on_s3(self) -> bool:
        return self.data_root.startswith("s3://")

    def env_var(self, setting: str) -> str:
        """The environment variable that overrides ``setting`` (for error messages)."""
        return ENV_VARS[setting]

    def as_env(self) -> dict[str, str]:
        """The settings as environment variables, e.g. for a subprocess that must see the same."""
        env = {PROFILE_ENV: self.profile}
        for f in fields(self):
            if f.name in ENV_VARS and getattr(self, f.name):
                env[ENV_VARS[f.name]] = str(getattr(self, f.name))
        return env


def active_profile(environ: Mapping[str, str] | None = None) -> Profile:
    """The profile named by ``MLOPS_PROFILE`` (default ``local``)."""
    environ = os.environ if environ is None else environ
    value = environ.get(PROFILE_ENV, "local").strip().lower() or "local"
    if value not in PROFILES:
        raise ProfileError(
            f"{PROFILE_ENV}={value!r} is not a profile; use one of {', '.join(PROFILES)}"
        )
    return value  # type: ignore[return-value]


def load_settings(
    profile: Profile | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting of ``profile`` from ``environ`` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    profile = profile or active_profile(environ)
    defaults = _DEFAULTS[profile]

    def raw(name: str) -> str:
        value = environ.get(ENV_VARS[name])
        return value.strip() if value is not None and value.strip() else defaults[name]

    home = str(Path(raw("home")).expanduser().resolve())
    s3_bucket = raw("s3_bucket")
    values: dict[str, str] = {"home": home, "s3_bucket": s3_bucket}
    for name in ENV_VARS:
        if name not in values:
            values[name] = raw(name).format(home=home, s3_bucket=s3_bucket)

    settings = Settings(profile=profile, **values)
    _validate_syntax(settings)
    return settings


def _validate_syntax(s: Settings) -> None:
    """Catch malformed settings before anything tries to use them."""
    if s.data_on_s3:
        bucket = urlparse(s.data_root).netloc
        if not bucket:
            raise ProfileError(
                f"{ENV_VARS['data_root']}={s.data_root!r} names no bucket "
                f"(set {ENV_VARS['s3_bucket']} or write s3://<bucket>/<prefix>)"
            )
        if s.s3_endpoint_url and urlparse(s.s3_endpoint_url).scheme not in ("http", "https"):
            raise ProfileError(
                f"{ENV_VARS['s3_endpoint_url']}={s.s3_endpoint_url!r} is not an http(s) URL"
            )
    if s.feast_online_store not in ("sqlite", "redis"):
        raise ProfileError(
            f"{ENV_VARS['feast_online_store']}={s.feast_online_store!r}: use 'sqlite' or 'redis'"
        )
    if s.feast_online_store == "redis" and not s.redis_url.startswith(("redis://", "rediss://")):
        raise ProfileError(
            f"{ENV_VARS['redis_url']}={s.redis_url!r} is not a redis:// URL, "
            f"but {ENV_VARS['feast_online_store']}=redis needs one"
        )
    _validate_executor(s)
    scheme = urlparse(s.mlflow_tracking_uri).scheme
    if scheme not in ("sqlite", "http", "https", "postgresql", "postgresql+psycopg", "file", ""):
        raise ProfileError(
            f"{ENV_VARS['mlflow_tracking_uri']}={s.mlflow_tracking_uri!r} has an unsupported scheme"
        )


def _validate_executor(s: Settings) -> None:
    var = ENV_VARS["executor"]
    if s.executor not in EXECUTORS:
        raise ProfileError(
            f"{var}={s.executor!r} is not an executor; use one of {', '.join(EXECUTORS)}"
        )
    if s.executor in ("celery", "k8s") and s.profile != "stack":
        # A Celery worker or a step's pod may run on another machine: it must reach the run's
        # instance, data, models and features over the network, which only the stack profile
        # puts there.
        raise ProfileError(
            f"{var}={s.executor} needs {PROFILE_ENV}=stack: steps on other machines cannot "
            "read the local profile's SQLite instance and files"
        )
    if s.executor != "celery":
        return
    broker = ENV_VARS["celery_broker_url"]
    if urlparse(s.celery_broker_url).scheme not in ("amqp", "amqps", "pyamqp", "redis", "rediss"):
        raise ProfileError(
            f"{broker}={redact_url(s.celery_broker_url)!r} is not an amqp:// (RabbitMQ) or "
            "redis:// URL"
        )
    backend = ENV_VARS["celery_backend_url"]
    if urlparse(s.celery_backend_url).scheme not in ("rpc", "redis", "rediss"):
        raise ProfileError(
            f"{backend}={redact_url(s.celery_backend_url)!r}: use rpc:// (results on the "
            "broker) or a redis:// URL"
        )


def s3_bucket_of(settings: Settings) -> str:
    """The bucket that holds the asset data (``s3://<bucket>/...``)."""
    return urlparse(settings.data_root).netloc


def dagster_home_config(settings: Settings) -> Path:
    """The ``dagster.yaml`` this profile's Dagster instance is configured by.

    ``local`` uses the top-level ``dagster.yaml`` (SQLite under ``DAGSTER_HOME``); ``stack`` uses
    ``docker/dagster.yaml`` (PostgreSQL at ``DAGSTER_POSTGRES_URL``).
    """
    # The files ship with the project (next to the package), whatever MLOPS_HOME points at.
    root = Path(__file__).resolve().parents[2]
    return root / ("dagster.yaml" if settings.profile == "local" else "docker/dagster.yaml")


# -- Start-up checks of the stack profile -------------------------------------------------------

_CHECK_TIMEOUT_S = 3.0
_checked: set[Settings] = set()


def check_stack(settings: Settings, *, force: bool = False) -> None:
    """Check that every service of the stack answers; raise one error naming each bad setting.

    Run when the code location loads with the stack profile, so a wrong endpoint, a missing bucket
    or rejected credentials stop the start-up with a message instead of failing a run halfway.
    Each check has a short timeout; the result is remembered for the rest of the process.
    """
    if settings in _checked and not force:
        return
    problems = [
        problem
        for check in (_check_s3, _check_postgres, _check_redis, _check_mlflow, _check_broker)
        if (problem := check(settings))
    ]
    if problems:
        raise ProfileError(
            "the stack profile is misconfigured:\n" + "\n".join(f"- {p}" for p in problems)
        )
    _checked.add(settings)


def _check_s3(s: Settings) -> str | None:
    if not s.data_on_s3:
        return None
    import boto3
    import botocore.exceptions as bex
    from botocore.config import Config

    endpoint = ENV_VARS["s3_endpoint_url"]
    bucket = s3_bucket_of(s)
    client = boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint_url or None,
        region_name=s.aws_region,
        config=Config(
            connect_timeout=_CHECK_TIMEOUT_S,
            read_timeout=_CHECK_TIMEOUT_S,
            retries={"max_attempts": 1},
        ),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except bex.NoCredentialsError:
        return "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    except (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError) as exc:
        return f"{endpoint}={s.s3_endpoint_url!r} does not answer ({type(exc).__name__})"
    except bex.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            return (
                f"bucket {bucket!r} does not exist at {s.s3_endpoint_url or 'AWS'} "
                f"(create it, or set {ENV_VARS['s3_bucket']} / {ENV_VARS['data_root']})"
            )
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            return (
                f"S3 rejected the credentials for bucket {bucket!r} ({code}): "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return f"S3 check of bucket {bucket!r} failed: {exc}"
    return None


def _check_postgres(s: Settings) -> str | None:
    targets = [(ENV_VARS["postgres_url"], s.postgres_url)]
    if s.feast_registry.startswith("postgresql"):
        targets.append((ENV_VARS["feast_registry"], s.feast_registry))
    problems = []
    for var, url in targets:
        if not url:
            continue
        import psycopg

        try:
            psycopg.connect(libpq_url(url), connect_timeout=int(_CHECK_TIMEOUT_S)).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problems.append(f"{var}={redact_url(url)!r}: PostgreSQL refused ({reason})")
    return "; ".join(problems) or None


def _check_redis(s: Settings) -> str | None:
    if s.feast_online_store != "redis":
        return None
    return redis_problem(s.redis_url, ENV_VARS["redis_url"], _CHECK_TIMEOUT_S)


def redis_problem(url: str, var: str, timeout: float) -> str | None:
    """Why the Redis at ``url`` (set by ``var``) does not answer a PING, or None if it does."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{var}={redact_url(url)!r} does not answer ({exc})"
    finally:
        client.close()
    return None


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (``postgresql+psycopg://``, ``+psycopg2``) as libpq reads it."""
    return urlunparse(urlparse(url)._replace(scheme="postgresql"))


def _check_mlflow(s: Settings) -> str | None:
    if not s.mlflow_tracking_uri.startswith(("http://", "https://")):
        return None
    import urllib.error
    import urllib.request

    url = s.mlflow_tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=_CHECK_TIMEOUT_S) as response:
            if response.status == 200:
                return None
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return (
            f"{ENV_VARS['mlflow_tracking_uri']}={s.mlflow_tracking_uri!r} does not answer ({exc})"
        )
    return (
        f"{ENV_VARS['mlflow_tracking_uri']}={s.mlflow_tracking_uri!r} answered {status} on /health"
    )


def _check_broker(s: Settings) -> str | None:
    if s.executor != "celery":
        return None
    return broker_problem(s.celery_broker_url, ENV_VARS["celery_broker_url"], _CHECK_TIMEOUT_S)


def broker_problem(url: str, var: str, timeout: float) -> str | None:
    """Why the Celery broker at ``url`` (set by ``var``) refuses a connection (none open, bad
    credentials, unknown virtual host), or None if it accepts one."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises the transport's own errors (socket, AMQP, Redis)
        return f"{var}={redact_url(url)!r}: the Celery broker refused ({type(exc).__name__}: {exc})"
    return None


def redact_url(url: str) -> str:
    """``url`` with any password replaced, so it can go into logs and error messages."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urlunparse(parsed._replace(netloc=netloc))
