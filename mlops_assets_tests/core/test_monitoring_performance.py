"""Live performance on delayed labels and realized regression errors, on hand-made frames with
the expected values written out, cross-checked against the evaluation metrics; and the plot of a
metric per day."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.evaluation import classification_metrics
from mlops_assets.core.monitoring.performance import (
    CLASSIFICATION_COLUMNS,
    REGRESSION_COLUMNS,
    classification_performance,
    regression_errors,
)
from mlops_assets.core.monitoring.plots import metric_by_day_figure

NA = None
METRICS = ["pr_auc", "roc_auc", "recall_at_precision", "precision_at_top_k", "brier"]


def scored() -> pd.DataFrame:
    """Version 7: 4 labelled rows of 6, both classes. Version 8: labelled rows of one class.
    Version 9: one labelled row. Version 10: no label yet. One row without a version."""
    rows = [
        ("7", 1, 0.9),
        ("7", 0, 0.8),
        ("7", NA, 0.7),
        ("7", 1, 0.4),
        ("7", 0, 0.1),
        ("7", NA, 0.3),
        ("8", 0, 0.2),
        ("8", 0, 0.6),
        ("9", 1, 0.9),
        ("10", NA, 0.5),
        (NA, 1, 0.3),
    ]
    frame = pd.DataFrame(rows, columns=["model_version", "is_fraud", "score"])
    frame["is_fraud"] = frame["is_fraud"].astype("Int8")
    return frame


def test_metrics_per_version_on_the_labels_known_so_far() -> None:
    out = classification_performance(
        scored(), label="is_fraud", score="score", by=["model_version"], top_k=2
    )
    assert list(out.columns) == ["model_version", *CLASSIFICATION_COLUMNS]
    # Sorted by version (as text), the unknown version last: never silently dropped.
    assert out["model_version"].tolist()[:4] == ["10", "7", "8", "9"]
    assert pd.isna(out["model_version"].iloc[4])
    assert out["rows"].tolist() == [1, 6, 2, 1, 1]
    assert out["labelled"].tolist() == [0, 4, 2, 1, 1]
    assert out["positives"].tolist() == [0, 2, 0, 1, 1]
    assert out["label_coverage"].tolist() == pytest.approx([0, 4 / 6, 1, 1, 1])
    seven = out.set_index("model_version").loc["7"]
    # Labelled scores .9 (1), .8 (0), .4 (1), .1 (0):
    assert seven["roc_auc"] == pytest.approx(3 / 4)  # 3 of the 4 (positive, negative) pairs
    assert seven["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # precision 1, then 2/3
    assert seven["recall_at_precision"] == pytest.approx(0.5)  # only above 0.8 is 90 % precise
    assert seven["precision_at_top_k"] == pytest.approx(0.5)  # .9 is fraud, .8 is not
    assert seven["brier"] == pytest.approx((0.01 + 0.64 + 0.36 + 0.01) / 4)
    # One class, one labelled row, no label, an unknown version with one row: NaN, not an error.
    others = out[out["model_version"] != "7"]
    assert others[METRICS].isna().all().all()


def test_groups_by_several_columns_or_none() -> None:
    frame = scored().dropna(subset=["model_version"])
    frame["source"] = ["batch", "api"] * 5
    by_two = classification_performance(
        frame, label="is_fraud", score="score", by=["source", "model_version"]
    )
    assert list(by_two.columns[:2]) == ["source", "model_version"]
    assert by_two[["source", "model_version"]].values.tolist() == [
        ["api", "10"],
        ["api", "7"],
        ["api", "8"],
        ["batch", "7"],
        ["batch", "8"],
        ["batch", "9"],
    ]
    assert by_two["rows"].sum() == len(frame)
    whole = classification_performance(frame, label="is_fraud", score="score", by=[])
    labelled = frame.dropna(subset=["is_fraud"])
    expected = classification_metrics(labelled["is_fraud"].astype(int), labelled["score"])
    assert whole["rows"].item() == 10 and whole["labelled"].item() == 7
    assert whole["pr_auc"].item() == pytest.approx(expected["pr_auc"])
    assert whole["brier"].item() == pytest.approx(expected["brier"])


def test_top_k_takes_at_most_the_labelled_rows_and_breaks_ties_by_row_order() -> None:
    frame = pd.DataFrame({"v": ["x"] * 3, "y": [1, 0, 0], "s": [0.5, 0.5, 0.5]})
    first = classification_performance(frame, label="y", score="s", by=["v"], top_k=1)
    last = classification_performance(frame[::-1], label="y", score="s", by=["v"], top_k=1)
    many = classification_performance(frame, label="y", score="s", by=["v"], top_k=100)
    assert first["precision_at_top_k"].item() == 1.0
    assert last["precision_at_top_k"].item() == 0.0
    assert many["precision_at_top_k"].item() == pytest.approx(1 / 3)


def test_a_day_without_rows_gives_an_empty_table() -> None:
    empty = scored().iloc[:0]
    for by in (["model_version"], []):
        out = classification_performance(empty, label="is_fraud", score="score", by=by)
        assert out.empty and list(out.columns) == [*by, *CLASSIFICATION_COLUMNS]


def test_bad_labels_or_scores_are_refused() -> None:
    frame = scored()
    frame["is_fraud"] = frame["is_fraud"].astype("float").replace({1.0: 2.0})
    with pytest.raises(ValueError, match="only 0 and 1"):
        classification_performance(frame, label="is_fraud", score="score", by=[])
    frame = scored().assign(score=lambda f: f["score"] * 2)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        classification_performance(frame, label="is_fraud", score="score", by=[])
    with pytest.raises(KeyError, match="day"):
        classification_performance(scored(), label="is_fraud", score="score", by=["day"])


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.sampled_from([0, 1, None]),
            st.floats(0.0, 1.0),
        ),
        max_size=40,
    )
)
def test_every_row_is_counted_once_and_groups_match_the_evaluation_metrics(rows: list) -> None:
    frame = pd.DataFrame(rows, columns=["g", "y", "s"])
    frame["y"] = frame["y"].astype("Int8")
    out = classification_performance(frame, label="y", score="s", by=["g"])
    assert out["rows"].sum() == len(frame)
    assert out["labelled"].sum() == frame["y"].notna().sum()
    for _, row in out.iterrows():
        group = frame[frame["g"].isna()] if pd.isna(row["g"]) else frame[frame["g"] == row["g"]]
        labelled = group.dropna(subset=["y"])
        if labelled["y"].nunique() == 2:
            expected = classification_metrics(labelled["y"].astype(int), labelled["s"])
            assert row["pr_auc"] == pytest.approx(expected["pr_auc"])
            assert row["roc_auc"] == pytest.approx(expected["roc_auc"])
            assert row["recall_at_precision"] == pytest.approx(expected["recall_at_precision"])
        else:
            assert all(math.isnan(row[m]) for m in METRICS)


# --- regression_errors ---------------------------------------------------------------------------


def test_regression_errors_per_group_on_the_actuals_that_arrived() -> None:
    frame = pd.DataFrame(
        {
            "respondent": ["A", "A", "A", "B", "B", "C"],
            "actual": [10.0, 0.0, np.nan, 5.0, 0.0, np.nan],
            "predicted": [12.0, 1.0, 7.0, 4.0, 1.0, 3.0],
        }
    )
    out = regression_errors(frame, actual="actual", predicted="predicted", by=["respondent"])
    assert list(out.columns) == ["respondent", *REGRESSION_COLUMNS]
    assert out["rows"].tolist() == [3, 2, 1]
    assert out["labelled"].tolist() == [2, 2, 0]
    a, b, c = (out.iloc[i] for i in range(3))
    # A: errors +2 and +1 (the actual of row 3 has not arrived).
    assert a["rmse"] == pytest.approx(math.sqrt((4 + 1) / 2))
    assert a["mae"] == pytest.approx(1.5)
    assert a["mape"] == pytest.approx(20.0)  # percent, over the actual that is not 0
    assert a["bias"] == pytest.approx(1.5)  # over-forecasts
    # B: errors -1 and +1.
    assert (b["rmse"], b["mae"], b["bias"]) == pytest.approx((1.0, 1.0, 0.0))
    assert b["mape"] == pytest.approx(20.0)
    # C: no actual yet.
    assert c[["rmse", "mae", "mape", "bias"]].isna().all()


def test_mape_is_nan_when_every_actual_is_zero() -> None:
    frame = pd.DataFrame({"actual": [0.0, 0.0], "predicted": [1.0, -1.0]})
    out = regression_errors(frame, actual="actual", predicted="predicted", by=[])
    assert math.isnan(out["mape"].item())
    assert (out["rmse"].item(), out["bias"].item()) == pytest.approx((1.0, 0.0))


# --- metric_by_day_figure ------------------------------------------------------------------------


def test_metric_by_day_draws_one_line_per_version_and_the_reference() -> None:
    frame = pd.DataFrame(
        {
            "day": ["2025-01-02", "2025-01-01", "2025-01-03", "2025-01-01", "2025-01-02"],
            "model_version": ["7", "7", "7", "8", "8"],
            "pr_auc": [0.7, 0.8, np.nan, 0.6, 0.65],
        }
    )
    ax = metric_by_day_figure(
        frame, day="day", metric="pr_auc", series="model_version", title="PR-AUC", reference=0.75
    ).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"7", "8", "reference 0.75"}
    # Days in order; the day without a value is a gap (NaN), not a zero.
    assert list(lines["7"].get_ydata()) == pytest.approx([0.8, 0.7, np.nan], nan_ok=True)
    assert list(lines["reference 0.75"].get_ydata()) == [0.75, 0.75]
    empty = metric_by_day_figure(
        frame.iloc[:0], day="day", metric="pr_auc", series="model_version", title="PR-AUC"
    ).axes[0]
    assert [t.get_text() for t in empty.texts] == ["no data yet"]
