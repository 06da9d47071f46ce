"""Figures of a model's evaluation, for its run and its promotion report.

Precision-recall and calibration curves of one or several binary classifiers (a candidate beside
the champion, on the same holdout) and the residuals of a regressor. Each returns a bare matplotlib
``Figure``; matplotlib and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from mlops_assets.core.evaluation.metrics import binary_inputs, calibration_bins

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

Curves = Mapping[str, tuple["ArrayLike", "ArrayLike"]]


def _curves(
    y_true: ArrayLike | Curves | None,
    y_score: ArrayLike | None,
    curves: Curves | None,
    label: str,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One model given as ``y_true, y_score`` or several as ``curves``, checked, in a dict.

    ``curves`` may also come first and alone (``pr_curve_figure({"a": (y, s)})``).
    """
    if isinstance(y_true, Mapping) and y_score is None and curves is None:
        y_true, curves = None, y_true
    if curves is None:
        if y_true is None or y_score is None:
            raise ValueError("pass y_true and y_score, or curves={name: (y_true, y_score)}")
        curves = {label: (y_true, y_score)}
    elif y_true is not None or y_score is not None:
        raise ValueError("pass either y_true and y_score or curves, not both")
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    checked = {}
    for name, (labels, scores) in curves.items():
        labels, scores = binary_inputs(labels, scores)
        if labels.min() == labels.max():
            raise ValueError(f"{name!r}: y_true has a single class; the curve is undefined")
        checked[name] = (labels, scores)
    return checked


def _new_figure(**kwargs: Any) -> Figure:
    # A bare Figure, not pyplot: no process-wide figure registry to leak into (an asset plots on
    # every run) and no GUI backend to pick; savefig renders with Agg.
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def pr_curve_figure(
    y_true: ArrayLike | Curves | None = None,
    y_score: ArrayLike | None = None,
    *,
    curves: Curves | None = None,
    label: str = "model",
    title: str = "Precision-recall curve",
    precision_target: float | None = None,
) -> Figure:
    """The precision-recall curve of one model (``y_true, y_score``) or several (``curves``,
    ``{name: (y_true, y_score)}``, by keyword or as the only positional argument).

    Several models on one figure let a reader compare a candidate with the champion on the same
    holdout. Each curve's legend shows its average precision. A dashed line marks the precision of
    guessing (the positive rate; one per distinct rate), and a dotted line ``precision_target``
    when given. Returns a matplotlib ``Figure`` (not registered with pyplot).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    checked = _curves(y_true, y_score, curves, label)
    figure = _new_figure(figsize=(6, 4.5))
    ax = figure.add_subplot()
    for name, (labels, scores) in checked.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision_score(labels, scores)
        ax.plot(recall, precision, drawstyle="steps-post", label=f"{name} (AP={ap:.3f})")
    for rate in sorted({round(float(labels.mean()), 6) for labels, _ in checked.values()}):
        ax.axhline(rate, linestyle="--", color="grey", linewidth=1, label=f"no skill ({rate:.3g})")
    if precision_target is not None:
        ax.axhline(
            precision_target,
            linestyle=":",
            color="black",
            linewidth=1,
            label=f"precision target {precision_target:g}",
        )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="upper right", fontsize="small")
    return figure


def calibration_figure(
    y_true: ArrayLike | Curves | None = None,
    y_score: ArrayLike | None = None,
    *,
    curves: Curves | None = None,
    label: str = "model",
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
    title: str = "Calibration",
) -> Figure:
    """Reliability diagram: observed positive rate against mean predicted probability per bin.

    A calibrated model lies on the diagonal; above it the model under-states the risk, below it
    over-states it (class-weighted models do, by design). Bins are ``n_bins`` equal widths of
    [0, 1] or, with ``strategy="quantile"``, equal counts of each model's scores; empty bins are
    not drawn. A second panel shows how many scores fall in each bin (log scale: rare positives
    put most scores near 0). One model as ``y_true, y_score`` or several as ``curves``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, not {n_bins}")
    checked = _curves(y_true, y_score, curves, label)
    figure = _new_figure(figsize=(6, 6))
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="calibrated")
    for name, (labels, scores) in checked.items():
        mean_score, positive_rate, _ = calibration_bins(labels, scores, n_bins, strategy)
        top.plot(mean_score, positive_rate, marker="o", label=name)
        bottom.hist(
            scores, bins=n_bins if strategy == "uniform" else 50, range=(0, 1), histtype="step"
        )
    top.set(ylabel="observed positive rate", xlim=(0, 1), ylim=(-0.02, 1.02), title=title)
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="mean predicted probability", ylabel="rows", yscale="log")
    return figure


def residual_figure(y_true: ArrayLike, y_pred: ArrayLike, *, title: str = "Residuals") -> Figure:
    """Predicted against actual (with the diagonal) and the histogram of residuals."""
    import numpy as np

    truth = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    figure = _new_figure(figsize=(9, 3.6))
    scatter, histogram = figure.subplots(1, 2)
    scatter.scatter(truth, pred, s=4, alpha=0.4)
    low, high = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    scatter.plot([low, high], [low, high], color="black", linewidth=0.8)
    scatter.set_xlabel("actual")
    scatter.set_ylabel("predicted")
    histogram.hist(pred - truth, bins=50)
    histogram.set_xlabel("predicted - actual")
    histogram.set_ylabel("rows")
    figure.suptitle(title)
    return figure
