"""The heart API: the probability of heart disease of one patient, from the 13 clinical inputs
of the UCI layout.

The champion (``heart_disease@champion``) is the whole scikit-learn Pipeline of
:mod:`mlops_assets.heart.training`: its first step is
:func:`~mlops_assets.heart.features.engineer_features` itself, so the six engineered features are
computed by the model from the raw request, as in training. The endpoint calls that same function
once more only to log the values the model saw with the request.

Missing values: the real UCI files leave ``ca`` (vessels coloured by fluoroscopy) and ``thal``
(thallium scan) blank (``?``) for some patients, because those tests were not done. Both are
nullable here: a null is imputed by the pipeline as it was in training (``ca`` by the training
median, ``thal`` by its most frequent code). They are required keys all the same, so that "not
measured" is a statement of the client, never a forgotten field. Every other input is required and
checked against the physiological ranges of :data:`mlops_assets.heart.schema.RANGES`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlops_assets.heart import schema
from mlops_assets.heart.features import ENGINEERED
from mlops_assets.heart.training import DECISION_THRESHOLD
from mlops_assets.serving.drift import InputDrift, Reference, TrainedOn
from mlops_assets.serving.endpoints import (
    Endpoint,
    Integer,
    Number,
    Prediction,
    Services,
    request_config,
)

MODEL_NAME = schema.CASE.model_name

LABELS = {0: "no disease", 1: "disease"}


def _in_range(column: str, description: str, **extra: Any) -> Any:
    """A required request field within the physiological range of ``column``
    (:data:`mlops_assets.heart.schema.RANGES`)."""
    low, high = schema.RANGES[column]
    return Field(ge=low, le=high, description=description, **extra)


class HeartRequest(BaseModel):
    """One patient's clinical inputs, coded as in the UCI heart-disease data."""

    # NaN or infinity in any number is refused as such ("Input should be a finite number"):
    # without this a NaN age was reported as "less than or equal to 120". Integer and Number
    # refuse JSON true/false (lax mode read "sex": true as 1) and texts of digits.
    model_config = request_config(
        {
            "age": 63,
            "sex": 1,
            "cp": 4,
            "trestbps": 145,
            "chol": 233,
            "fbs": 1,
            "restecg": 2,
            "thalach": 150,
            "exang": 0,
            "oldpeak": 2.3,
            "slope": 3,
            "ca": 0,
            "thal": 6,
        },
        allow_inf_nan=False,
    )

    age: Number = _in_range("age", "Age, in years.")
    sex: Integer = _in_range("sex", "Sex: 1 = male, 0 = female.")
    cp: Integer = _in_range(
        "cp",
        "Chest-pain type: 1 typical angina, 2 atypical angina, 3 non-anginal pain, 4 asymptomatic.",
    )
    trestbps: Number = _in_range("trestbps", "Resting blood pressure on admission, in mm Hg.")
    chol: Number = _in_range("chol", "Serum cholesterol, in mg/dl.")
    fbs: Integer = _in_range("fbs", "Fasting blood sugar > 120 mg/dl: 1 or 0.")
    restecg: Integer = _in_range(
        "restecg",
        "Resting ECG: 0 normal, 1 ST-T wave abnormality, 2 left ventricular hypertrophy.",
    )
    thalach: Number = _in_range(
        "thalach", "Maximum heart rate reached in the exercise test, in beats per minute."
    )
    exang: Integer = _in_range("exang", "Exercise-induced angina: 1 or 0.")
    oldpeak: Number = _in_range(
        "oldpeak",
        "ST depression induced by exercise relative to rest, in mm.",
        allow_inf_nan=False,
    )
    slope: Integer = _in_range(
        "slope", "Slope of the peak exercise ST segment: 1 upsloping, 2 flat, 3 downsloping."
    )
    ca: Integer | None = _in_range(
        "ca",
        "Major vessels (0-3) coloured by fluoroscopy; null when not measured "
        "(imputed by the model with the training median).",
    )
    thal: Literal[schema.THAL_CODES] | None = Field(  # type: ignore[valid-type]
        description="Thallium scan: 3 normal, 6 fixed defect, 7 reversible defect; null when not "
        "measured (imputed by the model with the most frequent training code).",
    )


