"""The heart pipelines and their comparison, on a synthetic cohort with a known logistic signal."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from mlops_assets.heart.features import engineer_features
from mlops_assets.heart.schema import INPUTS, TARGET
from mlops_assets.heart.training import (
    MODEL_KINDS,
    KindResult,
    best_kind,
    build_pipeline,
    compare_models,
    score,
    split_holdout,
)
from mlops_assets_tests.fixtures.heart_data import AWKWARD_ROWS, synthetic_cohort


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return synthetic_cohort()


@pytest.fixture(scope="module")
def results(cohort: pd.DataFrame) -> dict[str, KindResult]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # nothing deprecated in the pipelines
        return compare_models(cohort)


def test_first_step_is_the_shared_feature_function() -> None:
    for kind in MODEL_KINDS:
        first = build_pipeline(kind).steps[0][1]
        assert first.func is engineer_features


def test_unknown_kind_is_refused_with_the_kinds() -> None:
    with pytest.raises(ValueError, match=r"xgboost.*random_forest.*svm"):
        build_pipeline("xgboost")
    with pytest.raises(ValueError, match="unknown model kind"):
        compare_models(synthetic_cohort(40), ["knn"])


def test_every_kind_scores_awkward_raw_rows(
    cohort: pd.DataFrame, results: dict[str, KindResult]
) -> None:
    assert list(results) == list(MODEL_KINDS)
    for kind, result in results.items():
        scores = score(result.pipeline, AWKWARD_ROWS)
        assert scores.shape == (3,) and scores.dtype == np.float64, kind
        assert np.all((scores >= 0) & (scores <= 1)), (kind, scores)
        # The same patient as ints, as floats, and with the target and id columns along.
        as_floats = AWKWARD_ROWS.iloc[[1]].drop(columns="note").astype(float)
        assert score(result.pipeline, as_floats)[0] == pytest.approx(scores[1], abs=1e-12)
        # Extra columns are ignored: scoring the cohort with its id and target is allowed.
        assert score(result.pipeline, cohort.head(3)).shape == (3,)
        # Features the pipeline saw: the 13 inputs, then the engineered ones after step 1.
        assert list(result.pipeline.feature_names_in_) == list(INPUTS)
    names = results["logistic_regression"].pipeline[:-1].get_feature_names_out()
    assert "categorical__thal_7" in names and "categorical__age_group_elderly" in names
    assert "numeric__risk_score" in names and "categorical__thal_5" not in names


def test_score_names_missing_inputs(results: dict[str, KindResult]) -> None:
    with pytest.raises(ValueError, match=r"missing: \['ca', 'thal'\]"):
        score(results["svm"].pipeline, AWKWARD_ROWS.drop(columns=["ca", "thal"]))


def test_a_fresh_unfitted_pipeline_fits_raw_rows_with_gaps(cohort: pd.DataFrame) -> None:
    gappy = cohort.copy()
    gappy.loc[::7, "ca"] = np.nan
    gappy.loc[::5, "thal"] = np.nan
    gappy.loc[::11, "age"] = np.nan  # no age: no age group either
    pipeline = build_pipeline("logistic_regression").fit(gappy[list(INPUTS)], gappy[TARGET])
    scores = score(pipeline, gappy)
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1


def test_models_learn_the_signal_and_best_kind_is_the_max(
    results: dict[str, KindResult],
) -> None:
    for kind, result in results.items():
        assert set(result.cv_metrics) == {
            "roc_auc",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "roc_auc_std",
        }
        assert result.cv_metrics["roc_auc"] > 0.75, (kind, result.cv_metrics)
        assert 0 < result.cv_metrics["roc_auc_std"] < 0.15
        holdout = result.holdout_metrics
        assert holdout["roc_auc"] > 0.75, (kind, holdout)
        assert holdout["n"] == 80 and len(result.holdout_scores) == 80
        assert holdout["accuracy"] == pytest.approx(
            np.mean((result.holdout_scores >= 0.5) == result.holdout_labels)
        )
        for name in ("precision", "recall", "f1", "pr_auc", "brier", "log_loss"):
            assert math.isfinite(holdout[name]), (kind, name)
    best = best_kind(results)
    assert results[best].cv_metrics["roc_auc"] == max(
        r.cv_metrics["roc_auc"] for r in results.values()
    )


def test_best_kind_breaks_ties_by_kind_order_and_ranks_nan_last() -> None:
    def fake(kind: str, auc: float) -> KindResult:
        return KindResult(kind, {"roc_auc": auc}, {}, None, np.array([]), np.array([]))

    tied = {k: fake(k, 0.8) for k in ("svm", "gradient_boosting", "logistic_regression")}
    assert best_kind(tied) == "logistic_regression"
    assert best_kind({"random_forest": fake("random_forest", math.nan), **tied}) == (
        "logistic_regression"
    )
    assert best_kind({**tied, "svm": fake("svm", 0.81)}) == "svm"
    with pytest.raises(ValueError):
        best_kind({})


def test_comparison_is_deterministic(cohort: pd.DataFrame, results: dict[str, KindResult]) -> None:
    # The seeded kinds again (a kind's figures do not depend on which others are compared).
    again = compare_models(cohort, ("random_forest", "gradient_boosting", "svm"))
    for kind, result in again.items():
        assert result.cv_metrics == results[kind].cv_metrics, kind
        assert result.holdout_metrics == results[kind].holdout_metrics, kind
        np.testing.assert_array_equal(result.holdout_scores, results[kind].holdout_scores)


def test_holdout_is_stratified_and_deterministic(cohort: pd.DataFrame) -> None:
    train, holdout = split_holdout(cohort, 0.2, seed=3)
    assert len(holdout) == 80 and len(train) == 320
    assert set(train.index).isdisjoint(holdout.index)
    assert set(train.index) | set(holdout.index) == set(cohort.index)
    prevalence = cohort[TARGET].mean()
    assert abs(holdout[TARGET].mean() - prevalence) < 0.05
    assert abs(train[TARGET].mean() - prevalence) < 0.05
    train2, holdout2 = split_holdout(cohort, 0.2, seed=3)
    assert list(holdout2.index) == list(holdout.index) and list(train2.index) == list(train.index)
    assert list(split_holdout(cohort, 0.2, seed=4)[1].index) != list(holdout.index)


def test_holdout_refuses_bad_inputs(cohort: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="fraction"):
        split_holdout(cohort, 1.0)
    with pytest.raises(ValueError, match=r"lacks 1 column.*thal"):
        split_holdout(cohort.drop(columns="thal"))
    with pytest.raises(ValueError, match="single class"):
        split_holdout(cohort.assign(target=1))
