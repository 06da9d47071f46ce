"""The training-set inspection report (seed 004, runbook §6.1), as plain metadata values.

What a person checks before trusting a training set: how big it is, what columns and types it
has, which period it covers, how rare fraud is, whether transaction ids repeat, which features
are mostly empty, what amounts look like, a few fraud and genuine rows, and a leakage smell test.
The report is a dict of plain values (numbers, strings, dicts) that Dagster shows as
materialization metadata; the values under :data:`MARKDOWN_KEYS` are markdown and should be
wrapped in ``MetadataValue.md``. No Dagster import here: the report is tested on frames alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.reporting import markdown_table
from mlops_assets.fraud.schema import FRAUD_WINDOWS, TRANSACTION_COLUMNS

LABEL = "is_fraud"
TIME_COLUMN = "event_ts"
ID_COLUMN = "tx_id"
TOP_NULL_COLUMNS = 10
SAMPLE_ROWS = 5
# What a sample row shows: the payment, a few of its features and the label. All ~45 columns
# would make a table nobody reads; the schema entry lists them all.
SAMPLE_COLUMNS = (
    *TRANSACTION_COLUMNS,
    "card_tx_count_1h",
    "card_amount_sum_1d",
    "card_distinct_merchants_1d",
    "merchant_fraud_count_7d",
    "is_fraud",
)
# A mean fraud count this many times higher on fraud rows than on genuine ones is worth a look.
SMELL_RATIO = 10.0
MARKDOWN_KEYS = frozenset({"null_rates_md", "sample_fraud", "sample_non_fraud"})


def _finite(value: Any, digits: int = 6) -> float | None:
    # Dagster and JSON have no NaN: an undefined figure (the mean of nothing) is None.
    if value is None:
        return None
    number = float(value)
    return round(number, digits) if math.isfinite(number) else None


def _cell(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{value:.4g}"
    return None if value is pd.NA else value


def _sample(frame: pd.DataFrame, rows: int) -> str:
    """``rows`` rows chosen by a hash of their ``tx_id``, shown in time order.

    Hashing picks the same rows whatever order the frame comes in and spreads them across the
    period (the first rows of a window have empty features and would look worse than they are).
    """
    columns = [c for c in SAMPLE_COLUMNS if c in frame.columns]
    if frame.empty:
        return "_no rows_"
    if ID_COLUMN in frame.columns:
        key = pd.util.hash_pandas_object(frame[ID_COLUMN].astype("string"), index=False)
        chosen = frame.loc[key.sort_values(kind="mergesort").index[:rows]]
    else:
        chosen = frame.head(rows)
    if TIME_COLUMN in chosen.columns:
        chosen = chosen.sort_values(TIME_COLUMN, kind="mergesort")
    records = [{c: _cell(v) for c, v in row.items()} for row in chosen[columns].to_dict("records")]
    return markdown_table(records, columns)


def _leakage_smell(frame: pd.DataFrame, labels: pd.Series) -> tuple[dict[str, Any], str]:
    """Mean merchant fraud count by label, per window, and a one-line reading of it.

    If the current transaction's own label leaked into its merchant's fraud count, every fraud
    row would count at least one fraud: the share of fraud rows with a zero count would be 0.
    Labels arrive days after the payment, so a leak-free 1-day count is almost always zero.
    """
    columns = [
        f"merchant_fraud_count_{w}"
        for w in FRAUD_WINDOWS
        if f"merchant_fraud_count_{w}" in frame.columns
    ]
    fraud, genuine = labels == 1, labels == 0
    if not columns:
        return {}, "not run: the training set has no merchant_fraud_count_* column"
    if not fraud.any() or not genuine.any():
        return {}, "not run: the smell test needs both fraud and genuine rows"
    table: dict[str, Any] = {}
    for column in columns:
        counts = pd.to_numeric(frame[column], errors="coerce")
        mean_fraud, mean_genuine = counts[fraud].mean(), counts[genuine].mean()
        table[column] = {
            "mean_fraud": _finite(mean_fraud),
            "mean_non_fraud": _finite(mean_genuine),
            "ratio": _finite(mean_fraud / mean_genuine) if mean_genuine > 0 else None,
            "fraud_rows_with_zero_count": _finite((counts[fraud].fillna(0) == 0).mean()),
        }
    n_fraud = int(fraud.sum())
    shortest = columns[0]
    zero_share = table[shortest]["fraud_rows_with_zero_count"]
    if n_fraud >= SAMPLE_ROWS and zero_share == 0:
        return table, (
            f"SUSPICIOUS: all {n_fraud} fraud rows have {shortest} >= 1; the transaction's own "
            "label may be counted in its merchant's fraud count"
        )
    ratios = {c: v["ratio"] for c, v in table.items() if v["ratio"] is not None}
    high = {c: r for c, r in ratios.items() if r >= SMELL_RATIO}
    if high:
        column, ratio = max(high.items(), key=lambda item: item[1])
        return table, (
            f"worth a look: fraud rows see {ratio:.1f}x the {column} of genuine rows; compromised "
            "merchants explain some of that, the blocking leakage check proves the rest"
        )
    summary = ", ".join(
        f"{c.removeprefix('merchant_fraud_count_')} {r:.2f}x" for c, r in ratios.items()
    )
    return table, (
        f"no smell: fraud rows see {summary or 'no comparable'} the mean merchant fraud count of "
        f"genuine rows, and {zero_share:.0%} of them count no fraud in {shortest} (a leak of "
        "their own label would make that 0%)"
    )


def inspect_training_set(frame: Any) -> dict[str, Any]:
    """The inspection report of a fraud training set: one labelled transaction per row.

    Keys (unprefixed: the asset namespaces them, e.g. ``inspection/``):

    * ``row_count``, ``column_count``, ``schema`` (column → dtype);
    * ``event_ts_min``/``event_ts_max`` (ISO, UTC) and ``span_hours``;
    * ``label_counts``, ``fraud_count``, ``fraud_rate``;
    * ``distinct_tx_ids``, ``duplicate_tx_ids`` (rows whose id appeared before), ``null_tx_ids``,
      ``duplicate_rows`` (rows identical to an earlier one);
    * ``null_rates`` (the :data:`TOP_NULL_COLUMNS` emptiest columns with any nulls, 0-1) and the
      same as a table in ``null_rates_md``;
    * ``amount_stats`` (min, p50, p95, max, mean);
    * ``sample_fraud``/``sample_non_fraud``: :data:`SAMPLE_ROWS` rows each, chosen
      deterministically, as markdown tables;
    * ``leakage_smell`` (mean merchant fraud count by label, per window) and
      ``leakage_smell_reading`` (one line).

    Values under :data:`MARKDOWN_KEYS` are markdown. Figures that are undefined (no rows, no such
    column) are ``None``. Accepts pandas or polars.
    """
    if not isinstance(frame, pd.DataFrame) and hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    n_rows = len(frame)
    report: dict[str, Any] = {
        "row_count": n_rows,
        "column_count": len(frame.columns),
        "schema": {str(c): str(t) for c, t in frame.dtypes.items()},
    }

    times = pd.to_datetime(frame[TIME_COLUMN], utc=True) if TIME_COLUMN in frame.columns else None
    start, end = (times.min(), times.max()) if times is not None else (pd.NaT, pd.NaT)
    report["event_ts_min"] = None if pd.isna(start) else start.isoformat()
    report["event_ts_max"] = None if pd.isna(end) else end.isoformat()
    report["span_hours"] = (
        None if pd.isna(start) else _finite((end - start) / pd.Timedelta(hours=1), 3)
    )

    labels = (
        pd.to_numeric(frame[LABEL], errors="coerce")
        if LABEL in frame.columns
        else pd.Series(np.nan, index=frame.index)
    )
    counts = {
        ("null" if pd.isna(k) else str(int(k))): int(v)
        for k, v in labels.value_counts(dropna=False).items()
    }
    report["label_counts"] = dict(sorted(counts.items()))
    n_fraud = int((labels == 1).sum())
    n_labelled = int(labels.notna().sum())
    report["fraud_count"] = n_fraud
    report["fraud_rate"] = _finite(n_fraud / n_labelled) if n_labelled else None

    if ID_COLUMN in frame.columns:
        ids = frame[ID_COLUMN]
        report["distinct_tx_ids"] = int(ids.nunique(dropna=True))
        report["duplicate_tx_ids"] = int(ids.duplicated().sum())
        report["null_tx_ids"] = int(ids.isna().sum())
    else:
        report["distinct_tx_ids"] = report["duplicate_tx_ids"] = report["null_tx_ids"] = None
    report["duplicate_rows"] = int(frame.duplicated().sum()) if n_rows else 0

    null_rates = frame.isna().mean() if n_rows else pd.Series(dtype="float64")
    top = (
        null_rates[null_rates > 0]
        .rename_axis("column")
        .reset_index(name="rate")
        .sort_values(["rate", "column"], ascending=[False, True], kind="mergesort")
        .head(TOP_NULL_COLUMNS)
    )
    report["null_rates"] = {
        str(c): _finite(r) for c, r in zip(top["column"], top["rate"], strict=True)
    }
    report["null_rates_md"] = (
        markdown_table(
            [{"column": c, "null rate": f"{r:.2%}"} for c, r in report["null_rates"].items()],
            ["column", "null rate"],
        )
        if report["null_rates"]
        else "_no nulls_"
    )

    amounts = (
        pd.to_numeric(frame["amount"], errors="coerce").dropna()
        if "amount" in frame.columns
        else pd.Series(dtype="float64")
    )
    report["amount_stats"] = {
        "min": _finite(amounts.min()) if len(amounts) else None,
        "p50": _finite(amounts.quantile(0.5)) if len(amounts) else None,
        "p95": _finite(amounts.quantile(0.95)) if len(amounts) else None,
        "max": _finite(amounts.max()) if len(amounts) else None,
        "mean": _finite(amounts.mean()) if len(amounts) else None,
    }

    report["sample_fraud"] = _sample(frame[labels == 1], SAMPLE_ROWS)
    report["sample_non_fraud"] = _sample(frame[labels == 0], SAMPLE_ROWS)
    smell, reading = _leakage_smell(frame, labels)
    report["leakage_smell"] = smell
    report["leakage_smell_reading"] = reading
    return report
