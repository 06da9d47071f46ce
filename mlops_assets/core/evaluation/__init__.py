"""Model evaluation shared by every use case: splits, metrics, plots and the promotion gate.

* :func:`chronological_split` cuts a frame in time, so a model is validated on a period it never
  saw (a random split lets tomorrow's rows teach the model about today's) (:mod:`.splits`).
* :func:`classification_metrics` and :func:`regression_metrics` describe a model's predictions
  (:mod:`.metrics`); the figures draw them (:mod:`.figures`).
* Only the gate moves the ``champion`` alias (DESIGN.md §5). It compares the candidate's headline
  metric with the current champion's and promotes when the candidate is better by at least a
  stated margin, recording why either way. The decision is a pure function (:mod:`.gate`), so it
  is tested without MLflow; :meth:`mlops_assets.core.tracking.MlflowTracking.promote` applies it
  to the registry.

No domain in here, and no heavy import at module level: numpy, scikit-learn and matplotlib are
imported inside the functions that need them, because the code location imports this package.
"""

from mlops_assets.core.evaluation.figures import (
    calibration_figure,
    pr_curve_figure,
    residual_figure,
)
from mlops_assets.core.evaluation.gate import (
    Guardrail,
    PromotionDecision,
    PromotionRule,
    decide_promotion,
)
from mlops_assets.core.evaluation.metrics import (
    calibration_bins,
    classification_metrics,
    regression_metrics,
)
from mlops_assets.core.evaluation.splits import chronological_split

__all__ = [
    "Guardrail",
    "PromotionDecision",
    "PromotionRule",
    "calibration_bins",
    "calibration_figure",
    "chronological_split",
    "classification_metrics",
    "decide_promotion",
    "pr_curve_figure",
    "regression_metrics",
    "residual_figure",
]
