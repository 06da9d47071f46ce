"""The housing endpoint: the request model and predict, on a real bundle (encoders fitted on
generated sales, a small XGBoost) behind an in-memory pyfunc, without MLflow's registry or the
app."""

from __future__ import annotations

import json
import math
from datetime import date

import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.housing import schema
from mlops_assets.housing.inference import HousingPriceModel, predict_records
from mlops_assets.housing.serving import ENDPOINT, HousingRequest
from mlops_assets.serving.endpoints import Prediction, RequestError, Services
from mlops_assets_tests.fixtures import housing_serving
from mlops_assets_tests.fixtures.housing_serving import INFO, LoadedPyFunc

EXAMPLE = HousingRequest.model_config["json_schema_extra"]["examples"][0]
SERVICES = Services(online=None)

# The sales and the prepared model, module-scoped fixtures shared with the API's tests.
raw = housing_serving.raw
model = housing_serving.model


def _predict(model: HousingPriceModel, payload: dict) -> Prediction:
    request = ENDPOINT.request.model_validate_json(json.dumps(payload))
    return ENDPOINT.predict(model, request, SERVICES)


def test_endpoint_declares_the_champion_it_serves() -> None:
    assert (ENDPOINT.use_case, ENDPOINT.model_name, ENDPOINT.flavor) == (
        "housing",
        "housing_price",
        "pyfunc",
    )
    assert not ENDPOINT.needs_online_features
    assert set(HousingRequest.model_fields) == set(schema.FEATURE_INPUTS)


def test_prepare_unwraps_the_bundle_and_refuses_anything_else(model: HousingPriceModel) -> None:
    assert isinstance(model, HousingPriceModel)
    with pytest.raises(ValueError, match="housing_price v3 is a dict, not a HousingPriceModel"):
        ENDPOINT.prepare(LoadedPyFunc({}), INFO)


def test_the_example_predicts_what_the_inference_path_gives(
    model: HousingPriceModel, raw: pd.DataFrame
) -> None:
    assert EXAMPLE["city"] in set(raw.city) and EXAMPLE["zipcode"] in set(raw.zipcode)
    out = _predict(model, EXAMPLE)
    prices, _ = predict_records(model, [EXAMPLE])
    assert out.value == float(prices[0])
    assert 10_000 < out.value < 10_000_000
    assert out.body == {
        "predicted_price": out.value,
        "currency": "USD",
        "missing_fields": [],
        "coerced_fields": [],
        "unseen_categories": {},
    }
    assert out.features is None  # the encoded row is rebuilt from the request when needed
    json.dumps(out.body)


def test_left_out_and_null_fields_are_both_reported_missing(model: HousingPriceModel) -> None:
    payload = {k: v for k, v in EXAMPLE.items() if k not in ("beds", "city")}
    out = _predict(model, {**payload, "lot_sqft": None})
    assert out.body["missing_fields"] == ["city", "beds", "lot_sqft"]
    prices, _ = predict_records(
        model, [{k: v for k, v in payload.items() if k != "lot_sqft"} | {"lot_sqft": None}]
    )
    assert out.value == float(prices[0])
    only_date = _predict(model, {"sale_date": "2020-01-01"})
    assert only_date.body["missing_fields"] == list(schema.FEATURE_INPUTS[1:])
    assert math.isfinite(only_date.value)


def test_a_numeric_zipcode_is_padded_and_an_unseen_city_noted(model: HousingPriceModel) -> None:
    as_number = _predict(model, {**EXAMPLE, "zipcode": int(EXAMPLE["zipcode"])})
    assert as_number.body["coerced_fields"] == ["zipcode"]
    assert as_number.value == _predict(model, EXAMPLE).value
    unseen = _predict(model, {**EXAMPLE, "city": "Atlantis", "property_type": "houseboat"})
    assert unseen.body["unseen_categories"] == {
        "city": ["Atlantis"],
        "property_type": ["houseboat"],
    }
    assert unseen.value == float(
        predict_records(model, [{**EXAMPLE, "city": "Atlantis", "property_type": "houseboat"}])[0][
            0
        ]
    )


def test_a_time_with_an_offset_is_read_in_utc(model: HousingPriceModel) -> None:
    # 2023-01-01 01:30 at UTC+5 is 2022-12-31 in UTC: last year's market, not this one's.
    late = _predict(model, {**EXAMPLE, "sale_date": "2023-01-01T01:30:00+05:00"})
    (in_utc,), _ = predict_records(model, [{**EXAMPLE, "sale_date": "2022-12-31"}])
    (next_day,), _ = predict_records(model, [{**EXAMPLE, "sale_date": "2023-01-01"}])
    assert late.value == float(in_utc) != float(next_day)


def test_what_inference_refuses_is_a_request_error_naming_the_field(
    model: HousingPriceModel,
) -> None:
    # A valid date outside the years served is refused by the request model, in words.
    with pytest.raises(ValidationError) as refused:
        _predict(model, {**EXAMPLE, "sale_date": "0001-01-01"})
    (error,) = refused.value.errors()
    assert error["loc"] == ("sale_date",)
    assert "must be between 1900-01-01 and 2199-12-31" in error["msg"]
    # Past the request model (as a bug upstream could send it), inference says what is wrong with
    # the date as the client wrote it, not "datetime.date(1, 1, 1) is not a date".
    request = ENDPOINT.request.model_construct(**{**EXAMPLE, "sale_date": date(1, 1, 1)})
    with pytest.raises(RequestError) as caught:
        ENDPOINT.predict(model, request, Services(online=None))
    assert caught.value.field == "sale_date"
    assert caught.value.status == 422
    assert caught.value.message == (
        "sale_date='0001-01-01' is outside the dates the model can read (1677-09-21 to 2262-04-11)"
    )
    assert caught.value.detail()[0]["loc"] == ["body", "sale_date"]


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_of_several_problems_the_first_in_field_order_is_named(model: HousingPriceModel) -> None:
    # A request built past validation, as only a bug upstream could make one.
    request = HousingRequest.model_construct(sale_date="someday", beds="three")
    with pytest.raises(RequestError) as caught:
        ENDPOINT.predict(model, request, SERVICES)
    assert caught.value.field == "sale_date"
    assert caught.value.message.startswith("sale_date='someday' is not a date")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sale_date": "yesterday"}, "sale_date"),
        ({"sale_date": None}, "sale_date"),
        ({"zipcode": "ABCDE"}, "zipcode"),
        ({"zipcode": "021390"}, "zipcode"),
        ({"zipcode": 123456}, "zipcode"),
        ({"beds": -1}, "beds"),
        ({"beds": 2.5}, "beds"),
        ({"baths": "many"}, "baths"),
        ({"living_area_sqft": 10}, "living_area_sqft"),
        ({"year_built": 1492}, "year_built"),
        ({"condition": 6}, "condition"),
        ({"city": ""}, "city"),
    ],
)
def test_mistyped_and_out_of_range_fields_are_refused(changes: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HousingRequest.model_validate_json(json.dumps({**EXAMPLE, **changes}))
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


def test_sale_date_is_required_and_extra_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="sale_date\n  Field required"):
        HousingRequest.model_validate({"city": "Boston"})
    with pytest.raises(ValidationError, match="price\n  Extra inputs are not permitted"):
        HousingRequest.model_validate({**EXAMPLE, "price": 1.0})


def test_the_schema_documents_every_field() -> None:
    properties = HousingRequest.model_json_schema()["properties"]
    assert all(properties[name].get("description") for name in schema.FEATURE_INPUTS)
