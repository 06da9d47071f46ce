"""Blocking checks of the fraud pipeline: what bronze and silver must satisfy before they are
published and anything downstream is built from them. Each is an audit judged on the step's staged
data, one day at a time (see :mod:`mlops_assets.core.publishing`); a failed check names the
column and the number of offending rows, and the day stays unpublished.

The training set's checks (no snapshot from the future, fraud share) decide which version
becomes current and are emitted by the asset itself (:mod:`mlops_assets.fraud.training_sets`).
"""

# No `from __future__ import annotations`: Dagster reads the check functions' annotations.
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.core import validation
from mlops_assets.core.publishing import Audit, Staged, audit
from mlops_assets.fraud import expectations, history, schema

if TYPE_CHECKING:
    import polars as pl

# Merchant snapshots re-derived from scratch for this many sampled transactions per day.
LEAKAGE_SAMPLE = 200


def _suite(
    name: str, row_count: int, results: tuple[validation.ExpectationResult, ...]
) -> validation.SuiteResult:
    """An audit's result made of its own rules' results: it passes when every rule does."""
    return validation.SuiteResult(
        name=name, success=all(r.success for r in results), row_count=row_count, results=results
    )


def bronze_audits(
    transactions: dg.AssetKey, labels: dg.AssetKey, partitions_def: dg.PartitionsDefinition
) -> list[Audit]:
    """The audits of a day of bronze: both suites, unique `tx_id`, every payment inside its day,
    and a label for every payment known no earlier than the payment itself."""

    def inside_their_day(staged: Staged) -> validation.SuiteResult:
        day = date.fromisoformat(staged.partition_key)
        return expectations.events_inside_day(staged.tables[transactions], day)

    def labels_cover_transactions(staged: Staged) -> validation.SuiteResult:
        import pyarrow.compute as pc

        coverage = expectations.label_coverage(staged.tables[transactions], staged.tables[labels])
        ordering = expectations.labels_after_events(staged.tables[labels])
        # "Exactly one label": a payment with two label rows is counted twice in training.
        ids = staged.tables[labels].column("tx_id")
        counts = [v for v in pc.value_counts(pc.drop_null(ids)).to_pylist() if v["counts"] > 1]
        repeated = [v["values"] for v in counts]
        surplus = sum(v["counts"] - 1 for v in counts)
        repeats = validation.rule_result(
            "labels_repeated_for_one_transaction", len(ids), surplus, repeated, columns=("tx_id",)
        ).results[0]
        # The check's description is the summary of its failing results, each under its label
        # (`type(columns)`): the generic names of the expectations ("label_coverage(tx_id): 3
        # unexpected") do not say what is wrong, so each is named after the fault it counts.
        results = (
            replace(coverage.results[0], type="transactions_without_a_label"),
            replace(ordering.results[0], type="labels_known_before_their_payment"),
            repeats,
        )
        return _suite("labels_cover_transactions", coverage.row_count, results)

    return [
        validation.gx_audit(
            transactions, expectations.TRANSACTIONS_SUITE, partitions_def=partitions_def
        ),
        validation.unique_key_audit(transactions, "tx_id", partitions_def=partitions_def),
        audit(
            transactions,
            "transactions_inside_their_day",
            inside_their_day,
            description="Every transaction's `event_ts` falls inside its UTC day partition.",
            partitions_def=partitions_def,
        ),
        validation.gx_audit(labels, expectations.LABELS_SUITE, partitions_def=partitions_def),
        audit(
            labels,
            "labels_cover_transactions",
            labels_cover_transactions,
            description="Every transaction of the day has exactly one label, known no earlier "
            "than the payment itself.",
            partitions_def=partitions_def,
        ),
    ]


def merchant_features_audits(
    merchant_features: dg.AssetKey,
    transactions: dg.AssetKey,
    labels: dg.AssetKey,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    label_history_days: int,
) -> list[Audit]:
    """`merchant_fraud_counts_use_only_available_labels`: no fraud label leaks into merchant
    snapshots before it was available. For a sample of the day's staged snapshots the fraud
    counts are recounted from the published labels directly."""

    def use_only_available_labels(staged: Staged) -> validation.SuiteResult:
        import polars as pl

        window = staged.time_window
        first = max(window.start - timedelta(days=label_history_days), partitions_def.start)
        days = partitions_def.get_partition_keys_in_range(
            dg.PartitionKeyRange(
                first.strftime("%Y-%m-%d"), (window.end - timedelta(days=1)).strftime("%Y-%m-%d")
            )
        )
        # The days the features read, by the same rule (where data begins: `fraud/history.py`).
        days = history.published_days(
            staged.store,
            transactions,
            days,
            reader="merchant_fraud_counts_use_only_available_labels",
        )
        read = {
            key: pl.from_arrow(staged.store.read_partitions(key, days)[0])
            for key in (transactions, labels)
        }
        snapshots = staged.polars(merchant_features)
        sample = snapshots.sample(n=min(LEAKAGE_SAMPLE, snapshots.height), seed=0, shuffle=False)
        expected = recount_merchant_fraud(
            sample.select("tx_id", "merchant_id", "event_ts"),
            read[transactions],
            read[labels],
        )
        columns = [c for c in expected.columns if c.startswith("merchant_fraud_count_")]
        compared = sample.select("tx_id", *columns).join(
            expected, on="tx_id", how="left", suffix="_recount"
        )
        results = tuple(
            validation.rule_result(
                f"recount({c})",
                sample.height,
                int((compared[c] != compared[f"{c}_recount"]).sum()),
                compared.filter(pl.col(c) != pl.col(f"{c}_recount"))["tx_id"].to_list(),
                columns=(c,),
            ).results[0]
            for c in columns
        )
        return _suite("merchant_fraud_counts_use_only_available_labels", sample.height, results)

    return [
        audit(
            merchant_features,
            "merchant_fraud_counts_use_only_available_labels",
            use_only_available_labels,
            description="No fraud label leaks into merchant snapshots before it was available: "
            "for a sample of transactions, the fraud counts are recounted from the labels "
            "directly.",
            partitions_def=partitions_def,
        )
    ]


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
