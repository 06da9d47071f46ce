"""Rebuilding a registered ``housing_price`` version (``mlops rebuild housing_price 2``).

A version is the best trial of one Optuna study (the `housing/model` asset): the study's MLflow
run recorded the search settings (``n_trials``, ``seed``, ``max_estimators``), the best trial's
hyperparameters (``best_<name>``) and its evaluation scores (``eval_<metric>``), and the data
version of each input it read (features, encoders, splits).

The registered model IS the best trial's model, fitted inside the study. So the rebuild does not
search again: it fits that one trial with the recorded parameters and seed through
:func:`mlops_assets.housing.training.refit_on_periods`, the very call (``fit_trial``) every
trial of the study makes, on the features it was trained on (refused if any input's data version
changed), and bundles it with the recorded encoders as the asset does. Exact and cheap: one fit
instead of ``n_trials``. The holdout is the holdout report's: the sales of the holdout period,
priced through the serving path (:func:`mlops_assets.housing.inference.predict_records`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_assets.core.rebuild import (
    Rebuilder,
    RebuildError,
    Rebuilt,
    check_inputs,
    read_input,
)
from mlops_assets.housing import schema

if TYPE_CHECKING:
    from mlops_assets.core.rebuild import Recorded, Sources
    from mlops_assets.core.tracking import TrackedRun

CASE = schema.CASE
INPUTS = ("features", "encoders", "splits")
BEST_PREFIX = "best_"


def _value(text: str) -> int | float:
    """A recorded hyperparameter: an int (tree depth) or a float; MLflow kept ``str(value)``,
    and ``float(str(x)) == x`` for every float, so the refit gets the trial's exact values."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _predict(model: Any, holdout: Any) -> Any:
    """Prices of the holdout sales by a bundle, or by the registered pyfunc that wraps one."""
    from mlops_assets.housing import inference

    bundle = model.unwrap_python_model() if hasattr(model, "unwrap_python_model") else model
    prices, _ = inference.predict_records(bundle, holdout[list(schema.FEATURE_INPUTS)])
    return prices


def rebuild(recorded: Recorded, sources: Sources) -> Rebuilt:
    """Refit the study's best trial on the data it was trained on (see the module)."""
    from mlops_assets.core.tracking import input_data_version_tag
    from mlops_assets.housing import inference, training

    keys = {name: CASE.key(name) for name in INPUTS}
    read = {name: read_input(sources.asset_store, key) for name, key in keys.items()}
    check_inputs(
        recorded.name,
        recorded.version,
        {
            (key.to_user_string(), None): recorded.tags.get(input_data_version_tag(key))
            for key in keys.values()
        },
        {
            (keys[name].to_user_string(), None): versions[None]
            for name, (_, versions) in read.items()
        },
    )
    # As the asset gets them: the IO manager loads each parquet table as pandas.
    features, encoders, splits = (read[name][0].to_pandas() for name in INPUTS)
    spec = training.TuningSpec(
        n_trials=int(recorded.param("n_trials")),
        seed=int(recorded.param("seed")),
        max_estimators=int(recorded.param("max_estimators")),
    )
    best = {
        key.removeprefix(BEST_PREFIX): _value(value)
        for key, value in recorded.params.items()
        if key.startswith(BEST_PREFIX)
    }
    if not best:
        raise RebuildError(
            f"{recorded.name} v{recorded.version}: its run {recorded.run_id} records no "
            f"{BEST_PREFIX}<hyperparameter>: it is not a study's run"
        )
    model, metrics = training.refit_on_periods(features, best, spec)
    eval_metrics = {f"eval_{k}": v for k, v in metrics.items()}
    bundle = inference.bundle(
        model, encoders, metadata={"rebuild_of": recorded.version, "eval_rmse": metrics["rmse"]}
    )

    def log(run: TrackedRun) -> None:
        inference.log_bundle(
            run,
            model,
            encoders,
            splits[splits["split"] == "eval"].head(5),
            name=recorded.name,
            metadata={"rebuild_of": recorded.version, "eval_rmse": metrics["rmse"]},
        )

    return Rebuilt(
        # What the study's run logs: its settings, then the best trial's parameters.
        params={
            "n_trials": spec.n_trials,
            "seed": spec.seed,
            "max_estimators": spec.max_estimators,
            **{f"{BEST_PREFIX}{k}": v for k, v in best.items()},
        },
        metrics=eval_metrics,
        model=bundle,
        holdout=splits[splits["split"] == "holdout"].reset_index(drop=True),
        flavor="pyfunc",
        predict=_predict,
        log=log,
        data={
            "features": f"{keys['features'].to_user_string()}: {len(features)} sales, data "
            f"version {read['features'][1][None][:12]}",
            "refit": f"the study's best trial ({len(best)} hyperparameters), seed {spec.seed}",
        },
    )


REBUILDERS = [Rebuilder(CASE.name, CASE.model_name, rebuild)]
