"""The MLflow pyfunc that the registry stores as a respondent's champion forecaster.

A :class:`DemandForecaster` holds no fitted state: it is the *choice* of a model (a name of
:data:`forecasting.MODELS`) and of its :class:`forecasting.BacktestSpec`, and each ``predict``
refits that model on the history it is given and forecasts from its end. Demand models are cheap
to refit and must start from the latest hour, so a frozen fit would only go stale.

    loaded = mlflow.pyfunc.load_model(uri)
    loaded.predict(history, params={"horizon": 48})   # -> forecasting.forecast's frame

Times: the signature declares the params (``horizon``) and the outputs but *no input schema*, on
purpose. MLflow's enforcement of a ``datetime`` input column refuses tz-aware values ("only
timezone-naive datetime objects"), so a typed input would reject the project's own clean frames
(``ds`` tz-aware UTC); without one, ``predict`` takes ``ds`` tz-aware, naive (read as UTC) or as
ISO strings (a JSON payload, or the stored input example), and ``forecasting.forecast`` validates
the frame with its own messages. The returned ``ds`` is tz-aware UTC (MLflow does not enforce
outputs). The input example is stored with naive UTC ``ds`` (:func:`model_input`), which MLflow
writes as ISO strings.

Imported by the demand assets only (it imports mlflow at the top).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd  # at the top: MLflow resolves predict's type hints when logging

from mlops_assets.demand import forecasting

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

# What a logged forecaster needs to be loaded and run again, pinned to the installed versions.
REQUIREMENTS: tuple[str, ...] = (
    "mlflow",
    "statsforecast",
    "mlforecast",
    "xgboost",
    "scikit-learn",
    "pandas",
    "numpy",
    "cloudpickle",
)


def pip_requirements() -> list[str]:
    """``name==version`` of :data:`REQUIREMENTS`, as installed here."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]


class DemandForecaster(mlflow.pyfunc.PythonModel):
    """Forecast demand with ``model`` refitted on the history passed to ``predict``.

    ``spec`` is kept as a plain dict (``spec_params``) so that an unpickled forecaster does not
    depend on the dataclass's pickled layout; the ``spec`` property rebuilds it.
    """

    def __init__(self, model: str, spec: forecasting.BacktestSpec | None = None) -> None:
        forecasting.minimum_train_hours(model, spec or forecasting.BacktestSpec())  # validates
        self.model = model
        self.spec_params: dict[str, Any] = dataclasses.asdict(spec or forecasting.BacktestSpec())

    @property
    def spec(self) -> forecasting.BacktestSpec:
        return forecasting.BacktestSpec(**self.spec_params)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """``forecasting.forecast(model_input, model, spec)`` with ``params["horizon"]`` (hours)
        in place of the spec's horizon when given."""
        spec = self.spec
        horizon = (params or {}).get("horizon")
        if horizon is not None:
            try:
                spec = dataclasses.replace(spec, horizon=int(horizon))
            except (TypeError, ValueError) as error:
                raise forecasting.ForecastingError(f"bad horizon {horizon!r}: {error}") from None
        frame = pd.DataFrame(model_input)
        if "ds" in frame and not pd.api.types.is_datetime64_any_dtype(frame["ds"]):
            # A JSON payload (a serving endpoint, the stored input example) brings ISO strings.
            try:
                frame["ds"] = pd.to_datetime(frame["ds"], utc=True)
            except (TypeError, ValueError) as error:
                raise forecasting.ForecastingError(f"ds is not a time: {error}") from None
        return forecasting.forecast(frame, self.model, spec)


def model_input(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` (the clean contract) with ``ds`` as *naive* UTC ``datetime64[us]``,
    ``unique_id`` (str), ``y`` (float64), index reset: the form of the input example, and what a
    model logged with a typed (datetime) input schema would need, since MLflow refuses tz-aware
    datetimes there. ``predict`` of a :class:`DemandForecaster` takes either form."""
    ds = pd.to_datetime(history["ds"])
    if ds.dt.tz is not None:
        ds = ds.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.DataFrame(
        {
            "unique_id": history["unique_id"].astype(str).to_numpy(),
            "ds": ds.astype("datetime64[us]").to_numpy(),
            "y": history["y"].astype("float64").to_numpy(),
        }
    )


def signature_and_example(
    history: pd.DataFrame, spec: forecasting.BacktestSpec, *, model: str | None = None
) -> tuple[ModelSignature, pd.DataFrame]:
    """An MLflow signature (params ``{"horizon": int}`` defaulting to ``spec.horizon``; outputs
    the forecast columns; no input schema, see the module's docstring) and an input example
    (``unique_id, ds, y`` with naive UTC ``ds``): the last hours of
    the first ``unique_id`` of ``history``, as many as a forecast with ``model`` needs (without
    ``model``: the most any model needs, so one example fits every forecaster).

    Raises ForecastingError when that series is shorter than the example must be.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    models = (model,) if model is not None else forecasting.MODELS
    hours = forecasting.minimum_history_hours(models, spec, backtest=False)
    frame = history[["unique_id", "ds", "y"]]
    first = frame["unique_id"].astype(str).min() if len(frame) else None
    series = frame.loc[frame["unique_id"].astype(str) == first].sort_values("ds")
    if len(series) < hours:
        raise forecasting.ForecastingError(
            f"an input example needs {hours} hours of one unique_id; {first!r} has {len(series)}"
        )
    example = model_input(series.tail(hours))
    outputs = Schema(
        [ColSpec("string", "unique_id"), ColSpec("datetime", "ds")]
        + [ColSpec("double", c) for c in forecasting.FORECAST_COLUMNS[2:]]
    )
    params = ParamSchema([ParamSpec("horizon", "long", spec.horizon)])
    return ModelSignature(inputs=None, outputs=outputs, params=params), example
