"""How good a model's predictions are, as plain numbers to log and to promote on.

:func:`classification_metrics` describes a binary classifier's scores (ranking, probability
quality), :func:`calibration_bins` how well they estimate the observed rate, and
:func:`regression_metrics` a regressor's errors. numpy and scikit-learn are imported inside the
functions: the code location imports this module.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

# --- binary classifier ---------------------------------------------------------------------------

# Probabilities are clipped this far from 0 and 1 for the log loss: one confident mistake must
# cost a lot, not infinity.
_LOG_LOSS_EPS = 1e-15
# Precision is a ratio of integers computed in floating point: 9/10 must count as reaching 0.9.
_PRECISION_TOLERANCE = 1e-12


def binary_inputs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` as 0/1 integers and ``y_score`` as float probabilities, or a clear ValueError.

    Every metric and figure of a classifier checks its inputs here first, so a label column of
    strings or a score outside [0, 1] is refused with the same message everywhere."""
    import numpy as np

    labels = np.asarray(y_true)
    scores = np.asarray(y_score, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1:
        raise ValueError(
            f"y_true and y_score must be 1-D, not of shapes {labels.shape} and {scores.shape}"
        )
    if len(labels) != len(scores):
        raise ValueError(f"y_true has {len(labels)} values but y_score has {len(scores)}")
    if len(labels) == 0:
        raise ValueError("cannot evaluate a classifier on no rows")
    try:
        numeric = labels.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y_true must hold 0/1 labels, not {labels.dtype}") from exc
    if not np.isin(numeric, (0.0, 1.0)).all():
        odd = np.unique(labels[~np.isin(numeric, (0.0, 1.0))])[:5].tolist()
        raise ValueError(f"y_true must hold only 0 and 1 (binary labels); found {odd}")
    if not np.isfinite(scores).all():
        raise ValueError(f"y_score has {int((~np.isfinite(scores)).sum())} non-finite value(s)")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError(
            "y_score must be probabilities of the positive class in [0, 1]; "
            f"found [{scores.min():.6g}, {scores.max():.6g}]"
        )
    return numeric.astype(np.int64), scores


def classification_metrics(
    y_true: ArrayLike, y_score: ArrayLike, *, precision_target: float = 0.9
) -> dict[str, float]:
    """How well scores rank and estimate the probability of the positive (rare) class.

    * ``pr_auc``: average precision, the headline for rare positives (a model that ranks fraud
      first scores 1; guessing scores the positive rate);
    * ``roc_auc``: the chance a random positive is scored above a random negative;
    * ``recall_at_precision``: the largest share of positives caught at a threshold whose
      precision is at least ``precision_target`` (how much fraud can be blocked while at most
      1 - target of the blocked payments are genuine); 0.0 when no threshold reaches it;
    * ``log_loss`` (probabilities clipped to [1e-15, 1 - 1e-15]) and ``brier``: how good the
      scores are as probabilities (lower is better);
    * ``positive_rate`` and ``n``: what the figures were measured on.

    Deterministic. ``y_true`` holds 0/1 labels with both classes present, ``y_score`` the
    probability of class 1; anything else raises ``ValueError``.
    """
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    if not 0.0 < precision_target <= 1.0:
        raise ValueError(f"precision_target must be in (0, 1], not {precision_target}")
    labels, scores = binary_inputs(y_true, y_score)
    n_positive = int(labels.sum())
    if n_positive in (0, len(labels)):
        raise ValueError(
            f"y_true has a single class ({len(labels)} row(s), all {labels[0]}): ranking metrics "
            "need both positives and negatives"
        )
    precision, recall, _ = precision_recall_curve(labels, scores)
    reachable = precision >= precision_target - _PRECISION_TOLERANCE
    # The curve ends at (recall 0, precision 1), so an unreachable target gives 0.0, not an error.
    recall_at_precision = float(recall[reachable].max()) if reachable.any() else 0.0
    clipped = np.clip(scores, _LOG_LOSS_EPS, 1.0 - _LOG_LOSS_EPS)
    log_loss = -float(np.mean(labels * np.log(clipped) + (1 - labels) * np.log1p(-clipped)))
    return {
        "pr_auc": float(average_precision_score(labels, scores)),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "recall_at_precision": recall_at_precision,
        "log_loss": log_loss,
        "brier": float(np.mean((scores - labels) ** 2)),
        "positive_rate": n_positive / len(labels),
        "n": float(len(labels)),
    }


def calibration_bins(
    y_true: ArrayLike,
    y_score: ArrayLike,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin of scores: mean score, observed positive rate and row count.

    ``uniform`` bins are equal widths of [0, 1] (a score of exactly 1 belongs to the last bin);
    ``quantile`` bins hold about equal numbers of rows (duplicate edges merged).
    """
    import numpy as np

    labels, scores = binary_inputs(y_true, y_score)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1)))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', not {strategy!r}")
    # Inner edges only: scores below the first inner edge fall in bin 0, at or above the last one
    # in the last bin, so 0 and 1 need no special case.
    index = np.searchsorted(edges[1:-1], scores, side="right")
    counts = np.bincount(index, minlength=len(edges) - 1)
    sums = np.bincount(index, weights=scores, minlength=len(edges) - 1)
    positives = np.bincount(index, weights=labels, minlength=len(edges) - 1)
    filled = counts > 0
    return sums[filled] / counts[filled], positives[filled] / counts[filled], counts[filled]


# --- regression ----------------------------------------------------------------------------------


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """``rmse``, ``mae``, ``mape`` (percent, over the rows whose truth is not 0) and ``r2``.

    Raises ValueError on lengths that differ, an empty input or a non-finite value: a metric of a
    model that predicted NaN is not a number to promote on.
    """
    import numpy as np

    truth = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if truth.shape != pred.shape or truth.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D of one length: {truth.shape} vs {pred.shape}"
        )
    if not len(truth):
        raise ValueError("no rows to evaluate")
    if not (np.isfinite(truth).all() and np.isfinite(pred).all()):
        raise ValueError("y_true and y_pred must be finite (a NaN prediction is not scorable)")
    error = pred - truth
    nonzero = truth != 0
    total = float(((truth - truth.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((error**2).mean())),
        "mae": float(np.abs(error).mean()),
        "mape": float(np.abs(error[nonzero] / truth[nonzero]).mean() * 100)
        if nonzero.any()
        else math.nan,
        "r2": 1.0 - float((error**2).sum()) / total if total > 0 else math.nan,
    }
