"""Shared fixtures: real services on loopback, and an isolated MLOPS_HOME per test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mlops_assets.core.profiles import Settings

pytest_plugins = [
    "mlops_assets_tests.fixtures.services",
    "mlops_assets_tests.fixtures.mlflow_server",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh local-profile home: data, MLflow and Feast state all under ``tmp_path``.

    The Feast repo of the project is used as it is (its definitions are code, not state).
    """
    monkeypatch.setenv("MLOPS_PROFILE", "local")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_FEAST_REPO", str(REPO_ROOT / "feature_repo"))
    for var in (
        "MLOPS_DATA_ROOT",
        "MLFLOW_TRACKING_URI",
        "AWS_ENDPOINT_URL",
        "MLOPS_FEAST_REGISTRY",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@dataclass(frozen=True)
class StackProfile:
    """The stack profile of one test, on this machine's real services: asset data under
    ``prefix`` in moto's S3, Feast's registry and the stack's checks on fresh PostgreSQL
    databases, Redis online store, MLflow server."""

    settings: Settings
    prefix: str
    s3: Any

    def keys(self) -> set[str]:
        """Every object under the data root, relative to it (``demand/clean/2024-05-01.parquet``)."""
        base = self.prefix.removeprefix(f"s3://{self.s3.bucket}/")
        listed = self.s3.client().list_objects_v2(Bucket=self.s3.bucket, Prefix=base)
        return {o["Key"].removeprefix(base + "/") for o in listed.get("Contents", [])}

    def read(self, key: str) -> bytes:
        base = self.prefix.removeprefix(f"s3://{self.s3.bucket}/")
        return (
            self.s3.client().get_object(Bucket=self.s3.bucket, Key=f"{base}/{key}")["Body"].read()
        )


@pytest.fixture
def stack_profile(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    aws_env,
    redis_url: str,
    postgres_database,
    mlflow_server: str,
) -> Callable[[str], StackProfile]:
    """Switch this test to the stack profile for a use case: ``stack_profile("fraud")``.

    Every setting points at a real service, and ``check_stack`` has passed before it returns.
    """
    from mlops_assets.core.profiles import check_stack, load_settings

    def switch(use_case: str) -> StackProfile:
        prefix = f"s3://{aws_env.bucket}/{use_case}-stack-{tmp_path.name}"
        env = {
            "MLOPS_PROFILE": "stack",
            "MLOPS_HOME": str(tmp_path),
            "MLOPS_FEAST_REPO": str(REPO_ROOT / "feature_repo"),
            "MLOPS_DATA_ROOT": prefix,
            "MLOPS_S3_BUCKET": aws_env.bucket,
            "MLOPS_REDIS_URL": redis_url,
            "MLOPS_FEAST_REGISTRY": postgres_database(f"feast_{use_case}"),
            "MLOPS_POSTGRES_URL": postgres_database(f"mlops_{use_case}"),
            "MLFLOW_TRACKING_URI": mlflow_server,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        check_stack(settings, force=True)
        return StackProfile(settings=settings, prefix=prefix, s3=aws_env)

    return switch
