"""The housing inference path: record validation and coercion, the bundle, and an MLflow log/load
round trip (in this process and in a fresh one) that predicts what the in-memory bundle does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.housing import schema
from mlops_assets.housing.encoding import (
    FEATURE_COLUMNS,
    EncoderSpec,
    build_features,
    fit_encoders,
)
from mlops_assets.housing.inference import (
    MAX_PROBLEMS,
    PREDICTION,
    HousingPriceModel,
    InferenceError,
    PreparedBatch,
    bundle,
    pip_requirements,
    predict_records,
    prepare_records,
    signature_and_example,
)
from mlops_assets_tests.fixtures.housing_serving import fit_bundle

REPO_ROOT = Path(__file__).resolve().parents[2]


def _raw(n: int, seed: int = 0) -> pd.DataFrame:
    """A raw-contract frame whose price depends on size, place and time."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["Ashford", "Brookline", "Cedar Falls"], n)
    zipcode = np.where(city == "Ashford", "02139", rng.choice(["02140", "10001"], n))
    area = rng.uniform(500, 4000, n)
    days = rng.integers(0, 365 * 11, n)
    sale_date = [date(2012, 1, 1) + pd.Timedelta(days=int(d)) for d in days]
    premium = pd.Series(city).map({"Ashford": 1.4, "Brookline": 1.0, "Cedar Falls": 0.7})
    price = 150 * area * premium.to_numpy() * (1 + days / 4000) * rng.lognormal(0, 0.05, n)
    return pd.DataFrame(
        {
            "sale_id": [f"s{i:05d}" for i in range(n)],
            "sale_date": sale_date,
            "city": city,
            "zipcode": zipcode,
            "property_type": rng.choice(list(schema.PROPERTY_TYPES), n),
            "beds": rng.integers(1, 6, n),
            "baths": rng.integers(2, 8, n) / 2,
            "living_area_sqft": area,
            "lot_sqft": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(1000, 20000, n)),
            "year_built": rng.integers(1900, 2024, n),
            "condition": rng.integers(1, 6, n),
            "price": price,
        }
    )


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return _raw(400)


@pytest.fixture(scope="module")
def model(raw: pd.DataFrame) -> HousingPriceModel:
    return fit_bundle(raw, n_estimators=20, metadata={"data_version": "test-v1", "rows": len(raw)})


RECORD = {
    "sale_date": "2021-05-01",
    "city": "Ashford",
    "zipcode": "02139",
    "property_type": "condo",
    "beds": 3,
    "baths": 2.5,
    "living_area_sqft": 1800.0,
    "lot_sqft": 4000.0,
    "year_built": 1985,
    "condition": 4,
}


def _record(**changes) -> dict:
    record = {**RECORD, **changes}
    return {k: v for k, v in record.items() if v is not ...}


# --- prepare_records ----------------------------------------------------------------------------


def test_a_complete_record_is_typed_and_noted_as_clean(model: HousingPriceModel) -> None:
    prepared = prepare_records([_record()], model.encoders)
    assert isinstance(prepared, PreparedBatch)
    assert list(prepared.frame.columns) == list(schema.FEATURE_INPUTS)
    assert pd.api.types.is_datetime64_dtype(prepared.frame.sale_date)
    assert prepared.frame.sale_date[0] == pd.Timestamp("2021-05-01")
    assert all(prepared.frame[c].dtype == "float64" for c in schema.NUMERIC)
    assert prepared.frame.zipcode[0] == "02139"
    assert prepared.notes() == {
        "rows": 1,
        "missing_fields": [],
        "extra_fields": [],
        "coerced_fields": [],
        "unseen_categories": {},
    }


def test_missing_fields_predict_and_are_listed(model: HousingPriceModel) -> None:
    records = [_record(lot_sqft=..., condition=...), _record(lot_sqft=...)]
    prices, prepared = predict_records(model, records)
    assert prepared.missing_fields == ["lot_sqft", "condition"]
    assert np.isnan(prepared.frame.lot_sqft).all()
    assert np.isnan(prepared.frame.condition[0]) and prepared.frame.condition[1] == 4.0
    assert np.isfinite(prices).all() and (prices > 0).all()
    # Missing means NaN, as XGBoost sees an explicit null.
    nulls, _ = predict_records(model, [_record(lot_sqft=None, condition=None)])
    assert prices[0] == nulls[0]


