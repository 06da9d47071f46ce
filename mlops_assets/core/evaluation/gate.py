"""The promotion gate: whether a candidate model replaces the serving champion.

Only the gate moves the ``champion`` alias (DESIGN.md §5). It compares the candidate's headline
metric with the current champion's and promotes when the candidate is better by at least a stated
margin, without losing a guardrail metric, recording why either way. The decision is a pure
function here, so it is tested without MLflow;
:meth:`mlops_assets.core.tracking.MlflowTracking.promote` applies it to the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


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
