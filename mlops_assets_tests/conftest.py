"""Shared fixtures: real services on loopback, and an isolated MLOPS_HOME per test."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mlops_assets_tests.fixtures.local_profile import use_local_profile
from mlops_assets_tests.fixtures.paths import REPO_ROOT
from mlops_assets_tests.fixtures.stack_profile import StackProfile

pytest_plugins = [
    "mlops_assets_tests.fixtures.services",
    "mlops_assets_tests.fixtures.mlflow_server",
    "mlops_assets_tests.fixtures.dagster_ui",
]

# The code's own defaults, not those of a deployment file a developer's demo left in the repo
# (`mlops.yaml`): set before any test imports the definitions, which read it once. Tests of that
# file point MLOPS_RUN_CONFIG at their own.
os.environ["MLOPS_RUN_CONFIG"] = os.devnull


@pytest.fixture(autouse=True)
def _fresh_feature_stores() -> None:
    """Each test starts without the Feast stores and parsed repos an earlier test of the same
    worker cached (the services' tests share one worker): isolation, not a known failure."""
    from mlops_assets.core.feature_store import clear_caches

    clear_caches()


@pytest.fixture
def local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh local-profile home: data, MLflow and Feast state all under ``tmp_path``.

    The Feast repo of the project is used as it is (its definitions are code, not state).
    """
    return use_local_profile(monkeypatch, tmp_path)


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


# Fixtures and modules that reach this machine's shared services (PostgreSQL databases of fixed
# names, Redis database 13, the session's S3 and MLflow servers, the native stack).
_SERVICE_FIXTURES = {
    "stack_profile",
    "postgres_database",
    "redis_url",
    "aws_env",
    "s3_server",
    "mlflow_server",
}
# Modules whose tests reach them through `request.getfixturevalue` (a parametrized flavour), which
# collection does not see: `test_feature_store` and `test_online` flush Redis database 13, and a
# stack test running beside them on the other worker lost its online features (a 404, or another
# test's values).
_SERVICE_MODULES = {
    "test_locks",
    "test_profiles",
    "test_promotion_race",
    "test_cli_stack",
    "test_feature_store",
    "test_online",
}


# The tests that take minutes each (the UI's backfills, `mlops demo`, every README command):
# started first, so that the short tests fill the other worker around them instead of two of
# them ending the session on one worker while the other one idles (longest first is what keeps
# two workers busy to the end; at the end of the collection they made the session minutes
# longer).
_LONGEST = (
    "test_ui_backfills.py::",
    "test_definitions.py::test_demo_",
    "test_readme_commands.py::",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (`-n`, as scripts/test.sh runs it), the tests that use the shared
    services run on one worker, one after the other, as they would without it: two of them at
    once would flush each other's Redis database and drop each other's PostgreSQL databases.
    Everything else (temp homes, free ports) is spread over the workers. The services' group (the
    longest unit of work) and the longest tests go first."""
    services = set()
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if (
            item.get_closest_marker("stack")
            or _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
            or module in _SERVICE_MODULES
        ):
            item.add_marker(pytest.mark.xdist_group("services"))
            services.add(item.nodeid)

    def rank(item: pytest.Item) -> int:
        if item.nodeid in services:
            return 0
        return 1 if any(part in item.nodeid for part in _LONGEST) else 2

    items.sort(key=rank)
