"""Blocking checks of the fraud pipeline: what bronze and silver must satisfy before anything
downstream is built. A failed check names the column and the number of offending rows.

Checks that need each day on its own (`transactions_inside_their_day`) or decide what becomes
current (the training set's: no snapshot from the future, fraud share) are emitted by the assets
themselves.
"""

# No `from __future__ import annotations`: Dagster reads the check functions' annotations.
from datetime import timedelta
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.core import validation
from mlops_assets.fraud import expectations, schema
from mlops_assets.fraud.assets import DAILY, LABEL_HISTORY_DAYS, fraud_key

if TYPE_CHECKING:
    import polars as pl

# Merchant snapshots re-derived from scratch for this many sampled transactions per run.
LEAKAGE_SAMPLE = 200

transactions_meet_expectations = validation.build_gx_asset_check(
    fraud_key("transactions"), expectations.TRANSACTIONS_SUITE, partitions_def=DAILY
)
labels_meet_expectations = validation.build_gx_asset_check(
    fraud_key("labels"), expectations.LABELS_SUITE, partitions_def=DAILY
)
tx_id_is_unique = validation.build_unique_key_check(
    fraud_key("transactions"), "tx_id", partitions_def=DAILY
)


def _result(result: validation.SuiteResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=validation.check_metadata(result),
    )


@dg.asset_check(
    asset=fraud_key("labels"),
    partitions_def=DAILY,
    blocking=True,
    additional_ins={"transactions": dg.AssetIn(fraud_key("transactions"))},
    description="Every transaction of the day has exactly one label, known no earlier than the "
    "payment itself.",
)
def labels_cover_transactions(context, labels, transactions) -> dg.AssetCheckResult:
    coverage = expectations.label_coverage(transactions, labels)
    ordering = expectations.labels_after_events(labels)
    merged = validation.SuiteResult(
        name="labels_cover_transactions",
        success=coverage.success and ordering.success,
        row_count=coverage.row_count,
        results=(*coverage.results, *ordering.results),
    )
    return _result(merged)


@dg.asset_check(
    asset=fraud_key("merchant_features"),
    partitions_def=DAILY,
    blocking=True,
    required_resource_keys={"io_manager"},
    description="No fraud label leaks into merchant snapshots before it was available: for a "
    "sample of transactions, the fraud counts are recounted from the labels directly.",
)
def merchant_fraud_counts_use_only_available_labels(context) -> dg.AssetCheckResult:
    import polars as pl

    # Inputs are read here rather than through mapped inputs: a check's inputs are loaded for
    # the check's own partitions, without the asset's partition mapping.
    window = context.partition_time_window
    first = window.start - timedelta(days=LABEL_HISTORY_DAYS)
    days = DAILY.get_partition_keys_in_range(
        dg.PartitionKeyRange(
            max(first, DAILY.start).strftime("%Y-%m-%d"),
            (window.end - timedelta(days=1)).strftime("%Y-%m-%d"),
        )
    )
    io = context.resources.io_manager
    transactions = pl.from_arrow(io.read_partitions(fraud_key("transactions"), days)[0])
    labels = pl.from_arrow(io.read_partitions(fraud_key("labels"), days)[0])
    checked = [k for k in context.partition_keys]
    merchant_features = pl.from_arrow(
        io.read_partitions(fraud_key("merchant_features"), checked)[0]
    )
    sample = merchant_features.sample(
        n=min(LEAKAGE_SAMPLE, merchant_features.height), seed=0, shuffle=False
    )
    expected = recount_merchant_fraud(
        sample.select("tx_id", "merchant_id", "event_ts"), transactions, labels
    )
    columns = [c for c in expected.columns if c.startswith("merchant_fraud_count_")]
    compared = sample.select("tx_id", *columns).join(
        expected, on="tx_id", how="left", suffix="_recount"
    )
    wrong = {c: int((compared[c] != compared[f"{c}_recount"]).sum()) for c in columns}
    return dg.AssetCheckResult(
        passed=not any(wrong.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "sampled_transactions": sample.height,
            "label_days_read": f"{days[0]} .. {days[-1]}",
            **{f"mismatches:{c}": n for c, n in wrong.items()},
        },
    )


def recount_merchant_fraud(
    rows: "pl.DataFrame", transactions: "pl.DataFrame", labels: "pl.DataFrame"
) -> "pl.DataFrame":
    """The merchant fraud counts of ``rows`` recounted the slow, obvious way: for each row, the
    fraud labels of its merchant whose ``label_available_ts`` lies in ``[t - w, t - 1 s]``.

    Independent of the windowed algorithm of ``features.merchant_features`` on purpose: the check
    compares the two on a sample.
    """
    import polars as pl

    fraud = (
        labels.filter(pl.col("is_fraud") == 1)
        .join(transactions.select("tx_id", "merchant_id"), on="tx_id", how="inner")
        .select("merchant_id", "label_available_ts")
    )
    candidates = rows.join(fraud, on="merchant_id", how="left")
    last = pl.col("event_ts") - timedelta(seconds=1)
    counts = [
        (pl.col("label_available_ts").is_between(pl.col("event_ts") - schema.WINDOWS[w], last))
        .sum()
        .cast(pl.Int64)
        .alias(f"merchant_fraud_count_{w}")
        for w in schema.FRAUD_WINDOWS
    ]
    return candidates.group_by("tx_id").agg(counts)


fraud_checks = [
    transactions_meet_expectations,
    labels_meet_expectations,
    tx_id_is_unique,
    labels_cover_transactions,
    merchant_fraud_counts_use_only_available_labels,
]
