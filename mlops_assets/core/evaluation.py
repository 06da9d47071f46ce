"""Model evaluation shared by every use case: splits, metrics, plots and the promotion gate.

* :func:`chronological_split` cuts a frame in time, so a model is validated on a period it never
  saw (a random split lets tomorrow's rows teach the model about today's).
* :func:`classification_metrics` and the figures describe a binary classifier's scores.
* Only the gate moves the ``champion`` alias (DESIGN.md §5). It compares the candidate's headline
  metric with the current champion's and promotes when the candidate is better by at least a
  stated margin, recording why either way. The decision is a pure function here, so it is tested
  without MLflow; :meth:`mlops_assets.core.tracking.MlflowTracking.promote` applies it to the
  registry.

No domain in here, and no heavy import at module level: numpy, scikit-learn and matplotlib are
imported inside the functions that need them, because the code location imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

Frame = TypeVar("Frame")  # a pandas or a polars DataFrame; the split returns the same kind


@dataclass(frozen=True)
class Guardrail:
    """A metric the candidate may not lose by more than ``max_regression`` against the champion,
    even when it wins on the headline metric (e.g. recall at 90% precision for a fraud model
    that gains PR-AUC elsewhere on the curve)."""

    metric: str
    higher_is_better: bool
    max_regression: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.max_regression) or self.max_regression < 0:
            raise ValueError(
                f"max_regression of {self.metric} must be a finite number >= 0, "
                f"not {self.max_regression}"
            )


@dataclass(frozen=True)
class PromotionRule:
    """How candidates are judged: one metric, its direction, the margin a candidate must win by,
    and the guardrails it must not break.

    ``min_improvement`` is absolute, in the metric's units (0.005 of PR-AUC, 2 MW of RMSE): a
    candidate that is better only by noise does not replace a champion that serves well.
    ``min_relative_improvement`` is a share of the champion's value (0.01: better by more than
    1%), for metrics whose scale depends on the data (the RMSE of a big region's demand, of
    house prices); the larger of the two margins applies.
    """

    metric: str
    higher_is_better: bool
    min_improvement: float = 0.0
    guardrails: tuple[Guardrail, ...] = ()
    min_relative_improvement: float = 0.0

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("a promotion rule needs a metric name")
        for name in ("min_improvement", "min_relative_improvement"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, not {value}")

    def margin(self, champion_value: float) -> float:
        """What a candidate must win by against a champion scoring ``champion_value``."""
        return max(self.min_improvement, self.min_relative_improvement * abs(champion_value))


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict on one candidate, with the figures it was based on."""

    promote: bool
    reason: str
    metric: str
    candidate_value: float | None
    champion_value: float | None
    champion_version: str | None = None

    @property
    def improvement(self) -> float | None:
        """Candidate minus champion, signed so that positive means better."""
        if self.candidate_value is None or self.champion_value is None:
            return None
        return self.candidate_value - self.champion_value

    def as_metadata(self) -> dict[str, object]:
        """Plain values for the champion asset's materialization metadata."""
        return {
            "promotion/decision": "promoted" if self.promote else "kept",
            "promotion/reason": self.reason,
            "promotion/metric": self.metric,
            "promotion/candidate_value": self.candidate_value,
            "promotion/champion_value": self.champion_value,
            "promotion/previous_champion_version": self.champion_version,
        }


def _gain(candidate: float, champion: float, higher_is_better: bool) -> float:
    return candidate - champion if higher_is_better else champion - candidate


def decide_promotion(
    rule: PromotionRule,
    candidate_metrics: Mapping[str, float] | None,
    champion_metrics: Mapping[str, float] | None,
    *,
    has_champion: bool,
    champion_version: str | None = None,
) -> PromotionDecision:
    """Whether a candidate with ``candidate_metrics`` should replace the current champion.

    * A candidate without a finite value of the metric is never promoted: it was not evaluated.
    * With no champion yet, a finite candidate is promoted.
    * A champion without a finite value (e.g. trained before the metric existed) cannot be
      compared: the candidate, which was measured, is promoted, and the reason says so.
    * Otherwise the candidate must beat the champion by more than ``min_improvement`` (a tie is
      not an improvement, so re-training on the same data never churns the champion), and lose
      no guardrail metric by more than its ``max_regression``. A guardrail either model lacks
      blocks the promotion: an unmeasured risk is not taken.
    """
    metric, direction = rule.metric, "higher" if rule.higher_is_better else "lower"
    candidate_metrics, champion_metrics = candidate_metrics or {}, champion_metrics or {}
    candidate_value = _finite_or_none(candidate_metrics.get(metric))
    champion_value = _finite_or_none(champion_metrics.get(metric))

    def decision(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote=promote,
            reason=reason,
            metric=metric,
            candidate_value=candidate_value,
            champion_value=champion_value,
            champion_version=champion_version,
        )

    if candidate_value is None:
        shown = candidate_metrics.get(metric)
        return decision(False, f"candidate has no finite {metric} ({shown!r}); not evaluated")
    if not has_champion:
        return decision(True, f"no champion yet; candidate {metric}={candidate_value:.6g}")
    if champion_value is None:
        return decision(
            True,
            f"champion v{champion_version} has no {metric} to compare; "
            f"candidate {metric}={candidate_value:.6g} replaces it",
        )
    gain = _gain(candidate_value, champion_value, rule.higher_is_better)
    versus = f"{metric} {candidate_value:.6g} vs champion v{champion_version} {champion_value:.6g}"
    if gain <= 0:
        return decision(False, f"{versus}: not better ({direction} is better)")
    margin = rule.margin(champion_value)
    if gain <= margin:
        return decision(False, f"{versus}: better by {gain:.6g}, within the margin of {margin:.6g}")
    for guard in rule.guardrails:
        ours = _finite_or_none(candidate_metrics.get(guard.metric))
        theirs = _finite_or_none(champion_metrics.get(guard.metric))
        if ours is None or theirs is None:
            return decision(False, f"{versus}, but guardrail {guard.metric} is not measured")
        loss = -_gain(ours, theirs, guard.higher_is_better)
        if loss > guard.max_regression:
            return decision(
                False,
                f"{versus}: better by {gain:.6g}, but {guard.metric} {ours:.6g} vs "
                f"{theirs:.6g} is worse by {loss:.6g} (allowed {guard.max_regression:.6g})",
            )
    guarded = f"; guardrails held ({', '.join(g.metric for g in rule.guardrails)})"
    return decision(
        True,
        f"{versus}: better by {gain:.6g} ({direction} is better)"
        + (guarded if rule.guardrails else ""),
    )


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- chronological split --------------------------------------------------------------------------


