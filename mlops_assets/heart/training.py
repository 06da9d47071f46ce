"""Heart models: one scikit-learn ``Pipeline`` from the 13 raw clinical inputs to a probability of
heart disease, and the comparison that picks the kind to train.

Every pipeline starts with :func:`mlops_assets.heart.features.engineer_features` itself, the one
function that computes the six engineered features, so a logged model applies it to whatever raw
inputs it is given: training, batch scoring and the API cannot drift apart. Then imputation,
scaling and one-hot encoding (categories unseen in training encode as all zeros), then one of four
classifiers (:data:`MODEL_KINDS`).

The data are small (300-1000 rows), so the kinds are compared by stratified k-fold
cross-validation on a training part, and the winner's figures are confirmed on a stratified
holdout it never saw. Everything is deterministic for a given seed.

No Dagster, no MLflow; numpy, pandas and scikit-learn are imported inside the functions, because
the code location imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.heart.features import ENGINEERED, engineer_features
from mlops_assets.heart.schema import CATEGORICAL_INPUTS, INPUTS, TARGET

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

MODEL_KINDS = ("random_forest", "logistic_regression", "gradient_boosting", "svm")

# The probability above which a patient is reported as having heart disease.
DECISION_THRESHOLD = 0.5

CATEGORICAL_FEATURES: tuple[str, ...] = (*CATEGORICAL_INPUTS, "age_group")
NUMERIC_FEATURES: tuple[str, ...] = (
    *(c for c in INPUTS if c not in CATEGORICAL_INPUTS),
    *(c for c in ENGINEERED if c != "age_group"),
)

CV_SCORING = ("roc_auc", "accuracy", "precision", "recall", "f1")


# --- transforms inside the pipeline -------------------------------------------------------------
# Module-level functions (not lambdas) so that a logged pipeline unpickles by reference to them.


def _engineered_names(transformer: Any, input_features: Any) -> list[str]:
    names = [str(c) for c in input_features]
    return [*names, *(c for c in ENGINEERED if c not in names)]


def _as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float64, NaN for missing (None, pd.NA) and for text that is not a number."""
    import pandas as pd

    return pd.DataFrame(
        {c: pd.to_numeric(frame[c], errors="coerce").astype("float64") for c in frame.columns},
        index=frame.index,
    )


def _as_category(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as strings, NaN for missing.

    A numeric code is written the same whatever its type (3, 3.0 and "3" all become ``"3"``), so
    a request that sends ints meets the categories learnt from floats. Other text (the age group)
    is kept as it is. SimpleImputer sees neither None nor pd.NA as missing in an object column,
    hence the NaN.
    """
    import numpy as np
    import pandas as pd

    out = {}
    for column in frame.columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        out[column] = [
            format(float(n), "g")
            if pd.notna(n)
            else (v if isinstance(v, str) and v.strip() else np.nan)
            for v, n in zip(frame[column], numbers, strict=True)
        ]
    return pd.DataFrame(out, index=frame.index, dtype="object")


def build_pipeline(kind: str, seed: int = 0) -> Pipeline:
    """An unfitted pipeline: the 13 raw inputs in, P(heart disease) out.

    1. ``features``: :func:`~mlops_assets.heart.features.engineer_features` (DataFrame in and out);
    2. ``preprocess``: numeric inputs and the five numeric engineered features → median
       imputation and standard scaling; ``cp``, ``restecg``, ``slope``, ``thal`` and the age
       group → most-frequent imputation and one-hot (an unseen category encodes as all zeros);
       any other column is dropped;
    3. ``classifier``: ``random_forest`` (300 trees, one job), ``logistic_regression``,
       ``gradient_boosting`` or ``svm`` (RBF SVC, probabilities by Platt scaling through
       ``CalibratedClassifierCV(ensemble=False)``), seeded with ``seed``.

    Raises ``ValueError`` for an unknown kind.
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
            # keep_empty_features: a column empty in every training row keeps its place.
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("as_category", FunctionTransformer(_as_category, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
            ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, list(NUMERIC_FEATURES)),
            ("categorical", categorical, list(CATEGORICAL_FEATURES)),
        ],
        remainder="drop",
    )
    return Pipeline(
        [
            (
                "features",
                FunctionTransformer(
                    engineer_features, validate=False, feature_names_out=_engineered_names
                ),
            ),
            ("preprocess", preprocess),
            ("classifier", _classifier(kind, seed)),
        ]
    )


def _classifier(kind: str, seed: int) -> Any:
    if kind == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)
    if kind == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000)
    if kind == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(random_state=seed)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # What SVC(probability=True) did (Platt scaling on internal folds, then one SVC on all rows),
    # without the parameter that scikit-learn 1.9 deprecates.
    return CalibratedClassifierCV(SVC(random_state=seed), method="sigmoid", ensemble=False)


# --- comparison ---------------------------------------------------------------------------------


