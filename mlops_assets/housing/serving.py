"""The housing API: the predicted sale price of one home, from what a seller knows when listing it.

The champion (``housing_price@champion``) is the MLflow pyfunc of
:mod:`mlops_assets.housing.inference`; the endpoint unwraps it to the
:class:`~mlops_assets.housing.inference.HousingPriceModel` and answers through
:func:`~mlops_assets.housing.inference.predict_records`, THE inference path that batch scoring and
the holdout report also use, so the API cannot drift from them.

The request is typed (a number is a number, a zipcode is five digits at most), and inference stays
lenient where a guess is safe and says what it did, in the answer:

* only ``sale_date`` is required; every other field may be left out or null, and XGBoost routes a
  missing value as it learnt to. Such fields are listed in ``missing_fields``;
* a zipcode sent as a number (``2139``), or with its leading zeros lost, is padded to five digits
  and listed in ``coerced_fields``;
* a city, zipcode or property type the model never saw in training is allowed (it takes the
  encoders' row for unseen categories) and listed in ``unseen_categories``.

The request model refuses what cannot be a home (a JSON boolean as a number, a sale date outside
the years served); what inference still refuses is a 422 naming the field, in words.

``mlops_assets.housing.inference`` imports mlflow and pandas at its top: it is imported inside the
functions only, so that the app's start-up does not pay for it until the model loads.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, Field

from mlops_assets.housing import schema
from mlops_assets.serving.drift import InputDrift, Reference, TrainedOn
from mlops_assets.serving.endpoints import (
    ERA,
    DayOrMoment,
    Endpoint,
    Integer,
    ModelInfo,
    Number,
    Prediction,
    RequestError,
    Services,
    request_config,
)

MODEL_NAME = schema.CASE.model_name
CURRENCY = "USD"

_NOTES = ("missing_fields", "coerced_fields", "unseen_categories")


def _optional(low: float, high: float, description: str) -> Any:
    """A field a seller may leave out (null), within ``[low, high]`` when given; a float field
    refuses NaN and infinity, as an integer one does by its type."""
    return Field(default=None, ge=low, le=high, allow_inf_nan=False, description=description)


class HousingRequest(BaseModel):
    """One home as listed: when it sells, where it is and what it is."""

    model_config = request_config(
        {
            "sale_date": "2023-05-01",
            "city": "Boston",
            "zipcode": "02130",
            "property_type": "single_family",
            "beds": 3,
            "baths": 2.0,
            "living_area_sqft": 1800.0,
            "lot_sqft": 6500.0,
            "year_built": 1985,
            "condition": 3,
        },
    )

    sale_date: DayOrMoment = Field(
        description="When the home sells: an ISO 8601 date ('2023-05-01') or time (a time with "
        f"an offset is read in UTC), {ERA}. Required: prices move with the market."
    )
    city: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The city. One the model never saw is allowed and listed in unseen_categories.",
    )
    zipcode: (
        Annotated[str, Field(pattern=r"^[0-9]{1,5}$")]
        | Annotated[int, Field(ge=0, le=99_999, strict=True)]
        | None
    ) = Field(
        default=None,
        description="The five-digit US ZIP code, as text ('02139') or a number (2139): fewer "
        "digits are leading zeros lost on the way and are padded back.",
    )
    property_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description=f"One of {', '.join(schema.PROPERTY_TYPES)}; another type is allowed and "
        "listed in unseen_categories.",
    )
    # Integer and Number: a JSON true or false is not a size or a count (lax mode read false as 0).
    beds: Integer | None = _optional(0, 20, "Bedrooms.")
    baths: Number | None = _optional(0, 20, "Bathrooms (0.5 = half bath).")
    living_area_sqft: Number | None = _optional(100, 50_000, "Living area, in square feet.")
    lot_sqft: Number | None = _optional(
        0, 50_000_000, "Lot area, in square feet; null or left out for a condo."
    )
    year_built: Integer | None = _optional(1700, 2100, "Year of construction.")
    condition: Integer | None = _optional(1, 5, "Condition, 1 (poor) to 5 (excellent).")


def prepare(model: Any, info: ModelInfo) -> Any:
    """The :class:`~mlops_assets.housing.inference.HousingPriceModel` inside the pyfunc, its
    booster loaded now rather than on the first request."""
    from mlops_assets.housing.inference import HousingPriceModel

    bundle = model.unwrap_python_model()
    if not isinstance(bundle, HousingPriceModel):
        raise ValueError(
            f"{info.name} v{info.version} is a {type(bundle).__name__}, not a HousingPriceModel"
        )
    _ = bundle.booster
    return bundle


def _problem_message(problem: dict[str, Any]) -> str:
    subject = problem.get("field") or "the request"
    value = problem.get("value")
    if value is not None:
        # A date as the client wrote it ('0001-01-01'), not as Python's repr (datetime.date(1, 1, 1)).
        shown = value.isoformat() if isinstance(value, date) else value
        subject += f"={shown!r}"
    return f"{subject} {problem['reason']}"


def predict(bundle: Any, request: HousingRequest, services: Services) -> Prediction:
    """The predicted price (USD) of one home, with what inference did to the request."""
    from mlops_assets.housing import inference

    # Fields left out and fields sent as null both reach inference as absent, so that
    # `missing_fields` lists every input the model did not get.
    record = request.model_dump(exclude_none=True)
    try:
        prices, prepared = inference.predict_records(bundle, [record])
    except inference.InferenceError as error:
        first = error.problems[0] if error.problems else {"field": None, "reason": str(error)}
        raise RequestError(first.get("field"), _problem_message(first)) from None
    price = float(prices[0])
    notes = prepared.notes()
    body: dict[str, Any] = {
        "predicted_price": price,
        "currency": CURRENCY,
        **{key: notes[key] for key in _NOTES},
    }
    # features=None: predict_records does not return the encoded row the booster saw, and
    # rebuilding it (encoding.build_features again) costs ~13 ms, a fifth of the whole prediction.
    # Nothing is lost for replay: the row is a pure function of the logged request and of the
    # encoders bundled in the logged model version.
    return Prediction(body=body, value=price, features=None)


# A US ZIP code has five digits: a shorter all-digit one lost its leading zeros (inference pads
# it the same way, and lists it in coerced_fields).
_ZIPCODE_DIGITS = 5


def training_rows(store: Any, trained: TrainedOn) -> Reference:
    """The sales version ``trained`` learnt from: the ``train`` period of ``housing/splits`` as
    its run read it (the eval period only chose hyperparameters and stopped the boosting), every
    input a seller sends except ``sale_date``. The sale date is left out of the comparison:
    requests always come after the training period, so it drifts by design; it stays in the
    frame, because the model needs it to price the rows."""
    from mlops_assets.serving.drift import stored_training_rows

    frame, exact, note = stored_training_rows(store, schema.CASE.key("splits"), trained)
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    return Reference(
        frame=train[list(schema.FEATURE_INPUTS)],
        numeric=schema.NUMERIC,
        categorical=schema.CATEGORICAL,
        exact=exact,
        note=f"{note}; its {len(train):,} train sales",
    )


def score_rows(bundle: Any, frame: Any) -> Any:
    """The predicted price (USD) of each row, through THE inference path the endpoint uses."""
    from mlops_assets.housing import inference

    prices, _ = inference.predict_records(bundle, frame[list(schema.FEATURE_INPUTS)])
    return prices


def values_seen(request: Any, features: Any) -> dict[str, Any]:
    """The inputs of one logged request as the model read them: the request (the endpoint logs
    no features), a zipcode sent as a number or short of its leading zeros padded back."""
    values = dict(request or {})
    zipcode = values.get("zipcode")
    if isinstance(zipcode, int) and not isinstance(zipcode, bool):
        zipcode = str(zipcode)
    if isinstance(zipcode, str) and zipcode.strip().isdigit():
        zipcode = zipcode.strip().zfill(_ZIPCODE_DIGITS)
    if zipcode is not None:
        values["zipcode"] = zipcode
    return values


ENDPOINT = Endpoint.of(
    schema.CASE,
    request=HousingRequest,
    predict=predict,
    prepare=prepare,
    flavor="pyfunc",
    summary="The predicted sale price of a home, from its listing: date, place, type and size.",
    response_example={
        "predicted_price": 452_000.0,
        "currency": CURRENCY,
        "missing_fields": [],
        "coerced_fields": [],
        "unseen_categories": {},
    },
    drift=InputDrift(training_rows=training_rows, score=score_rows, current=values_seen),
)
