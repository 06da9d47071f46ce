"""The demand API: the next hours of electricity demand of one balancing authority, with 80% and
95% prediction intervals, from the recent history the client sends.

Each respondent has its own champion (``demand_forecaster_<respondent>@champion``, the
:class:`~mlops_assets.demand.forecaster.DemandForecaster` pyfunc). A forecaster holds no fitted
state: every request refits its model on the history sent and forecasts from the history's last
hour (which need not be the current one), as the ``demand/forecasts`` asset does each day. A refit
takes from milliseconds (seasonal naive) to seconds (AutoARIMA, gbm), hence ``blocking``.

The history must be complete: whole hours, no duplicates and no gaps (the models read a series
position as an hour); the first offending hour is named in a 422. It may come in any order and
with any UTC offset; it is sorted and read in UTC. How much is needed depends on the champion's
model (see :data:`HISTORY_DESCRIPTION`); a history too short for it is a 422 that says how many
hours that model needs.

The respondent is case-insensitive: the registry names a respondent's model with the lower-case
code (:func:`mlops_assets.demand.schema.model_name`), so the request keeps that form for the app
to pick the model, and the answer gives the code in upper case, as EIA spells it.

``mlops_assets.demand.forecaster`` imports mlflow at its top: it is imported inside the functions
only.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops_assets.demand import forecasting, schema
from mlops_assets.serving.endpoints import (
    ERA,
    Endpoint,
    Integer,
    Moment,
    Number,
    Prediction,
    RequestError,
    Services,
    request_config,
)

# The registered models' prefix: a respondent's is `schema.model_name(respondent)`.
MODEL_NAME_PREFIX = schema.CASE.model_name
MAX_HORIZON = 7 * 24
# A year of hours at most in one request: the statistical models read the last four weeks, gbm all.
MAX_HISTORY_HOURS = 366 * 24
# Registered models per page of the registry search.
PAGE_SIZE = 100

_HOUR = timedelta(hours=1)
_DEFAULT_SPEC = forecasting.BacktestSpec()
_NEEDS = {
    m: forecasting.minimum_train_hours(m, _DEFAULT_SPEC) for m in forecasting.STATISTICAL_MODELS
}
MIN_HISTORY_HOURS = min(_NEEDS.values())
_GBM_BASE = forecasting.GBM_WARMUP_HOURS + forecasting.GBM_MIN_TRAIN_ROWS
HISTORY_DESCRIPTION = (
    "The demand of the hours before the forecast, oldest first: whole hours, no duplicates, no "
    f"gaps; the forecast starts the hour after the last one. At least {MIN_HISTORY_HOURS} hours; "
    "the champion's model may need more: "
    + ", ".join(f"{m} {n} h" for m, n in _NEEDS.items())
    + f", gbm {_GBM_BASE} h + {forecasting.GBM_CONFORMAL_WINDOWS} x horizon."
)
# The documented example must be answered whatever model the champion is: its history is as long
# as the most demanding model needs at the example's horizon (gbm's, 528 h at 24 h; the 48 h of
# the shortest model made the example a 422 for every other champion).
EXAMPLE_HORIZON = 24
EXAMPLE_HISTORY_HOURS = max(
    max(_NEEDS.values()), _GBM_BASE + forecasting.GBM_CONFORMAL_WINDOWS * EXAMPLE_HORIZON
)


class DemandPoint(BaseModel):
    """The demand of one hour."""

    model_config = ConfigDict(extra="forbid")

    ds: Moment = Field(
        description="The start of the hour: an ISO 8601 date and time with its UTC offset "
        f"('2024-05-01T13:00:00Z'), {ERA}."
    )
    y: Number = Field(  # JSON true/false are not demand figures
        ge=schema.MIN_PLAUSIBLE_MWH,
        le=schema.MAX_PLAUSIBLE_MWH,
        allow_inf_nan=False,
        description="Demand in that hour, in MWh.",
    )


def _example_history() -> list[dict[str, Any]]:
    """A plausible demand curve: a daily cycle, lower weekends, and a small irregular part so
    that no model sees a degenerate (exactly periodic) series."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    points = []
    for h in range(EXAMPLE_HISTORY_HOURS):
        daily = 6_000 * math.sin(2 * math.pi * (h % 24 - 8) / 24)
        weekend = -2_500 if (start + h * _HOUR).weekday() >= 5 else 0
        wobble = 400 * math.sin(h * 0.7) + 250 * math.cos(h * 1.3)
        points.append(
            {
                "ds": (start + h * _HOUR).isoformat().replace("+00:00", "Z"),
                "y": round(30_000 + daily + weekend + wobble, 1),
            }
        )
    return points


