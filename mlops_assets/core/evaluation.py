"""Model evaluation shared by every use case: the promotion gate.

Only the gate moves the ``champion`` alias (DESIGN.md §5). It compares the candidate's headline
metric with the current champion's and promotes when the candidate is better by at least a stated
margin, recording why either way. The decision is a pure function here, so it is tested without
MLflow; :meth:`mlops_assets.core.tracking.MlflowTracking.promote` applies it to the registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PromotionRule:
    """How candidates are judged: one metric, its direction, and the margin a candidate must win by.

    ``min_improvement`` is absolute, in the metric's units (0.005 of PR-AUC, 2 MW of RMSE): a
    candidate that is better only by noise does not replace a champion that serves well.
    """

    metric: str
    higher_is_better: bool
    min_improvement: float = 0.0

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("a promotion rule needs a metric name")
        if not math.isfinite(self.min_improvement) or self.min_improvement < 0:
            raise ValueError(
                f"min_improvement must be a finite number >= 0, not {self.min_improvement}"
            )


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


def decide_promotion(
    rule: PromotionRule,
    candidate_value: float | None,
    champion_value: float | None,
    *,
    has_champion: bool,
    champion_version: str | None = None,
) -> PromotionDecision:
    """Whether a candidate with ``candidate_value`` should replace the current champion.

    * A candidate without a finite value of the metric is never promoted: it was not evaluated.
    * With no champion yet, a finite candidate is promoted.
    * A champion without a finite value (e.g. trained before the metric existed) cannot be
      compared: the candidate, which was measured, is promoted, and the reason says so.
    * Otherwise the candidate must beat the champion by more than ``min_improvement``; a tie is
      not an improvement, so re-training on the same data never churns the champion.
    """
    metric, direction = rule.metric, "higher" if rule.higher_is_better else "lower"

    def decision(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote=promote,
            reason=reason,
            metric=metric,
            candidate_value=_finite_or_none(candidate_value),
            champion_value=_finite_or_none(champion_value),
            champion_version=champion_version,
        )

    if _finite_or_none(candidate_value) is None:
        return decision(
            False, f"candidate has no finite {metric} ({candidate_value!r}); not evaluated"
        )
    if not has_champion:
        return decision(True, f"no champion yet; candidate {metric}={candidate_value:.6g}")
    if _finite_or_none(champion_value) is None:
        return decision(
            True,
            f"champion v{champion_version} has no {metric} to compare; "
            f"candidate {metric}={candidate_value:.6g} replaces it",
        )
    gain = (
        candidate_value - champion_value
        if rule.higher_is_better
        else champion_value - candidate_value
    )
    versus = f"{metric} {candidate_value:.6g} vs champion v{champion_version} {champion_value:.6g}"
    if gain > rule.min_improvement:
        return decision(True, f"{versus}: better by {gain:.6g} ({direction} is better)")
    if gain > 0:
        return decision(
            False,
            f"{versus}: better by {gain:.6g}, within the margin of {rule.min_improvement:.6g}",
        )
    return decision(False, f"{versus}: not better ({direction} is better)")


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