def _is_polars(frame: Any) -> bool:
    # By module name, so that pandas-only callers never pay for importing polars.
    return type(frame).__module__.split(".", 1)[0] == "polars"


def _classes(labels: Any, polars: bool) -> set[Any]:
    """The distinct non-null values of a label column."""
    if polars:
        return set(labels.drop_nulls().unique().to_list())
    return set(labels.dropna().unique().tolist())


def chronological_split(
    frame: Frame,
    time_col: str,
    validation_fraction: float = 0.2,
    *,
    label_col: str | None = None,
) -> tuple[Frame, Frame]:
    """Split ``frame`` in time: the latest ``validation_fraction`` of rows validate the rest.

    The boundary is the timestamp of the first validation row in time order. Every training row is
    strictly earlier, and rows that share the boundary timestamp all go to validation, so the two
    periods never overlap (a tie split across both sides would let the model train on the very
    instant it is judged on). Ties can therefore make the validation side somewhat larger than
    asked. Both sides come back sorted by ``time_col`` (stable, so tied rows keep their order), as
    the same kind of frame as the input: pandas (index kept) or polars.

    With ``label_col``, both sides must hold every class the frame holds: a validation period
    without a single fraud cannot measure a fraud model, and a training period without one cannot
    fit it. Raises ``ValueError`` saying which side is empty or lacks which class.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), not {validation_fraction}")
    polars = _is_polars(frame)
    columns = list(frame.columns)
    for column in (time_col, label_col):
        if column is not None and column not in columns:
            raise ValueError(f"cannot split on {column!r}: the frame has no such column")
    n_rows = len(frame)
    if n_rows < 2:
        raise ValueError(f"cannot split {n_rows} row(s) into a training and a validation period")
    times = frame[time_col]
    n_null = int(times.null_count() if polars else times.isna().sum())
    if n_null:
        raise ValueError(f"{n_null} row(s) have a null {time_col!r}: they have no place in time")

    # At least one row on each side before ties are resolved; round(), not ceil(): 10 * 0.2 is
    # 2.0000000000000004 in floating point.
    n_validation = min(n_rows - 1, max(1, round(n_rows * validation_fraction)))
    if polars:
        ordered = frame.sort(time_col, maintain_order=True)
        boundary = ordered[time_col][n_rows - n_validation]
        later = ordered[time_col] >= boundary
        train, validation = ordered.filter(~later), ordered.filter(later)
    else:
        ordered = frame.sort_values(time_col, kind="mergesort")  # mergesort is stable
        boundary = ordered[time_col].iloc[n_rows - n_validation]
        later = (ordered[time_col] >= boundary).to_numpy()
        train, validation = ordered[~later], ordered[later]

    if len(train) == 0:
        raise ValueError(
            f"validation_fraction={validation_fraction} leaves no training rows: all {n_rows} "
            f"rows are at or after {time_col}={boundary} (the boundary cannot split a timestamp)"
        )
    if label_col is not None:
        classes = _classes(frame[label_col], polars)
        if len(classes) < 2:
            raise ValueError(
                f"{label_col!r} has a single class {sorted(classes)} in all {n_rows} rows: "
                "nothing to learn or to validate"
            )
        for side, part in (("training", train), ("validation", validation)):
            if missing := classes - _classes(part[label_col], polars):
                raise ValueError(
                    f"the {side} period ({len(part)} rows, boundary {time_col}={boundary}) has no "
                    f"row of class {sorted(missing)} in {label_col!r}; widen the window or change "
                    f"validation_fraction={validation_fraction}"
                )
    return train, validation


# --- metrics of a binary classifier ---------------------------------------------------------------

# Probabilities are clipped this far from 0 and 1 for the log loss: one confident mistake must
# cost a lot, not infinity.
_LOG_LOSS_EPS = 1e-15
# Precision is a ratio of integers computed in floating point: 9/10 must count as reaching 0.9.
_PRECISION_TOLERANCE = 1e-12


def _binary_inputs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` as 0/1 integers and ``y_score`` as float probabilities, or a clear ValueError."""
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
    labels, scores = _binary_inputs(y_true, y_score)
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


# --- figures ----------------------------------------------------------------------------------------

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
        labels, scores = _binary_inputs(labels, scores)
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

    labels, scores = _binary_inputs(y_true, y_score)
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