@dataclass
class KindResult:
    """One kind's figures: ``cv_metrics`` are means over the folds of the training part (plus
    ``roc_auc_std``); ``holdout_metrics`` those of ``pipeline`` (fitted on the whole training
    part) on the holdout, whose disease probabilities are ``holdout_scores`` and true labels
    ``holdout_labels``."""

    kind: str
    cv_metrics: dict[str, float]
    holdout_metrics: dict[str, float]
    pipeline: Pipeline
    holdout_scores: np.ndarray
    holdout_labels: np.ndarray

    @property
    def logged_metrics(self) -> dict[str, float]:
        """What the kind's MLflow run logs: ``cv_<metric>`` and ``holdout_<metric>``."""
        return {
            **{f"cv_{k}": v for k, v in self.cv_metrics.items()},
            **{f"holdout_{k}": v for k, v in self.holdout_metrics.items()},
        }


def _check_frame(frame: pd.DataFrame) -> None:
    from mlops_assets.core.evaluation.training_sets import check_binary_training_set

    check_binary_training_set(
        frame, INPUTS, TARGET, why_both="a diagnosis model needs patients with and without disease"
    )


def split_holdout(
    frame: pd.DataFrame, fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)``: a random ``fraction`` of the rows, stratified on the target, held out.

    Deterministic for a given ``seed``; the rows keep their index.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), not {fraction}")
    _check_frame(frame)
    train, holdout = train_test_split(
        frame, test_size=fraction, random_state=seed, shuffle=True, stratify=frame[TARGET]
    )
    return train, holdout


def holdout_metrics(y_true: Any, y_score: Any) -> dict[str, float]:
    """Ranking and probability metrics of
    :func:`~mlops_assets.core.evaluation.classification_metrics` (roc_auc, pr_auc, log_loss,
    brier, ...) plus accuracy, precision, recall and f1 at :data:`DECISION_THRESHOLD`."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    from mlops_assets.core.evaluation import classification_metrics

    labels = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(y_score, dtype=np.float64)
    predicted = (scores >= DECISION_THRESHOLD).astype(np.int64)
    return {
        **classification_metrics(labels, scores),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
    }


def compare_models(
    frame: pd.DataFrame,
    kinds: Iterable[str] = MODEL_KINDS,
    *,
    n_folds: int = 5,
    holdout_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, KindResult]:
    """Each kind's cross-validated and holdout figures, in the order of ``kinds``.

    A stratified ``holdout_fraction`` of the rows is held out (:func:`split_holdout`); each kind
    is cross-validated on the rest with ``StratifiedKFold(n_folds, shuffle=True,
    random_state=seed)`` (the same folds for every kind), then fitted on all of it and scored on
    the holdout. Deterministic.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_validate

    kinds = list(kinds)
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown model kind(s) {unknown}; use some of {list(MODEL_KINDS)}")
    train, holdout = split_holdout(frame, holdout_fraction, seed)
    x_train, y_train = train[list(INPUTS)], train[TARGET].to_numpy(dtype=np.int64)
    y_holdout = holdout[TARGET].to_numpy(dtype=np.int64)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)

    results: dict[str, KindResult] = {}
    for kind in kinds:
        cv = cross_validate(
            build_pipeline(kind, seed),
            x_train,
            y_train,
            cv=folds,
            scoring=list(CV_SCORING),
            error_score="raise",
        )
        cv_metrics = {name: float(np.mean(cv[f"test_{name}"])) for name in CV_SCORING}
        cv_metrics["roc_auc_std"] = float(np.std(cv["test_roc_auc"]))
        pipeline = build_pipeline(kind, seed).fit(x_train, y_train)
        scores = score(pipeline, holdout)
        results[kind] = KindResult(
            kind=kind,
            cv_metrics=cv_metrics,
            holdout_metrics=holdout_metrics(y_holdout, scores),
            pipeline=pipeline,
            holdout_scores=scores,
            holdout_labels=y_holdout,
        )
    return results


def best_kind(results: Mapping[str, KindResult]) -> str:
    """The kind with the highest mean cross-validated ROC-AUC; a tie goes to the kind that comes
    first in :data:`MODEL_KINDS`. A missing or NaN ROC-AUC ranks last."""
    import math

    if not results:
        raise ValueError("no results to choose from")

    def rank(kind: str) -> tuple[float, int]:
        auc = results[kind].cv_metrics.get("roc_auc", math.nan)
        order = MODEL_KINDS.index(kind) if kind in MODEL_KINDS else len(MODEL_KINDS)
        return (-auc if math.isfinite(auc) else math.inf, order)

    return min(results, key=rank)


def comparison_table(results: Mapping[str, KindResult]) -> list[dict[str, Any]]:
    """One row per kind for the models' metadata: its cross-validated figures and its holdout
    ROC-AUC, rounded to 4 digits."""
    return [
        {
            "kind": kind,
            **{f"cv_{k}": round(v, 4) for k, v in r.cv_metrics.items()},
            "holdout_roc_auc": round(r.holdout_metrics["roc_auc"], 4),
        }
        for kind, r in results.items()
    ]


# --- scoring ------------------------------------------------------------------------------------


def score(pipeline: Pipeline, frame: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
    """P(heart disease) of each raw row of ``frame``, in its order.

    ``frame`` holds the 13 inputs (values may be missing, codes may be unseen); extra columns
    (record id, diagnosis, target) are ignored. An input column absent altogether raises
    ``ValueError`` naming it: it would be silently imputed for every patient.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    missing = [c for c in INPUTS if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot score: {len(missing)} input column(s) missing: {missing}")
    return pipeline.predict_proba(frame[list(INPUTS)])[:, 1].astype(np.float64)
