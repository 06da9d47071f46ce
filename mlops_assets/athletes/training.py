"""One point of the random-forest grid: train on a feature version, score on the validation
athletes, and measure the energy and emissions the training cost.

The validation athletes are chosen by a hash of ``athlete_id``, not by row order: the same
athletes validate every grid point and both feature versions, so their scores compare, and an
athlete added later does not move the others between training and validation.

Emissions are measured by CodeCarbon's offline tracker (no network; the grid's country sets the
carbon intensity), around the fit only. Pure code: scikit-learn and CodeCarbon are imported
inside the functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Where the carbon intensity of the electricity comes from (ISO 3166-1 alpha-3).
COUNTRY = "USA"


@dataclass(frozen=True)
class GridPoint:
    """A forest size and depth; ``max_depth`` None grows trees until their leaves are pure."""

    n_estimators: int
    max_depth: int | None

    @property
    def key(self) -> str:
        """A Dagster mapping key: ``t100_d8``, ``t200_dnone``."""
        return f"t{self.n_estimators}_d{self.max_depth if self.max_depth else 'none'}"

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> GridPoint:
        """The point of a grid step's settings (``max_depth`` 0: no limit)."""
        return cls(
            n_estimators=int(settings["n_estimators"]), max_depth=int(settings["max_depth"]) or None
        )


@dataclass
class GridResult:
    """What a grid point's training produced: the model, its validation scores, its costs."""

    point: GridPoint
    model: Any
    metrics: dict[str, float]
    emissions: dict[str, float]
    validation: pd.DataFrame  # athlete_id, actual, predicted

    @property
    def logged_metrics(self) -> dict[str, float]:
        """What the point's MLflow run logs: ``val_<metric>`` and the costs."""
        return {**{f"val_{k}": v for k, v in self.metrics.items()}, **self.emissions}

    def summary(self, version: str) -> str:
        """One line for the run log: the point, its validation RMSE and its emissions."""
        return (
            f"{version} {self.point.key}: val_rmse={self.metrics['rmse']:.2f} lb, "
            f"{self.emissions['emissions_kg'] * 1e6:.3f} mg CO2eq"
        )

    def row(self, version: str, run_id: str, model_uri: str) -> dict[str, Any]:
        """The point's row in the grid table: version, point, scores, costs, where it is logged."""
        return {
            "feature_version": version,
            "grid_point": self.point.key,
            "n_estimators": self.point.n_estimators,
            "max_depth": self.point.max_depth or 0,
            **self.logged_metrics,
            "mlflow_run_id": run_id,
            "model_uri": model_uri,
        }


def is_validation(athlete_ids: pd.Series, share: float) -> np.ndarray:
    """Whether each athlete validates rather than trains: a stable hash of the id below
    ``share``."""
    import numpy as np

    def bucket(value: Any) -> float:
        digest = hashlib.sha256(str(int(value)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return np.array([bucket(v) < share for v in athlete_ids], dtype=bool)


def train_grid_point(
    features: pd.DataFrame,
    columns: list[str],
    target: str,
    point: GridPoint,
    *,
    validation_share: float = 0.2,
    seed: int = 0,
) -> GridResult:
    """Fit a random forest (missing values imputed by the median of the training athletes) on
    the training athletes and score it on the validation athletes: RMSE, MAE and R² in pounds."""
    import logging

    from codecarbon import OfflineEmissionsTracker
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    from mlops_assets.core.evaluation import regression_metrics

    validate = is_validation(features["athlete_id"], validation_share)
    train, holdout = features[~validate], features[validate]
    if train.empty or holdout.empty:
        raise ValueError(f"{len(features)} athletes cannot be split into training and validation")
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        RandomForestRegressor(
            n_estimators=point.n_estimators,
            max_depth=point.max_depth,
            random_state=seed,
            n_jobs=1,
        ),
    )
    # CodeCarbon logs its start-up at INFO before `log_level` applies; the run log has no use
    # for it.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(
        country_iso_code=COUNTRY,
        save_to_file=False,
        log_level="error",
        measure_power_secs=1,
        tracking_mode="process",
    )
    tracker.start()
    try:
        model.fit(train[columns], train[target])
    finally:
        emissions_kg = tracker.stop()
    data = tracker.final_emissions_data
    predicted = model.predict(holdout[columns])
    metrics = {
        k: v
        for k, v in regression_metrics(holdout[target], predicted).items()
        if k in ("rmse", "mae", "r2")
    }
    import pandas as pd

    return GridResult(
        point=point,
        model=model,
        metrics=metrics,
        emissions={
            "emissions_kg": float(emissions_kg or 0.0),
            "energy_kwh": float(data.energy_consumed),
            "duration_s": float(data.duration),
        },
        validation=pd.DataFrame(
            {
                "athlete_id": holdout["athlete_id"].to_numpy(),
                "actual": holdout[target].to_numpy(),
                "predicted": predicted,
            }
        ),
    )