class DemandRequest(BaseModel):
    """A forecast of one respondent's demand from its recent hours."""

    model_config = request_config(
        {"respondent": "CISO", "horizon": EXAMPLE_HORIZON, "history": _example_history()},
    )

    respondent: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9]{1,9}$",
        description="The balancing authority's EIA code (CISO, ERCO, PJM, MISO, NYIS, ...), "
        "case-insensitive: its champion forecaster answers.",
    )
    horizon: Integer = Field(
        default=24,
        ge=1,
        le=MAX_HORIZON,
        description="Hours to forecast after the history.",
    )
    history: list[DemandPoint] = Field(
        min_length=MIN_HISTORY_HOURS, max_length=MAX_HISTORY_HOURS, description=HISTORY_DESCRIPTION
    )

    @field_validator("respondent")
    @classmethod
    def _model_key(cls, value: str) -> str:
        # The registered model's key: demand_forecaster_<lower-case code>.
        return value.lower()


def registered_forecasters(tracking: Any) -> list[str]:
    """The names of every registered demand forecaster (``demand_forecaster_<respondent>``), read
    from ``tracking`` (an :class:`mlops_assets.core.tracking.MlflowTracking`) page by page."""
    names: list[str] = []
    token = None
    while True:
        page = tracking.client.search_registered_models(
            # `_` is a LIKE wildcard: the prefix is checked again below.
            filter_string=f"name LIKE '{MODEL_NAME_PREFIX}%'",
            max_results=PAGE_SIZE,
            page_token=token,
        )
        names.extend(m.name for m in page if m.name.startswith(MODEL_NAME_PREFIX))
        token = page.token
        if not token:
            return sorted(names)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _check_hours(history: list[DemandPoint]) -> list[tuple[datetime, float]]:
    """The history in UTC, sorted; RequestError naming the first hour that is not whole, repeated
    or preceded by a gap."""
    points = sorted((p.ds.astimezone(UTC), p.y) for p in history)
    for ds, _ in points:
        if ds.minute or ds.second or ds.microsecond:
            raise RequestError(
                "history", f"ds must be whole UTC hours; the first that is not is {_iso(ds)}"
            )
    for (before, _), (ds, _) in itertools.pairwise(points):
        if ds == before:
            raise RequestError("history", f"the hour {_iso(ds)} is given more than once")
        if ds - before != _HOUR:
            missing = int((ds - before) / _HOUR) - 1
            raise RequestError(
                "history",
                f"the history must be hourly without gaps: {missing} hour(s) missing from "
                f"{_iso(before + _HOUR)} (the hour after {_iso(before)}) to {_iso(ds - _HOUR)}",
            )
    return points


def predict(model: Any, request: DemandRequest, services: Services) -> Prediction:
    """Refit the respondent's champion on the history and forecast ``horizon`` hours after it."""
    import pandas as pd

    from mlops_assets.demand.forecaster import model_input

    points = _check_hours(request.history)
    code = request.respondent.upper()
    history = pd.DataFrame(
        {
            "unique_id": code,
            "ds": pd.to_datetime([ds for ds, _ in points], utc=True),
            "y": [y for _, y in points],
        }
    )
    try:
        frame = model.predict(model_input(history), params={"horizon": request.horizon})
    except forecasting.ForecastingError as error:
        raise RequestError("history", str(error)) from None
    forecast = [
        {
            "ds": _iso(row.ds.to_pydatetime()),
            "mean": float(row.yhat),
            "lo_80": float(row.yhat_lo_80),
            "hi_80": float(row.yhat_hi_80),
            "lo_95": float(row.yhat_lo_95),
            "hi_95": float(row.yhat_hi_95),
        }
        for row in frame.itertuples(index=False)
    ]
    body = {"respondent": code, "horizon": request.horizon, "forecast": forecast}
    return Prediction(body=body, value=forecast[0]["mean"], features=None)


ENDPOINT = Endpoint(
    use_case=schema.USE_CASE,
    model_name=MODEL_NAME_PREFIX + "{key}",
    model_key="respondent",
    model_names=registered_forecasters,
    request=DemandRequest,
    predict=predict,
    flavor="pyfunc",
    blocking=True,
    summary="The next hours of a balancing authority's electricity demand (MWh) with 80% and "
    "95% intervals, by its champion forecaster refitted on the history sent.",
    response_example={
        "respondent": "CISO",
        "horizon": 1,
        "forecast": [
            {
                "ds": "2024-05-03T00:00:00Z",
                "mean": 27_000.0,
                "lo_80": 25_100.0,
                "hi_80": 28_900.0,
                "lo_95": 24_100.0,
                "hi_95": 29_900.0,
            }
        ],
    },
)