def test_extra_fields_are_dropped_and_listed(model: HousingPriceModel) -> None:
    plain, _ = predict_records(model, [_record()])
    prices, prepared = predict_records(
        model, [_record(sale_id="x1", price=1.0, colour="blue"), _record()]
    )
    assert prepared.extra_fields == ["colour", "price", "sale_id"]
    assert list(prepared.frame.columns) == list(schema.FEATURE_INPUTS)
    assert prices.tolist() == [plain[0], plain[0]]


def test_numbers_as_text_are_coerced_listed_and_predict_the_same(model: HousingPriceModel) -> None:
    as_numbers, _ = predict_records(model, [_record()])
    text = _record(beds="3", baths=" 2.5 ", living_area_sqft="1.8e3", year_built="1985 ")
    prices, prepared = predict_records(model, [text])
    assert prepared.coerced_fields == ["beds", "baths", "living_area_sqft", "year_built"]
    assert prices.tolist() == as_numbers.tolist()
    # An empty text is a missing value, not a number to coerce.
    _, blank = predict_records(model, [_record(lot_sqft="  ")])
    assert np.isnan(blank.frame.lot_sqft[0]) and blank.coerced_fields == []


def test_unseen_categories_predict_and_are_listed(model: HousingPriceModel) -> None:
    prices, prepared = predict_records(
        model, [_record(city="Atlantis"), _record(city="Zion", zipcode="99999"), _record()]
    )
    assert prepared.unseen == {"city": ["Atlantis", "Zion"], "zipcode": ["99999"]}
    assert prepared.notes()["unseen_categories"] == prepared.unseen
    assert np.isfinite(prices).all()
    # An unseen city is encoded as the prior, like a null one.
    null_city, _ = predict_records(model, [_record(city=None)])
    assert prices[0] == null_city[0]


def test_zipcodes_that_lost_their_leading_zeros_are_padded(model: HousingPriceModel) -> None:
    expected, _ = predict_records(model, [_record()])
    for zipcode in (2139, "2139", 2139.0, " 02139 "):
        prices, prepared = predict_records(model, [_record(zipcode=zipcode)])
        assert prepared.frame.zipcode[0] == "02139"
        assert prepared.unseen == {}
        assert prices[0] == expected[0]
        assert prepared.coerced_fields == ([] if zipcode == " 02139 " else ["zipcode"])
    # Six digits is no ZIP code that lost a zero: kept as it is, and unseen.
    prepared = prepare_records([_record(zipcode=123456)], model.encoders)
    assert prepared.frame.zipcode[0] == "123456" and prepared.unseen == {"zipcode": ["123456"]}


def test_a_dataframe_input_keeps_its_index_and_types(model: HousingPriceModel, raw) -> None:
    frame = raw.iloc[:5].set_index(pd.Index(list("abcde")))
    prices, prepared = predict_records(model, frame)
    assert prepared.frame.index.tolist() == list("abcde")
    assert prepared.extra_fields == ["price", "sale_id"] and prepared.missing_fields == []
    expected = model.booster.predict(
        __import__("xgboost").DMatrix(
            build_features(frame, model.encoders), feature_names=list(FEATURE_COLUMNS)
        )
    )
    # The booster's float32 log price, exponentiated in float64.
    np.testing.assert_array_equal(prices, np.exp(expected.astype("float64")))
    assert prices.dtype == np.float64
    # ISO strings, naive or with an offset, and datetime64 give the same dates.
    as_text = frame.assign(sale_date=pd.to_datetime(frame.sale_date).dt.strftime("%Y-%m-%d"))
    as_time = frame.assign(sale_date=pd.to_datetime(frame.sale_date))
    as_utc = frame.assign(sale_date=as_text.sale_date + "T00:00:00Z")
    for other in (as_text, as_time, as_utc):
        again, _ = predict_records(model, other)
        np.testing.assert_array_equal(again, prices)