def _frame(request: HeartRequest) -> Any:
    """The request as the one-row frame the pipeline was trained on: the 13 inputs in the
    schema's order, float64, NaN where not measured."""
    import pandas as pd

    row = request.model_dump()
    return pd.DataFrame(
        [[math.nan if row[c] is None else float(row[c]) for c in schema.INPUTS]],
        columns=list(schema.INPUTS),
        dtype="float64",
    )


def _engineered(frame: Any) -> dict[str, Any]:
    """The six engineered values of the one row, from the shared function (JSON-ready: None for
    a missing value)."""
    from mlops_assets.heart.features import engineer_features

    row = engineer_features(frame).iloc[0]
    out: dict[str, Any] = {}
    for name in ENGINEERED:
        value = row[name]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[name] = None
        else:
            out[name] = value if isinstance(value, str) else float(value)
    return out


def predict(pipeline: Any, request: HeartRequest, services: Services) -> Prediction:
    """P(heart disease) of one patient by the champion pipeline, reported as a disease at
    :data:`~mlops_assets.heart.training.DECISION_THRESHOLD` (the threshold of the training
    metrics)."""
    from mlops_assets.heart.training import score

    frame = _frame(request)
    probability = float(score(pipeline, frame)[0])
    prediction = int(probability >= DECISION_THRESHOLD)
    body = {
        "probability": probability,
        "prediction": prediction,
        "label": LABELS[prediction],
        "threshold": DECISION_THRESHOLD,
    }
    return Prediction(body=body, value=probability, features=_engineered(frame))


# The split of heart/models (ModelsConfig): what its run logs, and what it used when it did not.
_SPLIT_DEFAULTS = {"holdout_fraction": 0.2, "seed": 0}


def training_rows(store: Any, trained: TrainedOn) -> Reference:
    """The patients version ``trained`` was fitted on, with the six engineered features its
    pipeline computes: ``heart/features`` as its run read it, less the stratified holdout that
    its run's ``holdout_fraction`` and ``seed`` set aside (heart/models fits the winning kind on
    the rest). Compared as the pipeline treats them: its numeric and its categorical features."""
    from mlops_assets.heart.features import engineer_features
    from mlops_assets.heart.training import CATEGORICAL_FEATURES, NUMERIC_FEATURES, split_holdout
    from mlops_assets.serving.drift import stored_training_rows

    frame, exact, note = stored_training_rows(store, schema.CASE.key("features"), trained)
    unrecorded = [p for p in _SPLIT_DEFAULTS if trained.params.get(p) is None]
    fraction = float(trained.params.get("holdout_fraction", _SPLIT_DEFAULTS["holdout_fraction"]))
    seed = int(trained.params.get("seed", _SPLIT_DEFAULTS["seed"]))
    train, _ = split_holdout(
        frame[[schema.KEY, *schema.INPUTS, schema.TARGET]], fraction=fraction, seed=seed
    )
    note += f"; the {len(train):,} patients outside its holdout (fraction {fraction}, seed {seed})"
    if unrecorded:
        note += f"; its run logged no {' or '.join(unrecorded)}, heart/models' defaults assumed"
    return Reference(
        frame=engineer_features(train),
        numeric=NUMERIC_FEATURES,
        categorical=CATEGORICAL_FEATURES,
        exact=exact and not unrecorded,
        note=note,
    )


def score_rows(pipeline: Any, frame: Any) -> Any:
    """P(heart disease) of each row, as :func:`predict` computes it for one."""
    from mlops_assets.heart.training import score

    return score(pipeline, frame)


ENDPOINT = Endpoint.of(
    schema.CASE,
    request=HeartRequest,
    predict=predict,
    flavor="sklearn",
    summary="The probability that a patient has heart disease, from the 13 clinical inputs of "
    "the UCI layout.",
    response_example={
        "probability": 0.71,
        "prediction": 1,
        "label": "disease",
        "threshold": DECISION_THRESHOLD,
    },
    # The request carries the 13 inputs and the log keeps the six engineered values: together,
    # every column the pipeline reads.
    drift=InputDrift(training_rows=training_rows, score=score_rows),
)
