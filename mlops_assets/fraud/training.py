"""Fraud models: one scikit-learn ``Pipeline`` from model-input columns to a fraud probability.

The training set holds model-independent features (MITs: the card's and the merchant's activity
before each transaction, computed once in the feature pipeline and shared through Feast). Every
model-dependent transformation (MDT: imputation, scaling, one-hot encoding, the hour of the day)
lives inside the pipeline, so training, batch scoring and the online API run the very same code
on the same raw columns and cannot drift apart (seed 004, "MIT vs MDT").

Two kinds share the preprocessing: a class-weighted logistic regression (the baseline) and an
XGBoost challenger. Both are validated on the latest period of the training window
(:func:`mlops_assets.core.evaluation.chronological_split`), never on a random sample.

scikit-learn, xgboost and matplotlib are imported inside functions: the code location imports
this module, and those imports cost seconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlops_assets.core.evaluation import (
    calibration_figure,
    chronological_split,
    classification_metrics,
    pr_curve_figure,
)
from mlops_assets.fraud.schema import card_feature_columns, merchant_feature_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from sklearn.pipeline import Pipeline

ModelKind = Literal["logreg", "xgboost"]
MODEL_KINDS: tuple[ModelKind, ...] = ("logreg", "xgboost")

LABEL = "is_fraud"
TIME_COLUMN = "event_ts"
NUMERIC_FEATURES: list[str] = ["amount", *card_feature_columns(), *merchant_feature_columns()]
CATEGORICAL_FEATURES: list[str] = ["merchant_category", "channel", "country"]
# The raw columns a model reads, in this order. ``event_ts`` is an input because the hour of the
# day (fraud clusters at night) is derived inside the pipeline, not stored as a feature.
MODEL_INPUT_COLUMNS: list[str] = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES, TIME_COLUMN]

MISSING_CATEGORY = "missing"
INPUT_EXAMPLE_ROWS = 5

# Defaults of each kind; ``classifier_params`` overrides any of them.
LOGREG_DEFAULTS: dict[str, Any] = {
    "C": 1.0,
    # Fraud is rare: unweighted, the loss is dominated by genuine payments and the model learns to
    # say "genuine". Balanced weights trade calibration for recall; the calibration plot shows it.
    "class_weight": "balanced",
    "solver": "lbfgs",  # deterministic, and fine for a few hundred dense columns
    "max_iter": 2000,
}
XGBOOST_DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 6,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "tree_method": "hist",
    # A fixed thread count: with the seed, the same data give the same trees on CPU.
    "n_jobs": 2,
    "eval_metric": "aucpr",
}


# --- transforms inside the pipeline ------------------------------------------------------------
# Module-level functions (not lambdas) so that a logged pipeline unpickles by reference to them.


def _as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64 with NaN for missing: JSON payloads bring None, parquet brings pd.NA."""
    if all(isinstance(dtype, np.dtype) and dtype.kind in "biuf" for dtype in frame.dtypes):
        # Fast path, same values: plain numpy numbers need no parsing, and one block conversion
        # instead of a Series per column was ~40% of a one-row predict (the online latency budget).
        # copy=True: the result must never share memory with the caller's frame.
        return pd.DataFrame(
            frame.to_numpy(dtype="float64", copy=True), columns=frame.columns, index=frame.index
        )
    out = {}
    for column in frame.columns:
        try:
            out[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {column!r} must be numeric: {exc}") from exc
    return pd.DataFrame(out, index=frame.index)


def _as_category(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as Python strings with NaN for missing.

    SimpleImputer sees neither None nor pd.NA as missing in an object column (and fails on pd.NA),
    so every kind of missing becomes NaN before it.
    """
    return pd.DataFrame(
        {c: frame[c].astype("object").where(frame[c].notna(), np.nan) for c in frame.columns},
        index=frame.index,
    )


def _hour_of_day(frame: pd.DataFrame) -> pd.DataFrame:
    """The UTC hour (0-23) of each event; -1 when the time is missing (one-hot ignores it).

    Accepts tz-aware timestamps (the training set's), naive ones (taken as UTC: the stored input
    example has them) and ISO strings (JSON payloads).
    """
    out = {}
    for column in frame.columns:
        ts = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        out[f"hour_of_{column}"] = ts.dt.hour.fillna(-1).astype("int64")
    return pd.DataFrame(out, index=frame.index)


def _hour_names(transformer: Any, input_features: Any) -> list[str]:
    return [f"hour_of_{c}" for c in input_features]


def build_pipeline(
    kind: ModelKind, *, seed: int = 0, classifier_params: Mapping[str, Any] | None = None
) -> Pipeline:
    """An unfitted pipeline: raw model-input columns in, fraud probability out.

    * numeric columns: coerced to float, missing values imputed with the training median plus a
      missing-indicator per column that had gaps (a card's first payment has no history, and that
      absence is itself a signal), then standardised;
    * ``merchant_category``, ``channel``, ``country``: missing → ``"missing"``, then one-hot;
      categories unseen in training encode as all zeros instead of failing at scoring time;
    * ``event_ts`` → UTC hour of the day, one-hot over 0-23;
    * the classifier: ``logreg`` (balanced class weights) or ``xgboost`` (hist, 2 threads,
      ``random_state=seed``). ``classifier_params`` override the defaults of the kind.

    Deterministic: the same data and seed give the same predictions.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {list(MODEL_KINDS)}")
    numeric = Pipeline(
        [
            ("as_float", FunctionTransformer(_as_float, feature_names_out="one-to-one")),
            # keep_empty_features: a feature null in every training row (a window that never
            # filled) keeps its column, so the input layout does not depend on the data.
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("as_category", FunctionTransformer(_as_category, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("one_hot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    hour = Pipeline(
        [
            ("hour", FunctionTransformer(_hour_of_day, feature_names_out=_hour_names)),
            (
                "one_hot",
                OneHotEncoder(categories=[list(range(24))], handle_unknown="ignore"),
            ),
        ]
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, NUMERIC_FEATURES),
            ("categorical", categorical, CATEGORICAL_FEATURES),
            ("time", hour, [TIME_COLUMN]),
        ],
        remainder="drop",  # ids, the label and any extra column never reach the model
    )
    return Pipeline(
        [("preprocess", preprocess), ("classifier", _classifier(kind, seed, classifier_params))]
    )


def _classifier(kind: ModelKind, seed: int, overrides: Mapping[str, Any] | None) -> Any:
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**{**LOGREG_DEFAULTS, "random_state": seed, **(overrides or {})})
    # xgboost's bundled OpenMP runtime reads its wait policy once, when xgboost is first imported.
    # Its default busy-waits: with 2 threads on 2 cores that another process also uses, a fit ran
    # 2-2.5x slower than with 1 thread here (9.5 s vs 22 s, 60k rows); passive waiting made 2
    # threads as fast as 1 under load. An explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from xgboost import XGBClassifier

    return XGBClassifier(**{**XGBOOST_DEFAULTS, "random_state": seed, **(overrides or {})})


# --- training ----------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """A model fitted on the earlier part of the training window, judged on the latest part.

    ``metrics`` come from :func:`mlops_assets.core.evaluation.classification_metrics` on the
    validation period; ``y_validation``/``score_validation`` are the labels and fraud
    probabilities behind them (for plots and later comparisons). ``params`` are plain values for
    MLflow: kind, hyper-parameters, row counts, the split boundary and the positive rates.
    ``input_example`` is a few rows of the model-input columns as plain JSON-able values
    (numbers as float, event time as naive UTC), see :func:`input_example`.
    """

    kind: ModelKind
    pipeline: Pipeline
    metrics: dict[str, float]
    y_validation: np.ndarray
    score_validation: np.ndarray
    figures: dict[str, Figure]
    params: dict[str, Any]
    input_example: pd.DataFrame
    feature_columns: list[str] = field(default_factory=lambda: list(MODEL_INPUT_COLUMNS))


def _as_pandas(frame: Any) -> pd.DataFrame:
    # The training set may come from Polars (the point-in-time join); sklearn wants pandas.
    return (
        frame.to_pandas()
        if hasattr(frame, "to_pandas") and not isinstance(frame, pd.DataFrame)
        else frame
    )


def _check_training_set(frame: pd.DataFrame) -> None:
    from mlops_assets.core.evaluation.training_sets import check_binary_training_set

    check_binary_training_set(
        frame,
        MODEL_INPUT_COLUMNS,
        LABEL,
        why_both="a fraud model needs both frauds and genuine payments",
    )


def input_example(frame: pd.DataFrame, rows: int = INPUT_EXAMPLE_ROWS) -> pd.DataFrame:
    """The first ``rows`` of the model-input columns, as the logged model's input example.

    Numbers become float64 (a count is an integer in the feature store but null for a card
    without history) and ``event_ts`` naive UTC, which MLflow stores as ISO text: the example is
    plain JSON that any client can send back. It does not constrain the model's inputs: the
    pyfunc of a classifier has no input schema (``core.tracking.classifier_signature``), so it
    takes the training set's own rows too (int64 counts, tz-aware times).
    """
    example = frame[MODEL_INPUT_COLUMNS].head(rows).copy()
    example[NUMERIC_FEATURES] = _as_float(example[NUMERIC_FEATURES])
    example[CATEGORICAL_FEATURES] = _as_category(example[CATEGORICAL_FEATURES])
    ts = pd.to_datetime(example[TIME_COLUMN], utc=True, format="ISO8601")
    example[TIME_COLUMN] = ts.dt.tz_localize(None)
    return example.reset_index(drop=True)


def train_and_evaluate(
    training_set: pd.DataFrame,
    *,
    kind: ModelKind,
    validation_fraction: float = 0.2,
    precision_target: float = 0.9,
    seed: int = 0,
    classifier_params: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Fit a ``kind`` model on the earlier transactions and measure it on the latest ones.

    The training set (one labelled transaction per row, with its card and merchant features) is
    split by ``event_ts``: the last ``validation_fraction`` of rows (ties kept together) validate
    a pipeline fitted on everything before. Metrics are PR-AUC, ROC-AUC, recall at
    ``precision_target``, log loss and Brier score; the figures are the validation PR curve and
    calibration plot. XGBoost weighs frauds by negatives/positives of the training period, so
    both kinds see the classes with equal total weight and compare on the same footing.

    Raises ``ValueError`` naming the missing columns, or when a label is missing, not 0/1, or
    when either period lacks frauds or genuine payments.
    """
    frame = _as_pandas(training_set)
    _check_training_set(frame)
    train, validation = chronological_split(
        frame, TIME_COLUMN, validation_fraction, label_col=LABEL
    )
    y_train = train[LABEL].to_numpy(dtype=np.int64)
    y_validation = validation[LABEL].to_numpy(dtype=np.int64)
    n_positive = int(y_train.sum())

    overrides = dict(classifier_params or {})
    if kind == "xgboost":
        overrides.setdefault("scale_pos_weight", (len(y_train) - n_positive) / n_positive)
    pipeline = build_pipeline(kind, seed=seed, classifier_params=overrides)
    pipeline.fit(train[MODEL_INPUT_COLUMNS], y_train)
    scores = score(pipeline, validation)

    metrics = classification_metrics(y_validation, scores, precision_target=precision_target)
    figures = {
        "pr_curve": pr_curve_figure(
            y_validation,
            scores,
            label=kind,
            title=f"fraud {kind}: precision-recall on validation",
            precision_target=precision_target,
        ),
        "calibration": calibration_figure(
            y_validation, scores, label=kind, title=f"fraud {kind}: calibration on validation"
        ),
    }
    classifier = pipeline.named_steps["classifier"]
    # Every hyper-parameter that has a value, defaults included: a run must say what it trained.
    hyper = {
        f"classifier.{k}": v
        for k, v in sorted(classifier.get_params().items())
        if isinstance(v, str | int | float | bool)
    }
    train_ts, validation_ts = train[TIME_COLUMN], validation[TIME_COLUMN]
    params: dict[str, Any] = {
        "kind": kind,
        "seed": seed,
        "validation_fraction": validation_fraction,
        "precision_target": precision_target,
        **hyper,
        "n_rows": len(frame),
        "n_train": len(train),
        "n_validation": len(validation),
        "train_start": _iso(train_ts.min()),
        "split_boundary": _iso(validation_ts.min()),
        "validation_end": _iso(validation_ts.max()),
        "train_positive_rate": n_positive / len(y_train),
        "validation_positive_rate": float(y_validation.mean()),
        "n_input_columns": len(MODEL_INPUT_COLUMNS),
        "n_model_features": len(pipeline.named_steps["preprocess"].get_feature_names_out()),
    }
    return TrainingResult(
        kind=kind,
        pipeline=pipeline,
        metrics=metrics,
        y_validation=y_validation,
        score_validation=scores,
        figures=figures,
        params=params,
        input_example=input_example(train),
    )


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()


# --- scoring -----------------------------------------------------------------------------------


def score(pipeline: Pipeline, frame: Any) -> np.ndarray:
    """Fraud probability (0-1) of each row of ``frame``, in its order.

    ``frame`` (pandas or polars) holds the model-input columns the pipeline was trained on;
    extra columns (ids, the label, snapshot times) are ignored. Missing columns raise
    ``ValueError`` naming them: scoring without a feature would silently impute it for everyone.
    """
    frame = _as_pandas(frame)
    columns = [str(c) for c in getattr(pipeline, "feature_names_in_", MODEL_INPUT_COLUMNS)]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"cannot score: {len(missing)} model-input column(s) missing: {', '.join(missing)}"
        )
    return pipeline.predict_proba(frame[columns])[:, 1].astype(np.float64)