@pytest.mark.parametrize(
    ("changes", "match", "field"),
    [
        ({"beds": "three"}, r"row 1: beds='three' is not a number", "beds"),
        ({"beds": True}, r"row 1: beds=True is a boolean, not a number", "beds"),
        ({"baths": "1,5"}, r"row 1: baths='1,5' is not a number", "baths"),
        (
            {"living_area_sqft": [1]},
            r"row 1: living_area_sqft=\[1\] is not a number",
            "living_area_sqft",
        ),
        ({"lot_sqft": "inf"}, r"row 1: lot_sqft='inf' is not a finite number", "lot_sqft"),
        ({"sale_date": "05/01/2021"}, r"row 1: sale_date='05/01/2021' is not a date", None),
        ({"sale_date": "2021-13-45"}, r"row 1: sale_date='2021-13-45' is not a date", None),
        ({"sale_date": 20210501}, r"row 1: sale_date=20210501 is not a date", None),
        ({"sale_date": None}, r"row 1: sale_date is missing", None),
        ({"sale_date": ""}, r"row 1: sale_date is missing", None),
        ({"city": True}, r"row 1: city=True is a boolean, not text", None),
        ({"city": {"name": "x"}}, r"row 1: city=\{'name': 'x'\} is not text", "city"),
        ({"zipcode": 2139.5}, r"row 1: zipcode=2139.5 is not text", "zipcode"),
    ],
)
def test_unusable_values_are_422_naming_row_and_field(
    model: HousingPriceModel, changes: dict, match: str, field: str | None
) -> None:
    with pytest.raises(InferenceError, match=match) as raised:
        prepare_records([_record(), _record(**changes)], model.encoders)
    error = raised.value
    assert error.status_code == 422 and isinstance(error, ValueError)
    [problem] = error.problems
    assert problem["row"] == 1 and problem["field"] == next(iter(changes))
    assert error.to_dict()["problems"] == error.problems
    json.dumps(error.to_dict())  # an API can return it as it is
    if field is not None:
        assert problem["value"] == changes[field]


def test_every_problem_of_a_batch_is_reported_at_once(model: HousingPriceModel) -> None:
    records = [_record(beds="three"), _record(), _record(sale_date="soon", baths="two")]
    with pytest.raises(InferenceError) as raised:
        prepare_records(records, model.encoders)
    assert [(p["row"], p["field"]) for p in raised.value.problems] == [
        (0, "beds"),
        (2, "sale_date"),
        (2, "baths"),
    ]
    assert str(raised.value).startswith("row 0: beds='three' is not a number; row 2: sale_date=")
    many = [_record(beds="x")] * (MAX_PROBLEMS + 5)
    with pytest.raises(InferenceError, match="and 95 more problems") as raised:
        prepare_records(many, model.encoders)
    assert len(raised.value.problems) == MAX_PROBLEMS and raised.value.total == MAX_PROBLEMS + 5


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([], "the batch is empty"),
        (pd.DataFrame(), "the batch is empty"),
        (RECORD, "expected a list of records .* got dict"),
        ("records", "expected a list of records .* got str"),
        (42, "expected a list of records .* got int"),
        ([RECORD, "x"], "row 1: 'x' is not a record"),
        ([RECORD, [1, 2]], r"row 1: \[1, 2\] is not a record"),
        ([{k: v for k, v in RECORD.items() if k != "sale_date"}], "sale_date is missing"),
    ],
)
def test_malformed_batches_are_422(model: HousingPriceModel, payload, match: str) -> None:
    with pytest.raises(InferenceError, match=match) as raised:
        prepare_records(payload, model.encoders)
    assert raised.value.status_code == 422


# --- the bundle -------------------------------------------------------------------------------


def test_the_bundle_holds_plain_state_and_rebuilds_the_booster(
    model: HousingPriceModel, raw
) -> None:
    import pickle

    import xgboost as xgb

    assert model.feature_columns == FEATURE_COLUMNS
    assert isinstance(model.booster_json, bytes)
    assert json.loads(model.booster_json)["learner"]["feature_names"] == list(FEATURE_COLUMNS)
    assert model.metadata == {"data_version": "test-v1", "rows": 400}
    pd.testing.assert_frame_equal(model.encoders, fit_encoders(raw, EncoderSpec()))
    _ = model.booster
    state = pickle.dumps(model)
    assert b"Booster" not in state
    restored = pickle.loads(state)
    assert restored._booster is None
    expected, _ = predict_records(model, raw.head(20))
    np.testing.assert_array_equal(predict_records(restored, raw.head(20))[0], expected)
    out = restored.predict(None, raw.head(3))
    assert list(out.columns) == [PREDICTION] and out[PREDICTION].dtype == "float64"
    np.testing.assert_array_equal(out[PREDICTION].to_numpy(), expected[:3])

    # A booster trained on other columns is refused.
    other = xgb.train({}, xgb.DMatrix(np.zeros((4, 3)), label=np.zeros(4)), num_boost_round=1)
    with pytest.raises(ValueError, match="FEATURE_COLUMNS"):
        bundle(other, model.encoders, metadata={})
    # The stored column order is what the booster sees, whatever the code's constant says now.
    reordered = HousingPriceModel(
        model.booster_json,
        model.encoders,
        feature_columns=[*FEATURE_COLUMNS[1:], "a_new_feature"],
        metadata={},
    )
    with pytest.raises(RuntimeError, match="a_new_feature"):
        predict_records(reordered, raw.head(3))


