"""The demand endpoint: the request model, the history checks and predict with a real
DemandForecaster (seasonal naive: it refits in milliseconds), through the pyfunc interface the
app loads, and the registry listing of the forecasters."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.demand import forecasting
from mlops_assets.demand.forecaster import DemandForecaster
from mlops_assets.demand.serving import (
    ENDPOINT,
    MIN_HISTORY_HOURS,
    DemandRequest,
    registered_forecasters,
)
from mlops_assets.serving.endpoints import Prediction, RequestError, Services
from mlops_assets_tests.fixtures import demand_serving
from mlops_assets_tests.fixtures.demand_serving import FORECAST_FIELDS, SPEC, InMemoryPyFunc

EXAMPLE = DemandRequest.model_config["json_schema_extra"]["examples"][0]
SERVICES = Services(online=None)

# CISO's history, a module-scoped fixture shared with the API's tests.
clean = demand_serving.clean


@pytest.fixture
def model() -> InMemoryPyFunc:
    return InMemoryPyFunc(DemandForecaster("seasonal_naive", SPEC))


def _payload(clean: pd.DataFrame, **changes: Any) -> dict[str, Any]:
    history = [
        {"ds": ds.isoformat(), "y": float(y)} for ds, y in zip(clean.ds, clean.y, strict=True)
    ]
    return {"respondent": "CISO", "horizon": 24, "history": history, **changes}


def _predict(model, payload: dict[str, Any]) -> Prediction:
    request = ENDPOINT.request.model_validate_json(json.dumps(payload))
    return ENDPOINT.predict(model, request, SERVICES)


def test_endpoint_picks_the_respondents_model() -> None:
    assert (ENDPOINT.use_case, ENDPOINT.flavor, ENDPOINT.model_key) == (
        "demand",
        "pyfunc",
        "respondent",
    )
    assert ENDPOINT.blocking
    request = DemandRequest.model_validate(EXAMPLE)
    # The registry's name (demand.schema.model_name lower-cases the code), whatever the case sent.
    assert ENDPOINT.name_for(request) == "demand_forecaster_ciso"
    assert ENDPOINT.name_for(request.model_copy(update={"respondent": "pjm"})) == (
        "demand_forecaster_pjm"
    )
    from mlops_assets.demand.schema import model_name

    assert ENDPOINT.name_for(request) == model_name("CISO")


def test_forecast_is_the_forecasters_own(clean: pd.DataFrame, model: InMemoryPyFunc) -> None:
    out = _predict(model, _payload(clean, horizon=30))
    expected = forecasting.forecast(clean, "seasonal_naive", dataclasses.replace(SPEC, horizon=30))
    assert out.body["respondent"] == "CISO" and out.body["horizon"] == 30
    rows = out.body["forecast"]
    assert len(rows) == 30
    assert [r["ds"] for r in rows] == [ds.isoformat().replace("+00:00", "Z") for ds in expected.ds]
    assert rows[0]["ds"] == (clean.ds.max() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for column, key in FORECAST_FIELDS.items():
        assert [r[key] for r in rows] == pytest.approx(expected[column].tolist())
    assert out.value == rows[0]["mean"] == pytest.approx(expected.yhat.iloc[0])
    assert out.features is None
    # The frame handed to the pyfunc is the forecaster's own input form, with the horizon param.
    data, params = model.calls[-1]
    assert params == {"horizon": 30}
    assert list(data.columns) == ["unique_id", "ds", "y"] and data.ds.dt.tz is None
    json.dumps(out.body)


def test_the_example_validates_and_forecasts(model: InMemoryPyFunc) -> None:
    out = _predict(model, EXAMPLE)
    assert MIN_HISTORY_HOURS == 48
    # Long enough for the most demanding model at the example's horizon: gbm, 360 h + 7 x 24 h.
    assert len(EXAMPLE["history"]) == 528
    assert len(out.body["forecast"]) == 24
    # Seasonal naive: tomorrow's hour is today's.
    last_day = [point["y"] for point in EXAMPLE["history"][-24:]]
    assert [r["mean"] for r in out.body["forecast"]] == pytest.approx(last_day)


@pytest.mark.parametrize("kind", forecasting.MODELS)
def test_the_documented_example_is_answered_whatever_the_champion_is(kind: str) -> None:
    # The example must answer 200 in the docs: no model may find its history too short.
    out = _predict(InMemoryPyFunc(DemandForecaster(kind, forecasting.BacktestSpec())), EXAMPLE)

    forecast = out.body["forecast"]
    assert len(forecast) == EXAMPLE["horizon"] == 24
    assert forecast[0]["ds"] == "2024-05-23T00:00:00Z"  # the hour after the history's last
    for point in forecast:
        assert point["lo_95"] <= point["lo_80"] <= point["hi_80"] <= point["hi_95"]
        assert 10_000 < point["mean"] < 50_000  # the example's demand is 21-37 GWh


def test_history_in_any_order_and_offset_is_read_in_utc(clean, model) -> None:
    payload = _payload(clean)
    shuffled = list(reversed(payload["history"]))
    for point in shuffled[::2]:
        local = pd.Timestamp(point["ds"]).tz_convert("America/Los_Angeles")
        point["ds"] = local.isoformat()
    out = _predict(model, {**payload, "history": shuffled})
    assert out.body == _predict(model, payload).body


def _hours(clean: pd.DataFrame) -> list[dict[str, Any]]:
    return _payload(clean)["history"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda h: h[:100] + h[101:], "1 hour(s) missing from 2024-01-05T04:00:00Z"),
        (lambda h: h[:100] + h[103:], "3 hour(s) missing from 2024-01-05T04:00:00Z"),
        (lambda h: [*h[:100], h[100], h[100], *h[101:]], "the hour 2024-01-05T04:00:00Z is given"),
        (
            lambda h: [*h[:100], {**h[100], "ds": "2024-01-05T04:30:00Z"}, *h[101:]],
            "whole UTC hours; the first that is not is 2024-01-05T04:30:00Z",
        ),
    ],
    ids=["gap", "longer_gap", "duplicate", "off_the_hour"],
)
def test_a_broken_history_names_its_first_bad_hour(clean, model, damage, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        _predict(model, _payload(clean, history=damage(_hours(clean))))
    assert (caught.value.field, caught.value.status) == ("history", 422)
    assert message in caught.value.message
    assert model.calls == []


def test_a_history_too_short_for_the_champion_says_what_it_needs(clean: pd.DataFrame) -> None:
    holt_winters = InMemoryPyFunc(DemandForecaster("holt_winters", SPEC))
    with pytest.raises(RequestError) as caught:
        _predict(holt_winters, _payload(clean.tail(100)))
    assert caught.value.field == "history"
    assert "needs 168 hours" in caught.value.message and "has 100" in caught.value.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"respondent": "CI SO"}, "respondent"),
        ({"respondent": ""}, "respondent"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": 169}, "horizon"),
        ({"horizon": True}, "horizon"),  # a JSON boolean is not a number of hours
        ({"history": []}, "history"),
        ({"history": [{"ds": "2024-05-01T00:00:00Z", "y": 1.0}] * 47}, "history"),
    ],
)
def test_bad_fields_are_refused(changes: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DemandRequest.model_validate_json(json.dumps({**EXAMPLE, **changes}))
    assert {e["loc"][0] for e in caught.value.errors()} == {field}


@pytest.mark.parametrize(
    "point",
    [
        {"ds": "2024-05-01T00:00:00", "y": 1.0},  # naive: which hour?
        # Year 1 with an offset overflowed Python's datetime when read in UTC (a 500).
        {"ds": "0001-01-01T00:00:00+01:00", "y": 30_000.0},
        {"ds": "9999-12-31T23:00:00Z", "y": 30_000.0},
        {"ds": 1714521600, "y": 30_000.0},  # seconds since 1970 are not an ISO time
        {"ds": "2024-05-01T00:00:00Z", "y": True},
        {"ds": "2024-05-01T00:00:00Z", "y": -1.0},
        {"ds": "2024-05-01T00:00:00Z", "y": None},
        {"ds": "2024-05-01T00:00:00Z"},
        {"ds": "2024-05-01T00:00:00Z", "y": 1.0, "unique_id": "CISO"},
    ],
)
def test_bad_history_points_are_refused_naming_history(point: dict) -> None:
    history = [point, *EXAMPLE["history"][1:]]
    with pytest.raises(ValidationError) as caught:
        DemandRequest.model_validate_json(json.dumps({**EXAMPLE, "history": history}))
    assert {e["loc"][:2] for e in caught.value.errors()} == {("history", 0)}


def test_horizon_defaults_to_a_day_and_extra_fields_are_refused() -> None:
    without = {k: v for k, v in EXAMPLE.items() if k != "horizon"}
    assert DemandRequest.model_validate(without).horizon == 24
    with pytest.raises(ValidationError, match="model\n  Extra inputs are not permitted"):
        DemandRequest.model_validate({**EXAMPLE, "model": "gbm"})
    properties = DemandRequest.model_json_schema()["properties"]
    assert all(properties[name].get("description") for name in properties)
    assert "gbm 360 h + 7 x horizon" in properties["history"]["description"]


def test_registered_forecasters_pages_through_the_registry(tmp_path, monkeypatch) -> None:
    from mlops_assets.core.tracking import MlflowTracking
    from mlops_assets.demand import serving

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr(serving, "PAGE_SIZE", 2)
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    for name in (
        "demand_forecaster_ciso",
        "demand_forecaster_erco",
        "demand_forecaster_pjm",
        "demand_forecasterXmiso",  # `_` matches any character in LIKE
        "heart_disease",
    ):
        tracking.client.create_registered_model(name)
    assert ENDPOINT.model_names(tracking) == [
        "demand_forecaster_ciso",
        "demand_forecaster_erco",
        "demand_forecaster_pjm",
    ]
    assert registered_forecasters(tracking) == ENDPOINT.model_names(tracking)


def test_through_a_saved_and_loaded_pyfunc(clean: pd.DataFrame, tmp_path, monkeypatch) -> None:
    import mlflow

    from mlops_assets.demand.forecaster import pip_requirements, signature_and_example

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    signature, example = signature_and_example(clean, SPEC, model="seasonal_naive")
    mlflow.pyfunc.save_model(
        tmp_path / "forecaster",
        python_model=DemandForecaster("seasonal_naive", SPEC),
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "forecaster"))
    payload = _payload(clean, horizon=6)
    out = _predict(loaded, payload)
    assert (
        out.body == _predict(InMemoryPyFunc(DemandForecaster("seasonal_naive", SPEC)), payload).body
    )
    assert len(out.body["forecast"]) == 6
