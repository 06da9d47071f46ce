"""The code location: every use case, the prediction API's log and monitoring, and the
resources of the active profile.

``MLOPS_PROFILE`` (``local`` by default, or ``stack``) picks where data, runs, models and features
live; see :mod:`mlops_assets.core.profiles`. Heavy libraries (MLflow, Feast, GX, scikit-learn) are
imported by the resources and assets when they run, never here.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.code_versions import default_cache_dir, with_code_versions

# (Dagster's notices about its own API are silenced by the package, `mlops_assets/__init__.py`,
# before the use cases below build their definitions.)
from mlops_assets.core.feature_store import FeastFeatureStore
from mlops_assets.core.io_managers import (
    STEP_IO_MANAGER,
    ParquetIOManagerResource,
    StepOutputIOManagerResource,
)
from mlops_assets.core.profiles import Settings, check_stack, load_settings
from mlops_assets.core.run_config import check_file as check_run_config
from mlops_assets.core.runs import executor_for
from mlops_assets.core.tracking import MlflowTracking
from mlops_assets.serving import definitions as serving
from mlops_assets.use_cases import use_case_definitions


def resources_for(settings: Settings) -> dict[str, object]:
    """The resources every use case can ask for, configured for ``settings.profile``."""
    store = AssetStore.from_settings(settings)
    return {
        "asset_store": store,
        "io_manager": ParquetIOManagerResource(store=store),
        # Locally, `$DAGSTER_HOME/storage/<run id>/`, Dagster's own place for step outputs; on the
        # stack, the bucket: the next step may run on another machine (Celery, Kubernetes).
        STEP_IO_MANAGER: dg.FilesystemIOManager()
        if settings.profile == "local"
        else StepOutputIOManagerResource(store=store),
        "mlflow": MlflowTracking.from_settings(settings),
        "feature_store": FeastFeatureStore.from_settings(settings),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    if settings.profile == "stack":
        # Fail at load, naming the setting, rather than in the middle of the first run.
        check_stack(settings)
    use_cases = use_case_definitions()
    # After the use cases loaded (their config classes claim their ops): an op in the
    # deployment's run-config file that none claimed is a typo, not a setting to ignore.
    check_run_config()
    defs = dg.Definitions.merge(
        *use_cases,
        serving.defs,
        dg.Definitions(
            sensors=[automation],
            resources=resources_for(settings),
            # MLOPS_EXECUTOR's: Dagster's default (multiprocess), in-process or on a Celery cluster,
            # each of which first ends the runs that died holding a pool slot
            # (mlops_assets/core/runs.py): the CLI path has no daemon to do it.
            executor=executor_for(settings.executor),
        ),
    )
    # Every asset's code version, derived from its source and the project code it calls
    # (mlops_assets/core/code_versions.py): the UI marks an asset and its descendants stale
    # after a change to that code. Kept per source in the user's cache, so that only the first
    # process after an edit analyses the files.
    return with_code_versions(defs, cache_dir=default_cache_dir())


# Evaluates the automation conditions of the assets that keep themselves up to date (fraud
# scores, heart's deployment package, the athletes features, grids and champion). Declared here
# rather than left to Dagster's default sensor, which starts stopped: without it those
# conditions are decorations.
automation = dg.AutomationConditionSensorDefinition(
    "mlops_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)


defs = build_definitions()
