"""Rebuilding a registered ``athletes_total_lift`` version (``mlops rebuild athletes_total_lift
2``).

A version is the best grid point of the grids of both feature versions: its MLflow run (one
grid point of the `athletes/models` partition of a feature version) recorded the feature version,
the forest size and depth, the validation share and the seed as params.

The rebuild reads the published features of that version (the lineage walk refuses if they
changed since) and trains the point again with
:func:`mlops_assets.athletes.training.train_grid_point`, the function the grid's step runs. The
holdout is the point's own validation athletes (a stable hash of the id). The emissions,
energy and duration CodeCarbon measured are measurements of the run, not of the model: logged
again, shown, not compared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_assets.athletes import schema
from mlops_assets.core.rebuild import Rebuilder, Rebuilt, read_input

if TYPE_CHECKING:
    from mlops_assets.core.rebuild import Recorded, Sources
    from mlops_assets.core.tracking import TrackedRun

CASE = schema.CASE
# What CodeCarbon measured while the forest was fitted (GridResult.emissions).
MEASUREMENTS = frozenset({"emissions_kg", "energy_kwh", "duration_s"})


def rebuild(recorded: Recorded, sources: Sources) -> Rebuilt:
    """Train the registered grid point again on its feature version (see the module)."""
    from mlops_assets.athletes import features as versions
    from mlops_assets.athletes import training
    from mlops_assets.core import evaluation

    version = recorded.param("feature_version")
    table, data_versions = read_input(sources.asset_store, CASE.key("features"), [version])
    # As the grid's step gets them: the IO manager loads the partition as pandas.
    features = table.to_pandas()
    columns = list(versions.FEATURES[version])
    settings: dict[str, Any] = {
        "n_estimators": int(recorded.param("n_estimators")),
        "max_depth": int(recorded.param("max_depth")),
        "validation_share": float(recorded.param("validation_share")),
        "seed": int(recorded.param("seed")),
    }
    grid = training.GridPoint.of(settings)
    result = training.train_grid_point(
        features,
        columns,
        schema.TARGET,
        grid,
        validation_share=settings["validation_share"],
        seed=settings["seed"],
    )
    holdout = features[training.is_validation(features["athlete_id"], settings["validation_share"])]

    def log(run: TrackedRun) -> None:
        run.log_figure(
            evaluation.residual_figure(
                result.validation["actual"],
                result.validation["predicted"],
                title=f"{version} {grid.key}: validation athletes (rebuild)",
            ),
            "plots/residuals.png",
        )
        run.log_model(
            result.model, name="model", input_example=features[columns].head(5), flavor="sklearn"
        )

    return Rebuilt(
        # What the grid's step logs for its point.
        params={"feature_version": version, **settings, "features": ",".join(columns)},
        metrics=result.logged_metrics,
        model=result.model,
        holdout=holdout,
        flavor="sklearn",
        predict=lambda model, rows: model.predict(rows[columns]),
        log=log,
        data={
            "features": f"{CASE.key('features').to_user_string()} partition {version}: "
            f"{len(features)} athletes, data version {data_versions[version][:12]}",
            "grid point": grid.key,
        },
        measurements=MEASUREMENTS,
    )


REBUILDERS = [Rebuilder(CASE.name, CASE.model_name, rebuild)]
