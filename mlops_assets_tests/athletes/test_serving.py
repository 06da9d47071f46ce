"""The athletes endpoint: prepare by the champion's feature version, and predict from an online
store (a small fake reader over the features frame), with pipelines trained by the use case's own
grid-point training on generated athletes."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.athletes import features, schema
from mlops_assets.athletes.serving import ENDPOINT, AthleteRequest, AthletesModel
from mlops_assets.serving.endpoints import ModelInfo, RequestError, Services
from mlops_assets_tests.fixtures import athletes_serving
from mlops_assets_tests.fixtures.fake_online_store import FakeOnlineStore

EXAMPLE = AthleteRequest.model_config["json_schema_extra"]["examples"][0]

# The features frames and the pipelines trained on them, module-scoped fixtures shared with the
# API's tests.
frames = athletes_serving.frames
pipelines = athletes_serving.pipelines


@pytest.fixture(scope="module")
def store(frames: dict[str, pd.DataFrame]) -> FakeOnlineStore:
    return FakeOnlineStore({f"athlete_features_{v}": f for v, f in frames.items()}, keys=schema.KEY)


def _info(version: str | None) -> ModelInfo:
    tags = {} if version is None else {"feature_version": version}
    return ModelInfo(name="athletes_total_lift", version="7", run_id="r", version_tags=tags)


def _model(pipelines: dict[str, Any], version: str) -> AthletesModel:
    return ENDPOINT.prepare(pipelines[version], _info(version))


def _request(athlete_id: int) -> AthleteRequest:
    return ENDPOINT.request.model_validate_json(json.dumps({"athlete_id": athlete_id}))


def test_endpoint_declares_the_champion_it_serves() -> None:
    assert (ENDPOINT.use_case, ENDPOINT.model_name, ENDPOINT.flavor) == (
        "athletes",
        "athletes_total_lift",
        "sklearn",
    )
    assert ENDPOINT.needs_online_features


@pytest.mark.parametrize("version", features.VERSIONS)
def test_prepare_reads_the_version_tag_and_names_its_view(pipelines, version: str) -> None:
    model = _model(pipelines, version)
    assert model.version == version
    assert model.references == tuple(
        f"athlete_features_{version}:{name}" for name in features.FEATURES[version]
    )


def test_prepare_refuses_a_version_without_a_known_tag_or_with_other_columns(pipelines) -> None:
    with pytest.raises(ValueError, match=r"athletes_total_lift v7 has feature_version=None"):
        ENDPOINT.prepare(pipelines["v1"], _info(None))
    with pytest.raises(ValueError, match=r"feature_version='v3'"):
        ENDPOINT.prepare(pipelines["v1"], _info("v3"))
    with pytest.raises(ValueError, match=r"tagged feature_version=v2 but was fitted on"):
        ENDPOINT.prepare(pipelines["v1"], _info("v2"))


@pytest.mark.parametrize("version", features.VERSIONS)
def test_prediction_is_the_pipelines_on_the_online_row(
    pipelines, frames, store: FakeOnlineStore, version: str
) -> None:
    model = _model(pipelines, version)
    frame = frames[version]
    columns = list(features.FEATURES[version])
    # The athlete with the most features logged (in v2 nearly everyone misses one answer).
    position = int(frame[columns].isna().sum(axis=1).to_numpy().argmin())
    row = frame.iloc[position]
    athlete = int(row[schema.KEY])
    out = ENDPOINT.predict(model, _request(athlete), Services(online=store))

    expected = pipelines[version].predict(frame.iloc[[position]][columns])[0]
    assert out.value == pytest.approx(float(expected), abs=1e-9)
    assert out.body == {
        "predicted_total_lift": out.value,
        "unit": "lb",
        "feature_version": version,
        "missing_features": {name: "NULL_VALUE" for name in columns if pd.isna(row[name])},
    }
    assert out.features == {
        name: None if pd.isna(row[name]) else float(row[name]) for name in columns
    }
    assert store.reads[-1] == (list(model.references), {"athlete_id": athlete})
    json.dumps(out.body)


def test_missing_features_are_imputed_as_in_training(pipelines, frames, store) -> None:
    model = _model(pipelines, "v2")
    frame = frames["v2"]
    workouts = list(schema.WORKOUTS)
    gaps = frame[frame[workouts].isna().any(axis=1)]
    assert len(gaps)  # generated athletes who never logged some workouts
    athlete = int(gaps[schema.KEY].iloc[0])
    stale = FakeOnlineStore(
        {"athlete_features_v2": frame}, keys=schema.KEY, stale={(athlete, "age")}
    )
    out = ENDPOINT.predict(model, _request(athlete), Services(online=stale))

    columns = list(features.FEATURES["v2"])
    row = frame.loc[frame[schema.KEY] == athlete, columns].copy()
    row["age"] = np.nan
    imputer = pipelines["v2"].steps[0][1]
    assert out.value == pytest.approx(float(pipelines["v2"].predict(row)[0]), abs=1e-9)
    # NaN reached the imputer, which filled in the training medians.
    filled = imputer.transform(row)[0]
    medians = dict(zip(columns, imputer.statistics_, strict=True))
    assert filled[columns.index("age")] == medians["age"]
    missing = {name for name in columns if pd.isna(row[name].iloc[0])}
    assert out.body["missing_features"] == {
        name: "OUTSIDE_MAX_AGE" if name == "age" else "NULL_VALUE"
        for name in columns
        if name in missing
    }
    assert all(out.features[name] is None for name in missing)
    assert math.isfinite(out.value)


def test_an_athlete_not_in_the_store_is_a_404_naming_athlete_id(pipelines, store) -> None:
    with pytest.raises(RequestError) as caught:
        ENDPOINT.predict(_model(pipelines, "v1"), _request(999_999), Services(online=store))
    error = caught.value
    assert (error.field, error.status) == ("athlete_id", 404)
    assert error.message.startswith("athlete_id 999999 is not in the online store")
    assert error.detail()[0]["loc"] == ["body", "athlete_id"]


def test_no_online_store_is_a_503(pipelines) -> None:
    with pytest.raises(RequestError) as caught:
        ENDPOINT.predict(_model(pipelines, "v1"), _request(1), Services(online=None))
    assert (caught.value.field, caught.value.status) == (None, 503)
    assert "no online store" in caught.value.message


@pytest.mark.parametrize(
    "payload", [{"athlete_id": 0}, {"athlete_id": "x"}, {}, {"athlete_id": 1.5}]
)
def test_a_bad_athlete_id_is_refused(payload: dict) -> None:
    with pytest.raises(ValidationError) as caught:
        AthleteRequest.model_validate_json(json.dumps(payload))
    assert {e["loc"][0] for e in caught.value.errors()} == {"athlete_id"}


def test_the_example_validates_and_predicts(pipelines, store) -> None:
    request = AthleteRequest.model_validate(EXAMPLE)
    frame = store.frames["athlete_features_v2"].reset_index()
    one = FakeOnlineStore(
        {"athlete_features_v2": frame.head(1).assign(athlete_id=EXAMPLE["athlete_id"])},
        keys=schema.KEY,
    )
    out = ENDPOINT.predict(_model(pipelines, "v2"), request, Services(online=one))
    assert out.body["feature_version"] == "v2" and out.value > 0


def test_extra_fields_are_refused() -> None:
    assert AthleteRequest.model_json_schema()["properties"]["athlete_id"]["description"]
    with pytest.raises(ValidationError, match="age\n  Extra inputs are not permitted"):
        AthleteRequest.model_validate({**EXAMPLE, "age": 30})
