"""Shared fixtures: real services on loopback, and an isolated MLOPS_HOME per test."""

from __future__ import annotations

from pathlib import Path

import pytest

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
