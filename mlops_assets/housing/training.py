"""Tuning the house-price model: an Optuna study over XGBoost hyperparameters, judged on the
evaluation period.

Every trial trains on the training period (before 2020 by default) and is scored on the
evaluation period (2020-2021) in dollars, never on the holdout, which stays untouched for the final
report. The model learns log(price): prices are skewed, and an error of 10% matters as much on a
condo as on a mansion. Early stopping watches the evaluation period too; the holdout report is
what tells whether that choice generalises.

Deterministic: the sampler is seeded, trials run one after another, and XGBoost's ``hist``
method with a fixed thread count and seed gives the same trees for the same data.

Pure code (no Dagster, no MLflow): the asset passes ``on_trial`` to log each trial as a nested
MLflow run. Optuna and XGBoost are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import optuna
    import pandas as pd
    import xgboost

# Two threads: the size of this machine, and a fixed count keeps the trees reproducible.
XGB_THREADS = 2


@dataclass(frozen=True)
class TuningSpec:
    """How hard to search: trials, the seed, and the boosting budget of each trial."""

    n_trials: int = 20
    seed: int = 0
    max_estimators: int = 1500
    early_stopping_rounds: int = 50

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be at least 1, got {self.n_trials}")
        if self.max_estimators < 1 or self.early_stopping_rounds < 1:
            raise ValueError("max_estimators and early_stopping_rounds must be at least 1")


@dataclass(frozen=True)
class TrialResult:
    """One trial: its hyperparameters, the trees early stopping kept, and its scores on the
    evaluation period in dollars (rmse, mae, mape, r2)."""

    number: int
    params: dict[str, Any]
    best_iteration: int
    metrics: dict[str, float]
    seconds: float


@dataclass
class TuningResult:
    """The study's outcome: the best trial, its fitted model and every trial in order."""

    best: TrialResult
    model: xgboost.XGBRegressor
    trials: list[TrialResult] = field(default_factory=list)

    def trials_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {"trial": t.number, **t.metrics, "best_iteration": t.best_iteration, **t.params}
                for t in self.trials
            ]
        )


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    """The hyperparameters a trial draws: tree shape, learning rate, sampling, regularisation."""
    return {
        "max_depth": trial.suggest_int("max_depth", 3, 10),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
    }


def regressor(params: dict[str, Any], spec: TuningSpec) -> xgboost.XGBRegressor:
    """An XGBoost regressor of log(price) with ``params`` and the study's fixed settings."""
    import xgboost

    return xgboost.XGBRegressor(
        **params,
        n_estimators=spec.max_estimators,
        early_stopping_rounds=spec.early_stopping_rounds,
        eval_metric="rmse",
        tree_method="hist",
        n_jobs=XGB_THREADS,
        random_state=spec.seed,
    )


def fit_trial(
    params: dict[str, Any],
    spec: TuningSpec,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    eval_x: pd.DataFrame,
    eval_y: np.ndarray,
) -> tuple[xgboost.XGBRegressor, dict[str, float]]:
    """One trial's model: :func:`regressor` with ``params`` fitted on ``train`` (early stopping
    on ``eval``), and its scores on the evaluation period in dollars. Every trial of
    :func:`tune` is this call, and so is the refit of a recorded best trial
    (:func:`refit_on_periods`): the same parameters and seed give the same trees."""
    import numpy as np

    from mlops_assets.core.evaluation import regression_metrics

    model = regressor(params, spec)
    model.fit(train_x, train_y, eval_set=[(eval_x, eval_y)], verbose=False)
    metrics = regression_metrics(np.exp(eval_y), np.exp(model.predict(eval_x)))
    return model, metrics


def tune(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    eval_x: pd.DataFrame,
    eval_y: np.ndarray,
    spec: TuningSpec,
    *,
    on_trial: Callable[[TrialResult], None] | None = None,
) -> TuningResult:
    """Run the study: ``spec.n_trials`` trials, each trained on ``train`` and scored on ``eval``
    (targets are log prices; scores are in dollars); the lowest evaluation RMSE wins, the earlier
    trial on a tie. ``on_trial`` sees every finished trial (to log it)."""
    import time

    import optuna

    if list(train_x.columns) != list(eval_x.columns):
        raise ValueError("train and eval features must have the same columns in the same order")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=spec.seed)
    )
    trials: list[TrialResult] = []
    best: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        params = search_space(trial)
        model, metrics = fit_trial(params, spec, train_x, train_y, eval_x, eval_y)
        result = TrialResult(
            number=trial.number,
            params=params,
            best_iteration=int(model.best_iteration),
            metrics=metrics,
            seconds=round(time.perf_counter() - started, 3),
        )
        trials.append(result)
        if not best or metrics["rmse"] < best["result"].metrics["rmse"]:
            best.update(result=result, model=model)
        if on_trial is not None:
            on_trial(result)
        return metrics["rmse"]

    study.optimize(objective, n_trials=spec.n_trials, n_jobs=1)
    return TuningResult(best=best["result"], model=best["model"], trials=trials)


def tune_on_periods(
    features: pd.DataFrame,
    spec: TuningSpec,
    *,
    on_trial: Callable[[TrialResult], None] | None = None,
) -> TuningResult:
    """:func:`tune` on the model matrix of `housing/features` (a `split` column, the
    :data:`~mlops_assets.housing.encoding.FEATURE_COLUMNS` and the log-price `target`): trained
    on its train rows, judged on its eval rows; the holdout rows are not read."""
    return tune(*_periods(features), spec, on_trial=on_trial)


def refit_on_periods(
    features: pd.DataFrame, params: dict[str, Any], spec: TuningSpec
) -> tuple[xgboost.XGBRegressor, dict[str, float]]:
    """The model of one trial of :func:`tune_on_periods` with ``params``, fitted again without
    the search (:func:`fit_trial` on the same periods): how a registered study's model is
    rebuilt from its recorded best parameters and seed."""
    return fit_trial(params, spec, *_periods(features))


def _periods(
    features: pd.DataFrame,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """``(train_x, train_y, eval_x, eval_y)`` of the model matrix of `housing/features`."""
    from mlops_assets.housing.encoding import FEATURE_COLUMNS

    columns = list(FEATURE_COLUMNS)
    train, evaluation = (features[features["split"] == s] for s in ("train", "eval"))
    return (
        train[columns],
        train["target"].to_numpy(),
        evaluation[columns],
        evaluation["target"].to_numpy(),
    )
