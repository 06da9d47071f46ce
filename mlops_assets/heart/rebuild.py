"""Rebuilding a registered ``heart_disease`` version (``mlops rebuild heart_disease 2``).

A version is the best kind of one `heart/models` run: its MLflow run recorded the kind and the
comparison's settings (folds, holdout fraction, seed) as params, and Dagster's data version of
the `heart/features` it read (tag ``dagster.input.heart/features.data_version``).

The rebuild reads the published features again (refused if their data version is not the one
recorded) and runs :func:`mlops_assets.heart.training.compare_models` (the function the asset
runs) for the recorded kind alone, with the recorded settings: the holdout split and the folds
depend on the seed only, and each kind is fitted on its own, so the kind's cross-validated and
holdout figures and its model are those of the original comparison. The holdout is the
comparison's own stratified holdout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_assets.core.rebuild import Rebuilder, Rebuilt, check_inputs, read_input
from mlops_assets.heart import schema

if TYPE_CHECKING:
    from mlops_assets.core.rebuild import Recorded, Sources
    from mlops_assets.core.tracking import TrackedRun

CASE = schema.CASE


def rebuild(recorded: Recorded, sources: Sources) -> Rebuilt:
    """Retrain the recorded kind on the features it was trained on (see the module)."""
    from mlops_assets.core.tracking import input_data_version_tag
    from mlops_assets.heart import training

    key = CASE.key("features")
    table, versions = read_input(sources.asset_store, key)
    name = key.to_user_string()
    check_inputs(
        recorded.name,
        recorded.version,
        {(name, None): recorded.tags.get(input_data_version_tag(key))},
        {(name, None): versions[None]},
    )
    # As the asset gets it: the IO manager loads the parquet table as pandas.
    features = table.to_pandas()
    frame = features[[schema.KEY, *schema.INPUTS, schema.TARGET]]
    kind = recorded.param("kind")
    settings = {
        "n_folds": int(recorded.param("n_folds")),
        "holdout_fraction": float(recorded.param("holdout_fraction")),
        "seed": int(recorded.param("seed")),
    }
    result = training.compare_models(frame, [kind], **settings)[kind]
    _, holdout = training.split_holdout(
        frame, fraction=settings["holdout_fraction"], seed=settings["seed"]
    )

    def log(run: TrackedRun) -> None:
        run.log_model(
            result.pipeline,
            name="model",
            input_example=frame[list(schema.INPUTS)].head(5),
            flavor="sklearn",
        )

    return Rebuilt(
        # What the asset logs: the kind and its ModelsConfig (n_folds, holdout_fraction, seed).
        params={"kind": kind, **settings},
        metrics=result.logged_metrics,
        model=result.pipeline,
        holdout=holdout,
        flavor="sklearn",
        predict=training.score,
        log=log,
        data={
            "features": f"{name}: {len(frame)} patients, data version {versions[None][:12]}",
            "kind": kind,
        },
    )


REBUILDERS = [Rebuilder(CASE.name, CASE.model_name, rebuild)]
