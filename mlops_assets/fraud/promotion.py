"""How the fraud champion is decided: the candidate and the current champion score the same
holdout, the chronologically last part of the day's approved training set, and the candidate
replaces the champion only if it gains at least a margin in PR-AUC without losing more than a
guardrail in recall at the target precision (a model that ranks better on average but catches
fewer frauds at the operating point would not serve better).

The flow around it (contenders by version, the gate under the model's lock, the alias) is
:mod:`mlops_assets.core.champion`; here is what is fraud's own: the holdout, the rule and the
evidence shown on the champion's materialization.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_assets.core.evaluation import PromotionRule

LABEL = "is_fraud"
TIME_COLUMN = "event_ts"


def holdout(frame: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """The latest ``fraction`` of ``frame`` by event time (ties kept together): data neither
    contender was fitted on."""
    from mlops_assets.core.evaluation import chronological_split

    _, latest = chronological_split(frame, TIME_COLUMN, fraction, label_col=LABEL)
    return latest


def rule(*, min_pr_auc_gain: float, max_recall_loss: float) -> PromotionRule:
    """The gate: PR-AUC up by ``min_pr_auc_gain``, recall at the target precision down by at
    most ``max_recall_loss``."""
    from mlops_assets.core.evaluation import Guardrail, PromotionRule

    return PromotionRule(
        metric="pr_auc",
        higher_is_better=True,
        min_improvement=min_pr_auc_gain,
        guardrails=(Guardrail("recall_at_precision", True, max_recall_loss),),
    )


def metrics(
    holdout: pd.DataFrame, scores: Mapping[str, np.ndarray], precision_target: float
) -> dict[str, dict[str, float]]:
    """Each contender's metrics (by role) from its fraud probabilities on ``holdout``."""
    from mlops_assets.core.evaluation import classification_metrics

    y = holdout[LABEL].to_numpy()
    return {
        role: classification_metrics(y, s, precision_target=precision_target)
        for role, s in scores.items()
    }


def evidence(
    holdout: pd.DataFrame,
    scores: Mapping[str, np.ndarray],
    metrics: Mapping[str, Mapping[str, float]],
    *,
    precision_target: float,
    manifest: Mapping[str, Any],
    fraction: float,
) -> dict[str, Any]:
    """What the champion's materialization shows beside the decision: the holdout (its size and
    which training set version it is the end of: ``manifest``), the contenders' metrics side by
    side and their PR curves."""
    from mlops_assets.core import reporting
    from mlops_assets.core.evaluation import pr_curve_figure

    y = holdout[LABEL].to_numpy()
    figure = pr_curve_figure(
        curves={role: (y, s) for role, s in scores.items()},
        precision_target=precision_target,
        title="Candidate vs champion on the latest holdout",
    )
    table = [
        {"model": role, **{k: round(v, 4) for k, v in m.items()}} for role, m in metrics.items()
    ]
    return {
        "holdout_rows": len(holdout),
        "holdout": f"training set {manifest['dt']} (run {manifest['run_id']}), last "
        f"{fraction:.0%} by time",
        "scores": dg.MetadataValue.md(reporting.markdown_table(table, list(table[0]))),
        "pr_curves": reporting.figure_markdown(figure, alt="PR curves on the holdout"),
    }
