"""The holdout report: every holdout sale priced by the candidate and the champion, the figures
the promotion gate decides on.

The holdout (2022-2023 by default) is touched once, here: both contenders price the same sales
through THE inference path (:func:`mlops_assets.housing.inference.predict_records`), so what is
judged is what the API would answer. The report keeps, per contender, its predictions and the
version that made them; :func:`contender_metrics` reads the gate's evidence back from it.

Dagster is imported only for the metadata values; pandas and the plotting helpers are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_assets.housing import schema

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.housing.inference import HousingPriceModel

_PREDICTED = "predicted_"
_VERSION = "model_version_"


def holdout_report(
    holdout: pd.DataFrame, contenders: Mapping[str, tuple[str, HousingPriceModel]]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each holdout sale priced by each contender (``role -> (version, bundle)``).

    Returns the report (key, date, price, then ``predicted_<role>`` and ``model_version_<role>``
    per contender) and its metadata: RMSE, MAE, MAPE and R² of each (``<role>/<metric>``), its
    residual plot, the categories it never saw, a table of all and the count of sales.
    """
    import dagster as dg
    import pandas as pd

    from mlops_assets.core import evaluation, reporting
    from mlops_assets.housing import inference

    frame = holdout[[schema.KEY, schema.DATE, schema.TARGET]].copy()
    metadata: dict[str, Any] = {}
    table = []
    for role, (version, bundle) in contenders.items():
        predicted, prepared = inference.predict_records(
            bundle, holdout[list(schema.FEATURE_INPUTS)]
        )
        frame[f"{_PREDICTED}{role}"] = predicted
        frame[f"{_VERSION}{role}"] = version
        metrics = evaluation.regression_metrics(holdout[schema.TARGET], predicted)
        table.append(
            {"model": f"{role} v{version}", **{k: round(v, 4) for k, v in metrics.items()}}
        )
        metadata.update({f"{role}/{k}": v for k, v in metrics.items()})
        metadata[f"{role}/residuals"] = reporting.figure_markdown(
            evaluation.residual_figure(
                holdout[schema.TARGET], predicted, title=f"{role} v{version} on the holdout"
            ),
            alt=f"{role} residuals",
        )
        if prepared.unseen:
            metadata[f"{role}/unseen_categories"] = dg.MetadataValue.json(prepared.unseen)
    metadata["metrics"] = dg.MetadataValue.md(reporting.markdown_table(table, list(table[0])))
    metadata["holdout_sales"] = len(frame)
    return pd.DataFrame(frame), metadata


def contender_metrics(
    report: pd.DataFrame,
) -> tuple[str, str | None, dict[str, dict[str, float]]]:
    """What the gate needs from a holdout report: the candidate's version, the champion's it
    was compared with (``None``: there was none) and each contender's metrics, by role, measured
    again from the report's predictions."""
    from mlops_assets.core import evaluation

    truth = report[schema.TARGET]
    metrics = {
        role: evaluation.regression_metrics(truth, report[f"{_PREDICTED}{role}"])
        for role in ("candidate", "champion")
        if f"{_PREDICTED}{role}" in report
    }

    def version(role: str) -> str | None:
        column = f"{_VERSION}{role}"
        return str(report[column].iloc[0]) if column in report else None

    return str(version("candidate")), version("champion"), metrics
