"""The tuning study as MLflow runs: one run for the study, a nested run per Optuna trial, and the
best trial's model bundled with the encoders as the study's one pyfunc.

:mod:`mlops_assets.housing.training` runs the study and knows nothing of MLflow; this module is
what the `housing/model` asset calls to record it, so that every trial can be found under its
study in the MLflow UI and the registered model is the one the study's run logged.

No Dagster or MLflow import: the tracking resource and the step's context are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.housing import schema

if TYPE_CHECKING:
    import dagster as dg
    import pandas as pd

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.tracking import MlflowTracking, TrackedRun
    from mlops_assets.housing.training import TrialResult, TuningResult, TuningSpec


@dataclass(frozen=True)
class LoggedStudy:
    """The study's MLflow run, its logged pyfunc (``info``), the tuning outcome and the best
    trial's evaluation metrics as logged (``eval_<metric>``)."""

    run: TrackedRun
    info: Any
    result: TuningResult
    eval_metrics: dict[str, float]


def run_logged_study(
    mlflow: MlflowTracking,
    context: dg.AssetExecutionContext,
    features: pd.DataFrame,
    encoders: pd.DataFrame,
    eval_sample: pd.DataFrame,
    spec: TuningSpec,
    *,
    model_name: str,
    store: AssetStore,
) -> LoggedStudy:
    """Tune on ``features`` (:func:`~mlops_assets.housing.training.tune_on_periods`) inside
    the study's run, each trial a nested run with its parameters and evaluation scores; log the
    best model bundled with ``encoders`` as the pyfunc ``model_name`` (input example from
    ``eval_sample``, raw sales of the evaluation period). The study's run logs what it read as
    MLflow datasets (:func:`log_datasets`), found in ``store``."""
    from mlops_assets.housing import inference, training

    with mlflow.start_run(context, use_case=schema.CASE.name, run_name="housing-study") as study:
        study.log_params(
            {"n_trials": spec.n_trials, "seed": spec.seed, "max_estimators": spec.max_estimators}
        )
        log_datasets(study, context, store, features, encoders)

        def log_trial(trial: TrialResult) -> None:
            with mlflow.start_run(
                context,
                use_case=schema.CASE.name,
                run_name=f"trial-{trial.number:03d}",
                parent=study,
                tags={"optuna.trial": str(trial.number)},
            ) as run:
                run.log_params({**trial.params, "best_iteration": trial.best_iteration})
                run.log_metrics({f"eval_{k}": v for k, v in trial.metrics.items()})

        result = training.tune_on_periods(features, spec, on_trial=log_trial)
        study.log_params({f"best_{k}": v for k, v in result.best.params.items()})
        eval_metrics = {f"eval_{k}": v for k, v in result.best.metrics.items()}
        study.log_metrics(eval_metrics)
        info = inference.log_bundle(
            study,
            result.model,
            encoders,
            eval_sample,
            name=model_name,
            metadata={"best_trial": result.best.number, "eval_rmse": result.best.metrics["rmse"]},
        )
    return LoggedStudy(run=study, info=info, result=result, eval_metrics=eval_metrics)


def log_datasets(
    run: TrackedRun,
    context: dg.AssetExecutionContext,
    store: AssetStore,
    features: pd.DataFrame,
    encoders: pd.DataFrame,
) -> None:
    """The study's inputs as its MLflow datasets: the train rows of `housing/features` and the
    encoders bundled with the model as ``training``, its eval rows (which chose the trial) as
    ``evaluation``. The holdout rows are not read here: the holdout report scores them."""
    from mlops_assets.core.tracking import frame_schema

    splits = features["split"].value_counts()
    columns = frame_schema(features)
    for split, used_for in (("train", "training"), ("eval", "evaluation")):
        run.log_input_asset(
            context,
            store,
            schema.CASE.key("features"),
            context=used_for,
            rows=int(splits.get(split, 0)),
            schema=columns,
            selection=f"split == {split!r}",
        )
    run.log_input_asset(
        context,
        store,
        schema.CASE.key("encoders"),
        context="training",
        rows=len(encoders),
        schema=frame_schema(encoders),
    )
