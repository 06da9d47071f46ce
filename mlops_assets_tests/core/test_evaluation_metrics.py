"""Chronological splits, classification metrics and evaluation figures, on hand-made examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.evaluation import (
    calibration_bins,
    calibration_figure,
    chronological_split,
    classification_metrics,
    pr_curve_figure,
    regression_metrics,
    residual_figure,
)

# --- chronological_split -------------------------------------------------------------------------

TIMES = [5, 1, 3, 3, 3, 9, 7, 8, 2, 4]
LABELS = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_split_takes_the_latest_rows_for_validation(kind: str) -> None:
    frame = pd.DataFrame({"t": TIMES, "y": LABELS})
    frame = pl.from_pandas(frame) if kind == "polars" else frame
    train, validation = chronological_split(frame, "t", 0.3, label_col="y")
    assert type(train) is type(frame) and type(validation) is type(frame)
    assert list(train["t"]) == [1, 2, 3, 3, 3, 4, 5]
    assert list(validation["t"]) == [7, 8, 9]


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_split_keeps_rows_sharing_the_boundary_timestamp_together(kind: str) -> None:
    # 60% of 10 rows is 6: the 5th row in time order (t=3) opens validation, and so do all its ties.
    frame = pd.DataFrame({"t": TIMES, "row": range(10)})
    frame = pl.from_pandas(frame) if kind == "polars" else frame
    train, validation = chronological_split(frame, "t", 0.6)
    assert list(train["t"]) == [1, 2]
    assert list(validation["t"]) == [3, 3, 3, 4, 5, 7, 8, 9]
    assert max(train["t"]) < min(validation["t"])
    # Tied rows keep their input order (a stable sort).
    assert list(validation["row"])[:3] == [2, 3, 4]


def test_split_of_utc_timestamps_keeps_the_pandas_index() -> None:
    ts = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    frame = pd.DataFrame({"event_ts": ts[::-1]}, index=list("abcde"))
    train, validation = chronological_split(frame, "event_ts", 0.4)
    assert list(train.index) == ["e", "d", "c"]
    assert list(validation.index) == ["b", "a"]
    assert validation["event_ts"].min() == ts[3]


def test_split_of_polars_utc_timestamps() -> None:
    ts = pl.datetime_range(
        pl.datetime(2024, 1, 1, time_zone="UTC"),
        pl.datetime(2024, 1, 1, 4, time_zone="UTC"),
        "1h",
        eager=True,
    )
    train, validation = chronological_split(pl.DataFrame({"event_ts": ts.reverse()}), "event_ts")
    assert train.height == 4 and validation.height == 1
    assert validation["event_ts"].to_list() == [ts[-1]]


@given(
    times=st.lists(st.integers(0, 20), min_size=2, max_size=60),
    fraction=st.floats(0.05, 0.95),
)
@settings(max_examples=200, deadline=None)
def test_split_never_overlaps_in_time(times: list[int], fraction: float) -> None:
    frame = pd.DataFrame({"t": times})
    try:
        train, validation = chronological_split(frame, "t", fraction)
    except ValueError as exc:
        # Only when the boundary falls on the earliest timestamp.
        assert "no training rows" in str(exc)
        assert sorted(times)[len(times) - max(1, round(len(times) * fraction))] == min(times)
        return
    assert len(train) + len(validation) == len(times)
    assert train["t"].max() < validation["t"].min()
    assert len(validation) >= min(len(times) - 1, max(1, round(len(times) * fraction)))


def test_split_refuses_when_every_row_shares_one_timestamp() -> None:
    with pytest.raises(ValueError, match="no training rows"):
        chronological_split(pd.DataFrame({"t": [1, 1, 1, 1]}), "t", 0.25)


def test_split_refuses_a_validation_period_without_a_class() -> None:
    frame = pd.DataFrame({"t": range(10), "y": [1, 0, 1, 0, 1, 0, 1, 0, 0, 0]})
    with pytest.raises(ValueError, match=r"validation period \(2 rows.*class \[1\] in 'y'"):
        chronological_split(frame, "t", 0.2, label_col="y")


def test_split_refuses_a_single_class() -> None:
    frame = pd.DataFrame({"t": range(10), "y": [0] * 10})
    with pytest.raises(ValueError, match="single class"):
        chronological_split(frame, "t", 0.2, label_col="y")


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"t": [1.0, None, 3.0]}), {}, "null 't'"),
        (pd.DataFrame({"t": [1]}), {}, "cannot split 1 row"),
        (pd.DataFrame({"x": [1, 2]}), {}, "no such column"),
        (pd.DataFrame({"t": [1, 2]}), {"validation_fraction": 1.0}, "must be in"),
        (pd.DataFrame({"t": [1, 2]}), {"label_col": "y"}, "'y'"),
    ],
)
def test_split_rejects_bad_input(frame: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chronological_split(frame, "t", **kwargs)


# --- classification_metrics ----------------------------------------------------------------------

# Ranked by score: + + - + - - . Precision/recall at each cut: 1/1 1/3, 2/2 2/3, 2/3 2/3,
# 3/4 1, 3/5 1, 3/6 1.
Y = [1, 1, 0, 1, 0, 0]
S = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]


def test_metrics_of_a_small_ranking_by_hand() -> None:
    metrics = classification_metrics(Y, S, precision_target=0.9)
    # Average precision: recall steps of 1/3 at precisions 1, 1 and 3/4.
    assert metrics["pr_auc"] == pytest.approx(1 / 3 + 1 / 3 + 1 / 3 * 3 / 4)
    # 8 of the 9 (positive, negative) pairs are ordered right: only 0.6 < 0.7.
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    assert metrics["recall_at_precision"] == pytest.approx(2 / 3)
    expected_log_loss = -sum(
        math.log(p) if y else math.log(1 - p) for y, p in zip(Y, S, strict=True)
    ) / len(Y)
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.49 + 0.16 + 0.25 + 0.16) / 6)
    assert metrics["positive_rate"] == 0.5
    assert metrics["n"] == 6.0


@pytest.mark.parametrize(
    ("target", "recall"),
    [(0.9, 2 / 3), (0.8, 2 / 3), (0.75, 1.0), (0.5, 1.0), (1.0, 2 / 3)],
)
def test_recall_at_precision_is_the_best_recall_reaching_the_target(
    target: float, recall: float
) -> None:
    assert classification_metrics(Y, S, precision_target=target)[
        "recall_at_precision"
    ] == pytest.approx(recall)


def test_perfect_ranking_scores_one() -> None:
    metrics = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert metrics["pr_auc"] == 1.0
    assert metrics["roc_auc"] == 1.0
    assert metrics["recall_at_precision"] == 1.0


def test_recall_at_an_unreachable_precision_is_zero() -> None:
    # The top-scored row is a negative and the only positive comes last: precision peaks at 1/2.
    metrics = classification_metrics([0, 0, 1], [0.9, 0.1, 0.05], precision_target=0.9)
    assert metrics["recall_at_precision"] == 0.0


def test_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    rng = np.random.default_rng(7)
    y = (rng.random(500) < 0.1).astype(int)
    s = np.clip(rng.random(500) * 0.5 + 0.4 * y, 0, 1)
    metrics = classification_metrics(y, s)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics["log_loss"] == pytest.approx(log_loss(y, s), rel=1e-9)
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    assert metrics["positive_rate"] == pytest.approx(y.mean())
    assert classification_metrics(y, s) == metrics  # deterministic


def test_log_loss_of_a_certain_mistake_is_large_but_finite() -> None:
    metrics = classification_metrics([1, 0], [0.0, 0.0])
    assert metrics["log_loss"] == pytest.approx(-math.log(1e-15) / 2)


@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        ([1, 1, 1], [0.2, 0.5, 0.9], "single class"),
        ([0, 1], [0.2], "2 values but y_score has 1"),
        ([0, 1], [0.2, 1.5], r"in \[0, 1\]"),
        ([0, 1], [0.2, float("nan")], "non-finite"),
        ([0, 2], [0.2, 0.5], "only 0 and 1"),
        ([], [], "no rows"),
    ],
)
def test_metrics_reject_bad_input(y_true: list, y_score: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, y_score)


# --- figures -------------------------------------------------------------------------------------


def test_pr_curve_of_one_model_has_its_curve_and_the_baselines() -> None:
    figure = pr_curve_figure(Y, S, label="logreg", precision_target=0.9)
    (ax,) = figure.axes
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["logreg (AP=0.917)", "no skill (0.5)", "precision target 0.9"]
    png = _png(figure)
    assert png.startswith(b"\x89PNG")


def test_pr_curve_compares_models_on_one_axes() -> None:
    figure = pr_curve_figure(curves={"candidate": (Y, S), "champion": (Y, S[::-1])})
    (ax,) = figure.axes
    # Two curves, one no-skill line (same holdout, same positive rate), no target line.
    assert len(ax.lines) == 3
    assert ax.lines[0].get_label().startswith("candidate")
    assert ax.lines[1].get_label().startswith("champion")
    # The curves may also come as the only positional argument.
    positional = pr_curve_figure({"candidate": (Y, S), "champion": (Y, S[::-1])})
    assert [line.get_label() for line in positional.axes[0].lines] == [
        line.get_label() for line in ax.lines
    ]


def test_calibration_figure_draws_observed_against_predicted_per_bin() -> None:
    y, s = [0, 0, 1, 1], [0.05, 0.15, 0.85, 0.95]
    figure = calibration_figure(curves={"a": (y, s), "b": (y, [0.5] * 4)}, n_bins=2)
    top, bottom = figure.axes
    assert [line.get_label() for line in top.lines] == ["calibrated", "a", "b"]
    np.testing.assert_allclose(top.lines[1].get_xdata(), [0.1, 0.9])
    np.testing.assert_allclose(top.lines[1].get_ydata(), [0.0, 1.0])
    np.testing.assert_allclose(top.lines[2].get_xdata(), [0.5])
    np.testing.assert_allclose(top.lines[2].get_ydata(), [0.5])
    assert len(bottom.patches) == 2  # one score histogram per model
    assert _png(figure).startswith(b"\x89PNG")


def test_calibration_bins_put_the_extremes_in_the_outer_bins() -> None:
    mean, rate, count = calibration_bins([0, 1, 1, 0], [0.0, 1.0, 0.95, 0.5], n_bins=4)
    np.testing.assert_allclose(mean, [0.0, 0.5, 0.975])
    np.testing.assert_allclose(rate, [0.0, 0.0, 1.0])
    assert count.tolist() == [1, 1, 2]
    _, _, count = calibration_bins([0, 1] * 5, np.linspace(0, 0.1, 10), 5, strategy="quantile")
    assert count.tolist() == [2, 2, 2, 2, 2]


def test_figures_want_one_model_or_curves_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        pr_curve_figure(Y, S, curves={"a": (Y, S)})
    with pytest.raises(ValueError, match="pass y_true and y_score"):
        calibration_figure()
    with pytest.raises(ValueError, match="single class"):
        pr_curve_figure([1, 1], [0.2, 0.3])


def _png(figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


# --- regression ---------------------------------------------------------------------------------


def test_regression_metrics_on_a_hand_made_example() -> None:
    metrics = regression_metrics([100.0, 200.0, 300.0, 0.0], [110.0, 190.0, 330.0, 10.0])
    assert metrics["rmse"] == pytest.approx(math.sqrt((100 + 100 + 900 + 100) / 4))
    assert metrics["mae"] == pytest.approx(15.0)
    # MAPE skips the row whose truth is 0: (10% + 5% + 10%) / 3.
    assert metrics["mape"] == pytest.approx(25 / 3)
    assert metrics["r2"] == pytest.approx(1 - 1200 / 50_000)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1, 1e6), min_size=2, max_size=50))
def test_perfect_predictions_score_zero_error(values: list[float]) -> None:
    metrics = regression_metrics(values, values)
    assert metrics["rmse"] == 0 and metrics["mae"] == 0 and metrics["mape"] == 0
    assert math.isnan(metrics["r2"]) or metrics["r2"] == 1.0


@pytest.mark.parametrize(
    ("truth", "pred", "match"),
    [
        ([1.0, 2.0], [1.0], "one length"),
        ([], [], "no rows"),
        ([1.0, 2.0], [1.0, math.nan], "finite"),
    ],
)
def test_regression_metrics_refuse_what_cannot_be_scored(truth, pred, match) -> None:
    with pytest.raises(ValueError, match=match):
        regression_metrics(truth, pred)


def test_residual_figure_has_both_panels() -> None:
    figure = residual_figure([1.0, 2.0, 3.0], [1.5, 1.5, 3.5], title="t")
    assert len(figure.axes) == 2
    assert figure.axes[0].get_xlabel() == "actual"
