"""The athletes API: the predicted total lift of a registered athlete, from their features in the
online store.

A request names the athlete only. The champion (``athletes_total_lift@champion``) was trained on
one feature version, which its registry version carries as the tag ``feature_version`` (``v1``:
the body; ``v2``: the body, the benchmark workouts and the training history; see
:mod:`mlops_assets.athletes.features`). ``prepare`` reads the tag once per loaded version and
``predict`` reads that version's Feast view (``athlete_features_<version>``, keyed by
``athlete_id``): a new champion on the other version switches views with it.

Missing online features:

* the athlete was never materialized (every feature ``NOT_FOUND``): a 404 naming ``athlete_id``;
* some features have no value (``NULL_VALUE``: a workout the athlete never logged, an unanswered
  survey; ``OUTSIDE_MAX_AGE`` cannot happen, the views have no TTL but is handled alike): they go
  into the model as NaN, which the champion's pipeline imputes with the median of its training
  athletes (:func:`mlops_assets.athletes.training.train_grid_point`), exactly as missing values
  were treated in training. The answer lists them in ``missing_features``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from mlops_assets.athletes import features, schema
from mlops_assets.serving.drift import InputDrift, Reference, ReferenceUnavailable, TrainedOn
from mlops_assets.serving.endpoints import (
    Endpoint,
    Integer,
    ModelInfo,
    Prediction,
    RequestError,
    Services,
    logged_features,
    request_config,
)

MODEL_NAME = schema.CASE.model_name
VERSION_TAG = "feature_version"
UNIT = "lb"


def feature_view(version: str) -> str:
    """The Feast view of a feature version (``feature_repo/athletes.py``)."""
    return f"athlete_features_{version}"


class AthleteRequest(BaseModel):
    """The athlete whose total lift to predict."""

    model_config = request_config({"athlete_id": 42})

    athlete_id: Integer = Field(  # JSON true is not athlete 1
        ge=1,
        le=2**63 - 1,
        description="The registered athlete (ids start at 1); their features are read from the "
        "online store.",
    )


@dataclass(frozen=True)
class AthletesModel:
    """A loaded champion: the pipeline, its feature version and the online features it reads."""

    pipeline: Any
    version: str
    references: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return features.FEATURES[self.version]


def prepare(pipeline: Any, info: ModelInfo) -> AthletesModel:
    """The champion with the feature version of its ``feature_version`` tag.

    Raises ValueError (the app keeps the previous champion) when the tag is missing or unknown, or
    when the pipeline was fitted on other columns than that version's.
    """
    version = info.version_tags.get(VERSION_TAG)
    if version not in features.FEATURES:
        raise ValueError(
            f"{info.name} v{info.version} has {VERSION_TAG}={version!r}: cannot tell which "
            f"online features it needs (expected one of {list(features.VERSIONS)})"
        )
    names = features.FEATURES[version]
    fitted = getattr(pipeline, "feature_names_in_", None)
    if fitted is not None and [str(c) for c in fitted] != list(names):
        raise ValueError(
            f"{info.name} v{info.version} is tagged {VERSION_TAG}={version} but was fitted on "
            f"{list(fitted)}, not on {list(names)}"
        )
    view = feature_view(version)
    return AthletesModel(
        pipeline=pipeline,
        version=version,
        references=tuple(f"{view}:{name}" for name in names),
    )


def predict(model: AthletesModel, request: AthleteRequest, services: Services) -> Prediction:
    """The total lift (deadlift + clean and jerk + snatch + back squat, in pounds) the champion
    predicts for the athlete, from their online features."""
    import pandas as pd

    if services.online is None:
        raise RequestError(
            None,
            "athletes predictions need the online feature store, and no online store is configured",
            status=503,
            kind="unavailable",
        )
    row = services.online.read(list(model.references), {schema.KEY: request.athlete_id})
    status = {name: row.status.get(name, "NOT_FOUND") for name in model.names}
    if all(s == "NOT_FOUND" for s in status.values()):
        raise RequestError(
            schema.KEY,
            f"athlete_id {request.athlete_id} is not in the online store "
            f"({feature_view(model.version)}): a wrong id, or athletes/feature_store was not "
            "materialized",
            status=404,
            kind="not_found",
        )
    values = {
        name: float(row.values[name])
        if status[name] == "PRESENT" and row.values.get(name) is not None
        else math.nan
        for name in model.names
    }
    frame = pd.DataFrame([values], columns=list(model.names), dtype="float64")
    lift = float(model.pipeline.predict(frame)[0])
    missing = {name: status[name] for name in model.names if math.isnan(values[name])}
    body = {
        "predicted_total_lift": lift,
        "unit": UNIT,
        "feature_version": model.version,
        "missing_features": missing,
    }
    return Prediction(body=body, value=lift, features=logged_features(values))


# Features that are yes/no (1.0 / 0.0): compared as categories, the rest as numbers.
_FLAGS = ("is_male", "began_with_coach", "has_level1")
# What athletes/models' grid points use when their run logged no validation share (GridConfig).
_VALIDATION_SHARE = 0.2


def training_rows(store: Any, trained: TrainedOn) -> Reference:
    """The athletes version ``trained`` was fitted on: the partition of ``athletes/features`` of
    its ``feature_version`` tag as its grid point's run read it, less the validation athletes its
    run's ``validation_share`` set aside (a stable hash of the id, as in training)."""
    from mlops_assets.athletes.training import is_validation
    from mlops_assets.serving.drift import stored_training_rows

    version = trained.version_tags.get(VERSION_TAG) or trained.run_tags.get(VERSION_TAG)
    if version not in features.FEATURES:
        raise ReferenceUnavailable(
            f"{trained.model_name} v{trained.version} has {VERSION_TAG}={version!r}: which "
            "feature version it was trained on is not recorded"
        )
    frame, exact, note = stored_training_rows(
        store, schema.CASE.key("features"), trained, partition=version
    )
    recorded = trained.params.get("validation_share")
    share = float(recorded) if recorded is not None else _VALIDATION_SHARE
    train = frame[~is_validation(frame[schema.KEY], share)].reset_index(drop=True)
    note += f"; its {len(train):,} training athletes (validation share {share})"
    if recorded is None:
        note += ", assumed: its run logged no validation_share"
    names = features.FEATURES[version]
    return Reference(
        frame=train[list(names)],
        numeric=tuple(n for n in names if n not in _FLAGS),
        categorical=tuple(n for n in names if n in _FLAGS),
        exact=exact and recorded is not None,
        note=note,
    )


def score_rows(model: AthletesModel, frame: Any) -> Any:
    """The predicted total lift (lb) of each row, as :func:`predict` computes it for one."""
    return model.pipeline.predict(frame[list(model.names)])


ENDPOINT = Endpoint.of(
    schema.CASE,
    request=AthleteRequest,
    predict=predict,
    prepare=prepare,
    flavor="sklearn",
    needs_online_features=True,
    # A canary routes by athlete: an athlete's predictions all come from one version.
    entity_key="athlete_id",
    summary="The predicted total lift of an athlete (deadlift, clean and jerk, snatch and back "
    "squat, in pounds), from their features in the online store.",
    response_example={
        "predicted_total_lift": 1012.5,
        "unit": UNIT,
        "feature_version": "v2",
        "missing_features": {},
    },
    # The log keeps the online features the model read (null where missing), by name.
    drift=InputDrift(training_rows=training_rows, score=score_rows),
)
