"""How well a serving model performs on the truth that arrived after it predicted.

Labels come late (a chargeback lands days after the payment; a demand actual an hour or more
after the forecast), so a day's figures are measured on the rows whose truth is known so far and
always say how many that is. One row per group (model version, day, source...):

* :func:`classification_performance`: PR-AUC, ROC-AUC, recall at a precision target, precision
  of the top-k alerts and Brier score of a binary classifier, with its label coverage;
* :func:`regression_errors`: RMSE, MAE, MAPE and bias of a regressor.

The metrics are the ones the model was validated with (:mod:`mlops_assets.core.evaluation`),
so a live figure can be put beside the promised one. Groups are found once for the whole frame
(one ``groupby(...).ngroup()`` and one stable sort), not by filtering the frame per group.

Pure: no Dagster; numpy, pandas and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CLASSIFICATION_COLUMNS = (
    "rows",
    "labelled",
    "label_coverage",
    "positives",
    "pr_auc",
    "roc_auc",
    "recall_at_precision",
    "precision_at_top_k",
    "brier",
)
REGRESSION_COLUMNS = ("rows", "labelled", "rmse", "mae", "mape", "bias")


def _groups(frame: pd.DataFrame, by: Sequence[str]) -> tuple[pd.DataFrame, Iterator[np.ndarray]]:
    """The groups of ``by`` (sorted, a missing key being a group of its own) with their sizes,
    and the row positions of each group in the same order.

    Without ``by`` the whole frame is one group (none when it is empty).
    """
    import numpy as np
    import pandas as pd

    by = list(by)
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise KeyError(f"frame has no column(s) {missing} to group by")
    if not by:
        keys = pd.DataFrame({"rows": [len(frame)]} if len(frame) else {"rows": []})
        codes = np.zeros(len(frame), dtype=np.int64)
    else:
        # dropna=False: a row whose model version is unknown is a group, never silently lost.
        grouped = frame.groupby(by, sort=True, dropna=False, observed=True)
        keys = grouped.size().rename("rows").reset_index()
        codes = grouped.ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(keys)))])
    positions = (order[bounds[g] : bounds[g + 1]] for g in range(len(keys)))
    keys["rows"] = keys["rows"].astype("int64")
    return keys, positions


def _truth(frame: pd.DataFrame, column: str) -> np.ndarray:
    import numpy as np
    import pandas as pd

    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = pd.to_numeric(values, errors="raise")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def classification_performance(
    frame: pd.DataFrame,
    *,
    label: str,
    score: str,
    by: Sequence[str],
    precision_target: float = 0.9,
    top_k: int = 100,
) -> pd.DataFrame:
    """A binary classifier's live performance per group of ``by`` (sorted by ``by``).

    ``label`` holds 0/1, or null while the label is not known yet; ``score`` the probability of
    class 1. Columns: the ``by`` columns, ``rows``, ``labelled`` (rows whose label is known),
    ``label_coverage`` (labelled / rows), ``positives`` (labelled rows of class 1), then over the
    labelled rows only: ``pr_auc``, ``roc_auc``, ``recall_at_precision`` (at
    ``precision_target``; see :func:`~mlops_assets.core.evaluation.classification_metrics`),
    ``precision_at_top_k`` (share of fraud among the k highest scores, k = min(``top_k``,
    labelled); ties broken by row order) and ``brier``.

    The metrics are NaN, never an exception, for a group with fewer than 2 labelled rows or a
    single class among them: such a day is "insufficient data", not a bad model. A label other
    than 0/1 or a score outside [0, 1] on a labelled row raises ``ValueError``.
    """
    import numpy as np
    import pandas as pd

    from mlops_assets.core.evaluation.metrics import binary_inputs, classification_metrics

    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    keys, positions = _groups(frame, by)
    labels = _truth(frame, label)
    scores = frame[score].to_numpy(dtype=np.float64, na_value=np.nan)
    known = ~np.isnan(labels)
    if known.any():
        binary_inputs(labels[known], scores[known])  # one clear error for the whole frame

    records = []
    for rows in positions:
        rows = rows[known[rows]]
        y, s = labels[rows].astype(np.int64), scores[rows]
        positives = int(y.sum())
        record = {"labelled": len(rows), "positives": positives}
        if len(rows) >= 2 and 0 < positives < len(rows):
            metrics = classification_metrics(y, s, precision_target=precision_target)
            top = np.argsort(-s, kind="stable")[: min(top_k, len(rows))]
            record |= {
                "pr_auc": metrics["pr_auc"],
                "roc_auc": metrics["roc_auc"],
                "recall_at_precision": metrics["recall_at_precision"],
                "precision_at_top_k": float(y[top].mean()),
                "brier": metrics["brier"],
            }
        records.append(record)
    out = keys.join(pd.DataFrame(records, index=keys.index, columns=CLASSIFICATION_COLUMNS[1:]))
    out["labelled"] = out["labelled"].astype("int64")
    out["positives"] = out["positives"].astype("int64")
    out["label_coverage"] = out["labelled"] / out["rows"]
    return out[[*by, *CLASSIFICATION_COLUMNS]].astype(
        {c: "float64" for c in CLASSIFICATION_COLUMNS[4:]}
    )


def regression_errors(
    frame: pd.DataFrame, *, actual: str, predicted: str, by: Sequence[str]
) -> pd.DataFrame:
    """A regressor's realized errors per group of ``by`` (sorted by ``by``).

    Columns: the ``by`` columns, ``rows``, ``labelled`` (rows with both an actual and a
    prediction: the errors are measured on these; an actual not arrived yet is counted in
    ``rows`` only), ``rmse``, ``mae``, ``mape`` (in percent, like
    :func:`~mlops_assets.core.evaluation.regression_metrics`, over the rows whose actual is not
    0; NaN when there is none) and ``bias`` (mean of predicted - actual: positive means the
    model over-forecasts). All NaN for a group with no labelled row.
    """
    import numpy as np
    import pandas as pd

    keys, positions = _groups(frame, by)
    truth = _truth(frame, actual)
    pred = _truth(frame, predicted)
    measured = np.isfinite(truth) & np.isfinite(pred)

    records = []
    for rows in positions:
        rows = rows[measured[rows]]
        record: dict[str, float] = {"labelled": len(rows)}
        if len(rows):
            t, error = truth[rows], pred[rows] - truth[rows]
            nonzero = t != 0
            record |= {
                "rmse": float(np.sqrt(np.mean(error**2))),
                "mae": float(np.mean(np.abs(error))),
                "mape": float(np.mean(np.abs(error[nonzero] / t[nonzero])) * 100)
                if nonzero.any()
                else math.nan,
                "bias": float(np.mean(error)),
            }
        records.append(record)
    out = keys.join(pd.DataFrame(records, index=keys.index, columns=REGRESSION_COLUMNS[1:]))
    out["labelled"] = out["labelled"].astype("int64")
    return out[[*by, *REGRESSION_COLUMNS]].astype({c: "float64" for c in REGRESSION_COLUMNS[2:]})