def test_pip_requirements_are_pinned() -> None:
    import importlib.metadata

    pins = dict(p.split("==") for p in pip_requirements())
    assert set(pins) == {"mlflow", "xgboost", "pandas", "numpy", "cloudpickle"}
    assert pins["xgboost"] == importlib.metadata.version("xgboost")


def test_signature_and_example(raw) -> None:
    signature, example = signature_and_example(raw)
    assert signature.inputs is None
    assert signature.outputs.to_dict() == [{"type": "double", "name": PREDICTION, "required": True}]
    assert list(example.columns) == list(schema.FEATURE_INPUTS) and len(example) == 3
    assert example.sale_date.tolist() == [d.isoformat() for d in raw.sale_date[:3]]
    json.dumps(example.to_dict(orient="records"))


# --- the MLflow round trip ----------------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    model_uri: str
    tracking_uri: str
    loaded: object
    local: Path  # the logged model's files


@pytest.fixture(scope="module")
def logged(model: HousingPriceModel, raw, tmp_path_factory) -> Logged:
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    signature, example = signature_and_example(raw)
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mlflow.set_tracking_uri(tracking_uri)
        try:
            experiment = mlflow.create_experiment("housing", artifact_location=str(root / "art"))
            with mlflow.start_run(experiment_id=experiment):
                info = mlflow.pyfunc.log_model(
                    name="housing_price",
                    python_model=model,
                    pip_requirements=pip_requirements(),
                    signature=signature,
                    input_example=example,
                )
            loaded = mlflow.pyfunc.load_model(info.model_uri)
            local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root)))
        finally:
            mlflow.set_tracking_uri(previous)
    return Logged(model_uri=info.model_uri, tracking_uri=tracking_uri, loaded=loaded, local=local)


# Missing (lot_sqft, condition), extra (sale_id, note), numbers as text, an unseen city, a
# zipcode sent as a number.
PAYLOAD = [
    _record(lot_sqft=..., condition=..., sale_id="a", note="hi"),
    _record(beds="4", baths="3.0", living_area_sqft=" 2400 ", city="Atlantis"),
    _record(zipcode=2139, sale_date="2015-02-28T12:00:00"),
]


def test_logged_model_predicts_a_lenient_payload_like_the_bundle(
    model: HousingPriceModel, logged: Logged
) -> None:
    expected, prepared = predict_records(model, PAYLOAD)
    assert prepared.missing_fields == ["lot_sqft", "condition"]
    assert prepared.extra_fields == ["note", "sale_id"]
    assert prepared.coerced_fields == ["zipcode", "beds", "baths", "living_area_sqft"]
    assert prepared.unseen == {"city": ["Atlantis"]}
    for payload in (PAYLOAD, pd.DataFrame(PAYLOAD)):
        out = logged.loaded.predict(payload)
        assert list(out.columns) == [PREDICTION]
        np.testing.assert_array_equal(out[PREDICTION].to_numpy(), expected)
    with pytest.raises(InferenceError, match="row 0: beds='three'"):
        logged.loaded.predict([_record(beds="three")])
    unwrapped = logged.loaded.unwrap_python_model()
    assert unwrapped.metadata == model.metadata
    assert unwrapped.booster_json == model.booster_json
    assert logged.loaded.metadata.signature.inputs is None


def test_logged_model_stores_pins_and_a_json_input_example(logged: Logged) -> None:
    import mlflow

    requirements = (logged.local / "requirements.txt").read_text().split()
    assert set(pip_requirements()) <= set(requirements)
    example = json.loads((logged.local / "input_example.json").read_text())
    assert example["columns"] == list(schema.FEATURE_INPUTS)
    stored = mlflow.models.Model.load(str(logged.local)).load_input_example(str(logged.local))
    out = logged.loaded.predict(stored)
    assert len(out) == 3 and (out[PREDICTION] > 0).all()


def test_logged_model_loads_in_a_fresh_process_and_predicts_the_same(
    model: HousingPriceModel, logged: Logged
) -> None:
    expected, _ = predict_records(model, PAYLOAD)
    code = (
        "import json, sys; import mlflow.pyfunc; "
        "model = mlflow.pyfunc.load_model(sys.argv[1]); "
        "out = model.predict(json.loads(sys.argv[2])); "
        "print(json.dumps(out['predicted_price'].tolist()))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": logged.tracking_uri}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code, logged.model_uri, json.dumps(PAYLOAD)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected.tolist()
