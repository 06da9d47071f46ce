"""The heart endpoint: the request model and predict, on a real pipeline fitted on generated
patients (no MLflow, no app)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.heart import schema, sources
from mlops_assets.heart.features import ENGINEERED, engineer_features
from mlops_assets.heart.serving import ENDPOINT, HeartRequest
from mlops_assets.heart.training import DECISION_THRESHOLD, build_pipeline, score
from mlops_assets.serving.endpoints import Prediction, Services

EXAMPLE = HeartRequest.model_config["json_schema_extra"]["examples"][0]
SERVICES = Services(online=None)


@pytest.fixture(scope="module", params=["logistic_regression", "random_forest"])
def pipeline(request: pytest.FixtureRequest):
    patients = sources.generate_patients(sources.GeneratorConfig(n_patients=300)).to_pandas()
    assert patients[["ca", "thal"]].isna().any().all()  # the imputers have nulls to learn from
    return build_pipeline(request.param, seed=0).fit(
        patients[list(schema.INPUTS)], patients[schema.TARGET]
    )


def _predict(pipeline, payload: dict) -> Prediction:
    request = ENDPOINT.request.model_validate_json(json.dumps(payload))
    return ENDPOINT.predict(pipeline, request, SERVICES)


def test_endpoint_declares_the_champion_it_serves() -> None:
    assert ENDPOINT.use_case == "heart"
    assert ENDPOINT.model_name == "heart_disease"
    assert ENDPOINT.flavor == "sklearn"
    assert ENDPOINT.prepare is None
    assert not ENDPOINT.needs_online_features
    assert ENDPOINT.name_for(HeartRequest.model_validate(EXAMPLE)) == "heart_disease"
    assert set(HeartRequest.model_fields) == set(schema.INPUTS)


def test_the_example_predicts_what_the_pipeline_gives(pipeline) -> None:
    out = _predict(pipeline, EXAMPLE)
    expected = float(pipeline.predict_proba(pd.DataFrame([EXAMPLE], dtype="float64"))[0, 1])
    assert out.value == pytest.approx(expected, abs=1e-12)
    assert out.body == {
        "probability": out.value,
        "prediction": int(expected >= DECISION_THRESHOLD),
        "label": "disease" if expected >= DECISION_THRESHOLD else "no disease",
        "threshold": DECISION_THRESHOLD,
    }
    json.dumps(out.body)


def test_features_are_the_shared_functions_engineered_values(pipeline) -> None:
    out = _predict(pipeline, EXAMPLE)
    engineered = engineer_features(pd.DataFrame([EXAMPLE])).iloc[0]
    assert list(out.features) == list(ENGINEERED)
    assert out.features["age_group"] == engineered["age_group"] == "elderly"
    for name in ENGINEERED[1:]:
        assert out.features[name] == pytest.approx(float(engineered[name]))
    # 63 years, male, asymptomatic chest pain without exercise angina:
    assert out.features["age_sex_interaction"] == 63.0
    assert out.features["cp_exang_interaction"] == 0.0
    assert out.features["heart_rate_reserve"] == 150 - (220 - 63)


def test_label_follows_the_threshold_across_patients(pipeline) -> None:
    patients = sources.generate_patients(sources.GeneratorConfig(n_patients=40, seed=7)).to_pandas()
    complete = patients.dropna(subset=["ca", "thal"])
    expected = score(pipeline, complete)
    for (_, row), p in zip(complete.iterrows(), expected, strict=True):
        payload = {c: row[c] for c in schema.INPUTS}
        out = _predict(pipeline, payload)
        assert out.value == pytest.approx(p, abs=1e-12)
        assert out.body["prediction"] == int(p >= DECISION_THRESHOLD)
    assert {int(p >= DECISION_THRESHOLD) for p in expected} == {0, 1}


def test_null_ca_and_thal_are_imputed_as_in_training(pipeline) -> None:
    out = _predict(pipeline, {**EXAMPLE, "ca": None, "thal": None})
    frame = pd.DataFrame([{**EXAMPLE, "ca": np.nan, "thal": np.nan}], dtype="float64")
    assert out.value == pytest.approx(float(pipeline.predict_proba(frame)[0, 1]), abs=1e-12)
    assert math.isfinite(out.value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"age": 0}, "age"),
        ({"age": 121}, "age"),
        ({"sex": 2}, "sex"),
        ({"cp": 0}, "cp"),
        ({"trestbps": 300}, "trestbps"),
        ({"chol": 20}, "chol"),
        ({"oldpeak": -1}, "oldpeak"),
        ({"slope": 4}, "slope"),
        ({"ca": 4}, "ca"),
        ({"thal": 5}, "thal"),
        ({"thal": "normal"}, "thal"),
        ({"cp": 2.5}, "cp"),
        ({"age": "sixty"}, "age"),
        ({"age": None}, "age"),
    ],
)
def test_out_of_range_and_mistyped_inputs_are_refused_naming_the_field(
    changes: dict, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        HeartRequest.model_validate_json(json.dumps({**EXAMPLE, **changes}))
    assert {error["loc"][0] for error in caught.value.errors()} == {field}


def test_missing_and_extra_fields_are_refused() -> None:
    without_ca = {k: v for k, v in EXAMPLE.items() if k != "ca"}
    with pytest.raises(ValidationError, match="ca\n  Field required"):
        HeartRequest.model_validate(without_ca)
    with pytest.raises(ValidationError, match="target\n  Extra inputs are not permitted"):
        HeartRequest.model_validate({**EXAMPLE, "target": 1})


def test_the_schema_documents_every_field() -> None:
    properties = HeartRequest.model_json_schema()["properties"]
    assert all(properties[name].get("description") for name in schema.INPUTS)


@pytest.mark.parametrize("field", ["age", "trestbps", "chol", "thalach", "oldpeak"])
@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_a_number_that_is_not_finite_is_refused_as_such(field: str, value: str) -> None:
    # JSON as Python's json module (and many clients) writes it: NaN and Infinity literals.
    payload = json.dumps(EXAMPLE)[:-1] + f', "{field}": {value}}}'
    payload = payload.replace(f'"{field}": {json.dumps(EXAMPLE[field])}, ', "", 1)
    with pytest.raises(ValidationError) as caught:
        HeartRequest.model_validate_json(payload)
    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert error["msg"] == "Input should be a finite number"
