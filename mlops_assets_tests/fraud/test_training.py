"""Fraud models (one Pipeline with the MDTs inside) and the training-set inspection report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlops_assets.fraud.reports import MARKDOWN_KEYS, inspect_training_set
from mlops_assets.fraud.schema import card_feature_columns, merchant_feature_columns
from mlops_assets.fraud.training import (
    CATEGORICAL_FEATURES,
    MODEL_INPUT_COLUMNS,
    NUMERIC_FEATURES,
    TrainingResult,
    build_pipeline,
    score,
    train_and_evaluate,
)
from mlops_assets_tests.fixtures.fraud_data import make_training_set


@pytest.fixture(scope="module")
def training_set() -> pd.DataFrame:
    return make_training_set()


@pytest.fixture(scope="module")
def results(training_set: pd.DataFrame) -> dict[str, TrainingResult]:
    return {kind: train_and_evaluate(training_set, kind=kind) for kind in ("logreg", "xgboost")}


# --- the pipeline ------------------------------------------------------------------------------


def test_model_inputs_are_the_raw_transaction_and_feature_columns() -> None:
    assert NUMERIC_FEATURES[0] == "amount"
    assert set(card_feature_columns()) | set(merchant_feature_columns()) < set(NUMERIC_FEATURES)
    assert CATEGORICAL_FEATURES == ["merchant_category", "channel", "country"]
    assert MODEL_INPUT_COLUMNS[-1] == "event_ts"
    assert not {"tx_id", "card_id", "merchant_id", "is_fraud"} & set(MODEL_INPUT_COLUMNS)


@pytest.mark.parametrize(
    ("kind", "classifier"), [("logreg", "LogisticRegression"), ("xgboost", "XGBClassifier")]
)
def test_one_pipeline_holds_the_model_dependent_transforms(kind: str, classifier: str) -> None:
    pipeline = build_pipeline(kind, seed=3)
    assert list(pipeline.named_steps) == ["preprocess", "classifier"]
    assert type(pipeline.named_steps["classifier"]).__name__ == classifier
    branches = {name: cols for name, _, cols in pipeline.named_steps["preprocess"].transformers}
    assert branches == {
        "numeric": NUMERIC_FEATURES,
        "categorical": CATEGORICAL_FEATURES,
        "time": ["event_ts"],
    }
    assert pipeline.named_steps["classifier"].get_params()["random_state"] == 3


def test_unknown_model_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'forest'"):
        build_pipeline("forest")  # type: ignore[arg-type]


# --- training and validation -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["logreg", "xgboost"])
def test_both_kinds_learn_the_signal(results: dict[str, TrainingResult], kind: str) -> None:
    metrics = results[kind].metrics
    assert set(metrics) == {
        "pr_auc",
        "roc_auc",
        "recall_at_precision",
        "log_loss",
        "brier",
        "positive_rate",
        "n",
    }
    # Guessing scores the positive rate (~6%); the signal is strong enough for far more.
    assert metrics["pr_auc"] > 0.6 > 5 * metrics["positive_rate"]
    assert metrics["roc_auc"] > 0.9
    assert metrics["recall_at_precision"] > 0.3


def test_validation_is_the_latest_period(
    results: dict[str, TrainingResult], training_set: pd.DataFrame
) -> None:
    params = results["logreg"].params
    assert params["kind"] == "logreg"
    assert params["n_rows"] == 3000
    assert (params["n_train"], params["n_validation"]) == (2400, 600)
    boundary = pd.Timestamp(params["split_boundary"])
    ordered = training_set.sort_values("event_ts", kind="mergesort")
    assert boundary == ordered["event_ts"].iloc[2400]
    assert (training_set["event_ts"] < boundary).sum() == 2400
    validation = ordered.iloc[2400:]
    np.testing.assert_array_equal(results["logreg"].y_validation, validation["is_fraud"])
    assert params["validation_positive_rate"] == pytest.approx(validation["is_fraud"].mean())
    assert params["train_positive_rate"] == pytest.approx(ordered["is_fraud"].iloc[:2400].mean())
    assert params["classifier.class_weight"] == "balanced"
    # XGBoost weighs frauds by the negatives-to-positives ratio of the training period.
    n_fraud = ordered["is_fraud"].iloc[:2400].sum()
    assert results["xgboost"].params["classifier.scale_pos_weight"] == pytest.approx(
        (2400 - n_fraud) / n_fraud
    )


def test_result_carries_scores_figures_and_an_input_example(
    results: dict[str, TrainingResult],
) -> None:
    result = results["xgboost"]
    assert result.score_validation.shape == (600,)
    assert ((result.score_validation >= 0) & (result.score_validation <= 1)).all()
    assert set(result.figures) == {"pr_curve", "calibration"}
    assert len(result.figures["pr_curve"].axes[0].lines) == 3  # curve, no skill, target
    assert len(result.figures["calibration"].axes) == 2
    example = result.input_example
    assert list(example.columns) == MODEL_INPUT_COLUMNS
    assert len(example) == 5
    # Plain JSON for the stored example: numbers as double, event time as naive (UTC) datetime.
    assert (example[NUMERIC_FEATURES].dtypes == "float64").all()
    assert str(example["event_ts"].dtype) == "datetime64[us]"
    assert score(result.pipeline, example).shape == (5,)


@pytest.mark.parametrize("kind", ["logreg", "xgboost"])
def test_training_twice_gives_identical_scores(
    results: dict[str, TrainingResult], training_set: pd.DataFrame, kind: str
) -> None:
    again = train_and_evaluate(training_set, kind=kind)
    np.testing.assert_array_equal(again.score_validation, results[kind].score_validation)
    assert again.metrics == results[kind].metrics


def test_a_polars_training_set_trains_the_same_model(
    results: dict[str, TrainingResult], training_set: pd.DataFrame
) -> None:
    result = train_and_evaluate(pl.from_pandas(training_set), kind="logreg")
    np.testing.assert_allclose(result.score_validation, results["logreg"].score_validation)


def test_missing_columns_are_named(training_set: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"lacks 2 column\(s\).*: card_tx_count_1h, country"):
        train_and_evaluate(
            training_set.drop(columns=["country", "card_tx_count_1h"]), kind="logreg"
        )


def test_a_single_class_is_refused(training_set: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="single class"):
        train_and_evaluate(training_set.assign(is_fraud=0), kind="logreg")


def test_a_validation_period_without_fraud_is_refused(training_set: pd.DataFrame) -> None:
    late = training_set["event_ts"] >= training_set["event_ts"].quantile(0.7)
    frame = training_set.assign(is_fraud=training_set["is_fraud"].where(~late, 0))
    with pytest.raises(ValueError, match=r"validation period .* no row of class \[1\]"):
        train_and_evaluate(frame, kind="logreg")


def test_labels_must_be_zero_or_one(training_set: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="must be 0 or 1; found \\[2\\]"):
        train_and_evaluate(
            training_set.assign(is_fraud=training_set["is_fraud"] * 2), kind="logreg"
        )


# --- scoring -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["logreg", "xgboost"])
def test_unseen_categories_and_missing_values_are_scored(
    results: dict[str, TrainingResult], training_set: pd.DataFrame, kind: str
) -> None:
    rows = training_set.tail(4).copy()
    rows["country"] = "ZZ"  # never seen in training
    rows["merchant_category"] = ["spaceships", None, pd.NA, np.nan]
    rows["channel"] = None
    rows["amount"] = [10.0, None, np.nan, 5.0]
    rows["card_tx_count_1h"] = pd.array([1, None, 2, None], dtype="Int64")
    scores = score(results[kind].pipeline, rows)
    assert scores.shape == (4,)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_scoring_reads_columns_by_name_and_ignores_extras(
    results: dict[str, TrainingResult], training_set: pd.DataFrame
) -> None:
    pipeline, rows = results["logreg"].pipeline, training_set.tail(50)
    shuffled = rows[list(reversed(rows.columns))].assign(extra="x")
    np.testing.assert_array_equal(score(pipeline, shuffled), score(pipeline, rows))
    np.testing.assert_array_equal(score(pipeline, pl.from_pandas(rows)), score(pipeline, rows))


def test_event_time_may_be_utc_naive_or_an_iso_string(
    results: dict[str, TrainingResult], training_set: pd.DataFrame
) -> None:
    pipeline, rows = results["xgboost"].pipeline, training_set.tail(50)
    expected = score(pipeline, rows)
    naive = rows.assign(event_ts=rows["event_ts"].dt.tz_localize(None))
    iso = rows.assign(event_ts=rows["event_ts"].map(pd.Timestamp.isoformat))
    paris = rows.assign(event_ts=rows["event_ts"].dt.tz_convert("Europe/Paris"))
    for variant in (naive, iso, paris):
        np.testing.assert_array_equal(score(pipeline, variant), expected)


def test_the_hour_of_the_day_matters_to_the_model(
    results: dict[str, TrainingResult], training_set: pd.DataFrame
) -> None:
    # Fraud happens at night in the generator: the same payments score higher at 02:00 than 14:00.
    rows = training_set.tail(200)
    day = rows.assign(event_ts=rows["event_ts"].dt.floor("D") + pd.Timedelta(hours=14))
    night = rows.assign(event_ts=rows["event_ts"].dt.floor("D") + pd.Timedelta(hours=2))
    pipeline = results["logreg"].pipeline
    assert score(pipeline, night).mean() > score(pipeline, day).mean()


def test_scoring_without_a_model_column_names_it(
    results: dict[str, TrainingResult], training_set: pd.DataFrame
) -> None:
    rows = training_set.tail(3).drop(columns=["amount", "channel"])
    with pytest.raises(ValueError, match=r"2 model-input column\(s\) missing: amount, channel"):
        score(results["logreg"].pipeline, rows)


def test_a_non_numeric_feature_value_is_named(
    results: dict[str, TrainingResult], training_set: pd.DataFrame
) -> None:
    rows = training_set.tail(2).astype({"amount": "object"})
    rows.loc[rows.index[0], "amount"] = "twelve"
    with pytest.raises(ValueError, match="column 'amount' must be numeric"):
        score(results["logreg"].pipeline, rows)


# --- the inspection report ---------------------------------------------------------------------


def report_frame() -> pd.DataFrame:
    """Eight payments, two of them fraud, one tx_id repeated, one row an exact duplicate."""
    return pd.DataFrame(
        {
            "tx_id": ["t1", "t2", "t3", "t4", "t5", "t5", "t7", "t7"],
            "event_ts": pd.to_datetime(
                [
                    "2024-01-01 00:00",
                    "2024-01-01 01:00",
                    "2024-01-01 02:00",
                    "2024-01-01 03:00",
                    "2024-01-01 04:00",
                    "2024-01-01 05:00",
                    "2024-01-02 06:00",
                    "2024-01-02 06:00",
                ],
                utc=True,
            ),
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 70.0],
            "channel": ["pos", "ecom", None, "pos", "atm", "pos", "pos", "pos"],
            "card_amount_mean_1d": [None, None, None, 5.0, 6.0, 7.0, 8.0, 8.0],
            "merchant_fraud_count_1d": [0, 0, 0, 0, 0, 0, 1, 1],
            "merchant_fraud_count_7d": [0, 1, 0, 3, 1, 0, 2, 2],
            "is_fraud": pd.array([0, 0, 1, 0, 0, 0, 1, 1], dtype="int8"),
        }
    )


def test_report_counts_rows_ids_labels_and_time_range() -> None:
    report = inspect_training_set(report_frame())
    assert report["row_count"] == 8
    assert report["column_count"] == 8
    assert report["schema"]["event_ts"] == "datetime64[ns, UTC]"
    assert report["schema"]["is_fraud"] == "int8"
    assert report["event_ts_min"] == "2024-01-01T00:00:00+00:00"
    assert report["event_ts_max"] == "2024-01-02T06:00:00+00:00"
    assert report["span_hours"] == 30.0
    assert report["label_counts"] == {"0": 5, "1": 3}
    assert report["fraud_count"] == 3
    assert report["fraud_rate"] == 3 / 8
    assert report["distinct_tx_ids"] == 6
    assert report["duplicate_tx_ids"] == 2
    assert report["duplicate_rows"] == 1
    assert report["null_tx_ids"] == 0


def test_report_lists_null_rates_and_amount_stats() -> None:
    report = inspect_training_set(report_frame())
    assert report["null_rates"] == {"card_amount_mean_1d": 0.375, "channel": 0.125}
    assert "| card_amount_mean_1d | 37.50% |" in report["null_rates_md"]
    assert report["amount_stats"] == {
        "min": 10.0,
        "p50": 45.0,
        "p95": 70.0,
        "max": 70.0,
        "mean": 43.75,
    }


def test_report_samples_fraud_and_genuine_rows_deterministically() -> None:
    frame = report_frame()
    report = inspect_training_set(frame)
    fraud_rows = report["sample_fraud"].splitlines()[2:]
    genuine_rows = report["sample_non_fraud"].splitlines()[2:]
    assert len(fraud_rows) == 3 and all(row.endswith("| 1 |") for row in fraud_rows)
    assert len(genuine_rows) == 5 and all(row.endswith("| 0 |") for row in genuine_rows)
    assert set(report) >= MARKDOWN_KEYS
    shuffled = inspect_training_set(frame.sample(frac=1.0, random_state=1))
    assert shuffled["sample_non_fraud"] == report["sample_non_fraud"]
    assert shuffled["sample_fraud"] == report["sample_fraud"]


def test_report_sample_of_a_large_frame_has_five_rows_in_time_order(
    training_set: pd.DataFrame,
) -> None:
    sample = inspect_training_set(training_set)["sample_non_fraud"].splitlines()[2:]
    assert len(sample) == 5
    times = [row.split(" | ")[1] for row in sample]
    assert times == sorted(times)


def test_report_smell_test_compares_merchant_fraud_counts_by_label() -> None:
    report = inspect_training_set(report_frame())
    smell = report["leakage_smell"]
    assert smell["merchant_fraud_count_7d"]["mean_fraud"] == pytest.approx(4 / 3, abs=1e-6)
    assert smell["merchant_fraud_count_7d"]["mean_non_fraud"] == pytest.approx(1.0)
    assert smell["merchant_fraud_count_7d"]["ratio"] == pytest.approx(4 / 3, abs=1e-5)
    assert smell["merchant_fraud_count_1d"]["fraud_rows_with_zero_count"] == pytest.approx(
        1 / 3, abs=1e-6
    )
    assert "merchant_fraud_count_30d" not in smell
    assert report["leakage_smell_reading"].startswith("no smell")


def test_report_smells_a_fraud_count_that_includes_the_own_label(
    training_set: pd.DataFrame,
) -> None:
    # What a window that includes the current transaction would produce: every fraud counts itself.
    leaky = training_set.assign(
        merchant_fraud_count_1d=training_set["merchant_fraud_count_1d"] + training_set["is_fraud"]
    )
    leaky.loc[leaky["is_fraud"] == 0, "merchant_fraud_count_1d"] = 0
    reading = inspect_training_set(leaky)["leakage_smell_reading"]
    assert reading.startswith("SUSPICIOUS")
    assert "merchant_fraud_count_1d" in reading


def test_report_of_an_empty_frame_has_no_undefined_numbers() -> None:
    report = inspect_training_set(report_frame().head(0))
    assert report["row_count"] == 0
    assert report["fraud_rate"] is None
    assert report["event_ts_min"] is None
    assert report["amount_stats"]["mean"] is None
    assert report["leakage_smell_reading"].startswith("not run")


def test_report_of_polars_equals_report_of_pandas() -> None:
    frame = report_frame()
    pandas_report = inspect_training_set(frame)
    polars_report = inspect_training_set(pl.from_pandas(frame))
    differing = {k for k in pandas_report if pandas_report[k] != polars_report[k]}
    assert differing <= {"schema"}  # arrow round trip may change dtype names only
