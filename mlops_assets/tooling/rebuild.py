"""``mlops rebuild <model> <version> [--json]``: rebuild a registered model version from its
recorded lineage and compare it with the registered one (:mod:`mlops_assets.core.rebuild`).

The rebuilders are found through the use-case registry (:data:`mlops_assets.use_cases.USE_CASES`):
every use case whose package has a ``rebuild`` module exporting ``REBUILDERS``, as the prediction
API finds the ``serving`` modules. The Dagster instance is the deployment's (the DAGSTER_HOME the
other commands use), so the lineage walked is that of the runs the UI shows.

Exit codes: 0 IDENTICAL, 1 different, 2 refused (a source changed) or failed (unknown model or
version, no rebuilder, MLflow unreachable), with one line on stderr and no traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_assets.core.profiles import Settings
    from mlops_assets.core.rebuild import Rebuilder


def discover_rebuilders(use_cases: Sequence[str] | None = None) -> list[Rebuilder]:
    """The ``REBUILDERS`` of every use case (of ``use_cases``, if given) that has a
    ``rebuild`` module; a use case without one rebuilds nothing."""
    from mlops_assets.use_cases import USE_CASES

    found: list[Rebuilder] = []
    for name in use_cases or USE_CASES:
        try:
            module = importlib.import_module(f"mlops_assets.{name}.rebuild")
        except ModuleNotFoundError as exc:
            if exc.name != f"mlops_assets.{name}.rebuild":
                raise
            continue
        found.extend(module.REBUILDERS)
    return found


def rebuild_command(settings: Settings, model: str, version: str, *, as_json: bool) -> int:
    """Rebuild ``model`` ``version`` of the deployment of ``settings``; print the comparison
    (IDENTICAL or the differences; JSON with ``as_json``) and return the exit code."""
    import dagster as dg

    from mlops_assets.core import rebuild as core

    try:
        from mlops_assets.core.asset_store import AssetStore
        from mlops_assets.core.feature_store import FeastFeatureStore
        from mlops_assets.core.tracking import MlflowTracking
        from mlops_assets.tooling.cli import dagster_home

        # The resources the assets get in this deployment (what `definitions.resources_for`
        # builds), without building the whole code location's definitions and its checks.
        sources = core.Sources(
            tracking=MlflowTracking.from_settings(settings),
            asset_store=AssetStore.from_settings(settings),
            feature_store=FeastFeatureStore.from_settings(settings),
        )
        rebuilders = discover_rebuilders()
        # An unknown model or version is said before the code location is loaded (seconds).
        core.rebuilder_for(model, rebuilders)
        core.recorded_version(sources.tracking, model, version)
        with dg.DagsterInstance.from_config(str(dagster_home(settings))) as instance:
            comparison = core.rebuild(
                model,
                version,
                sources=sources,
                rebuilders=rebuilders,
                instance=instance,
                asset_graph=asset_graph(),
            )
    except core.RebuildRefused as exc:
        if as_json:
            _print_json(
                {
                    "status": "refused",
                    "model": model,
                    "version": exc.version,
                    "changes": [c.to_dict() for c in exc.changes],
                    "message": str(exc),
                }
            )
        else:
            print(f"REFUSED: {exc}")
        return core.EXIT_REFUSED
    except (core.RebuildError, dg.Failure, ValueError, LookupError, OSError) as exc:
        # dg.Failure: TrackingError (MLflow unreachable) and the asset code's own failures;
        # OSError, LookupError: data or records that are gone. The message says what failed.
        message = exc.description if isinstance(exc, dg.Failure) else str(exc)
        print(f"mlops rebuild: {message}", file=sys.stderr)
        if as_json:
            _print_json({"status": "error", "model": model, "version": version, "error": message})
        return core.EXIT_REFUSED
    if as_json:
        _print_json(comparison.to_dict())
    else:
        print(comparison.render())
    return core.EXIT_IDENTICAL if comparison.identical else core.EXIT_DIFFERENT


def asset_graph() -> object:
    """The asset graph of the code location (every use case and the serving assets), for the
    lineage walk."""
    import warnings

    with warnings.catch_warnings():
        # Dagster's notes on the location's jobs (mixed backfill policies) say nothing about a
        # rebuild, and would be the first lines a user reads.
        warnings.simplefilter("ignore", UserWarning)
        from mlops_assets.definitions import defs

        return defs.resolve_asset_graph()


def _print_json(payload: dict) -> None:
    print(json.dumps(payload, indent=2, sort_keys=False))
