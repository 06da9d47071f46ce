"""What the fraud use case's bronze data must look like: GX suites and the checks GX cannot express.

The suites are declarative (:func:`mlops_assets.core.validation.expect`, no Great Expectations
import): ``checks.py`` turns them into blocking audits of the staged data with
:func:`~mlops_assets.core.validation.gx_audit`. Uniqueness of ``tx_id`` is not in the
suites: :func:`~mlops_assets.core.validation.unique_keys` reports it better (surplus rows and the
repeated ids).

The plain functions below judge what spans rows, days or tables: every payment of a daily
partition happened on that day, no label is known before its payment happened, and every payment
has a label row. Each returns a :class:`~mlops_assets.core.validation.SuiteResult`, like the
suites, so the same check machinery shows its counts and samples. They accept a pyarrow Table,
a pandas or a Polars frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

from mlops_assets.core.validation import (
    MAX_SAMPLES,
    ExpectationResult,
    ExpectationSuiteSpec,
    SuiteResult,
    expect,
    jsonable,
    percent,
)
from mlops_assets.fraud import schema

_NOT_NULL = "column_values_to_not_be_null"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A plausibility bound on one payment, part of the bronze contract. No card payment of this
# population comes near it (the largest baskets are a few thousand), so an amount above it is a
# unit or parsing error (cents read as units, a card or account number pasted into the column,
# 1e12 from a spreadsheet) that would dominate every sum and mean of the features. Change it for a
# population that really pays more, with `transactions_suite(max_amount=...)`.
MAX_AMOUNT = 1_000_000.0


def transactions_suite(max_amount: float = MAX_AMOUNT) -> ExpectationSuiteSpec:
    """The suite of a day of transactions, with ``amount`` bounded to ``[0, max_amount]``."""
    if not max_amount > 0:
        raise ValueError(f"max_amount must be positive, got {max_amount}")
    return ExpectationSuiteSpec(
        name="transactions_meet_expectations",
        description="Every payment has its keys, time and amount, a known channel and category, "
        f"and an ISO country code; no amount is negative or above {max_amount:,.0f}; the columns "
        "are those of the bronze contract, in order.",
        expectations=[
            expect(
                "table_columns_to_match_ordered_list", column_list=list(schema.TRANSACTION_COLUMNS)
            ),
            *(expect(_NOT_NULL, column=c) for c in schema.TRANSACTION_COLUMNS),
            expect("column_values_to_be_of_type", column="event_ts", type_="Timestamp"),
            # A refund is a separate flow: a payment is never negative; above `max_amount` it is
            # not plausible (see MAX_AMOUNT).
            expect(
                "column_values_to_be_between", column="amount", min_value=0, max_value=max_amount
            ),
            expect("column_values_to_be_in_set", column="channel", value_set=list(schema.CHANNELS)),
            expect(
                "column_values_to_be_in_set",
                column="merchant_category",
                value_set=list(schema.MERCHANT_CATEGORIES),
            ),
            # ISO 3166-1 alpha-2, upper case: "us" or "USA" would be a category of its own in the
            # model.
            expect("column_values_to_match_regex", column="country", regex=r"^[A-Z]{2}$"),
        ],
    )


TRANSACTIONS_SUITE = transactions_suite()

LABELS_SUITE = ExpectationSuiteSpec(
    name="labels_meet_expectations",
    description="Every label names its payment, says fraud (1) or not (0), and says when it "
    "became known; the columns are those of the bronze contract, in order.",
    expectations=[
        expect("table_columns_to_match_ordered_list", column_list=list(schema.LABEL_COLUMNS)),
        *(expect(_NOT_NULL, column=c) for c in schema.LABEL_COLUMNS),
        expect("column_values_to_be_of_type", column="event_ts", type_="Timestamp"),
        expect("column_values_to_be_of_type", column="label_available_ts", type_="Timestamp"),
        expect("column_values_to_be_in_set", column="is_fraud", value_set=[0, 1]),
    ],
)


def events_inside_day(
    frame: Any, day: date, column: str = "event_ts", *, max_samples: int = MAX_SAMPLES
) -> SuiteResult:
    """Every row of a daily partition happened on that UTC day: ``[day 00:00, day+1 00:00)``.

    A row from another day would be counted twice (or never) by the windows of the features, and a
    point-in-time join would see it in the wrong partition. ``unexpected_count`` is the number of
    rows outside the day; samples are their timestamps and ``sample_rows`` their positions.
    Timestamps are compared in UTC (naive ones are taken as UTC); null timestamps are not counted
    here (the not-null expectation reports them) but appear in ``observed_value``.
    """
    import numpy as np

    table = _as_arrow(frame)
    us, valid = _utc_micros(table, column)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    lo = _micros(start)
    hi = _micros(start + timedelta(days=1))
    before = valid & (us < lo)
    after = valid & (us >= hi)
    outside = np.flatnonzero(before | after)
    result = ExpectationResult(
        type="events_inside_day",
        columns=(column,),
        success=len(outside) == 0,
        unexpected_count=len(outside),
        unexpected_percent=percent(len(outside), table.num_rows),
        samples=tuple(_iso(int(us[i])) for i in outside[:max_samples]),
        sample_rows=tuple(int(i) for i in outside[:max_samples]),
        observed_value={
            "day_start": start.isoformat(),
            "day_end": (start + timedelta(days=1)).isoformat(),
            "before_day": int(before.sum()),
            "after_day": int(after.sum()),
            "null_timestamps": int((~valid).sum()),
            "min": _iso(int(us[valid].min())) if valid.any() else None,
            "max": _iso(int(us[valid].max())) if valid.any() else None,
        },
        kwargs={"day": day.isoformat(), "column": column},
    )
    return _single("events_inside_day", table.num_rows, result)


def labels_after_events(labels: Any, *, max_samples: int = MAX_SAMPLES) -> SuiteResult:
    """No label is known before its payment happened: ``label_available_ts >= event_ts``.

    A label available before its event means the availability times are wrong, and features that
    count "fraud known so far" would leak future outcomes. ``unexpected_count`` is the number of
    such rows; samples name the ``tx_id`` and both times. Rows with a null time are skipped here
    (the not-null expectations report them).
    """
    import numpy as np

    table = _as_arrow(labels)
    event, event_ok = _utc_micros(table, "event_ts")
    available, available_ok = _utc_micros(table, "label_available_ts")
    both = event_ok & available_ok
    early = np.flatnonzero(both & (available < event))
    tx_ids = _column(table, "tx_id") if "tx_id" in table.column_names else None
    samples = tuple(
        {
            **({"tx_id": jsonable(tx_ids[int(i)].as_py())} if tx_ids is not None else {}),
            "event_ts": _iso(int(event[i])),
            "label_available_ts": _iso(int(available[i])),
        }
        for i in early[:max_samples]
    )
    result = ExpectationResult(
        type="labels_after_events",
        columns=("label_available_ts", "event_ts"),
        success=len(early) == 0,
        unexpected_count=len(early),
        unexpected_percent=percent(len(early), table.num_rows),
        samples=samples,
        sample_rows=tuple(int(i) for i in early[:max_samples]),
        observed_value={
            "compared_rows": int(both.sum()),
            "rows_with_null_time": int((~both).sum()),
        },
    )
    return _single("labels_after_events", table.num_rows, result)


def label_coverage(
    transactions: Any,
    labels: Any,
    min_share: float = 1.0,
    *,
    max_samples: int = MAX_SAMPLES,
) -> SuiteResult:
    """At least ``min_share`` of the payments have a label row (matched on ``tx_id``).

    A payment without a label silently leaves the training set, and if such payments are not
    random (a lost chargeback feed) the model learns a skewed fraud rate. ``unexpected_count`` is
    the number of payments without a label; samples are their ids. ``observed_value`` also counts
    label rows whose payment is not in ``transactions`` (orphans: reported, not a failure). A
    payment with a null ``tx_id`` cannot be matched, so it counts as unlabelled. No payments at
    all is full coverage.
    """
    import numpy as np
    import pyarrow.compute as pc

    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    tx = _column(_as_arrow(transactions), "tx_id")
    labelled_ids = _column(_as_arrow(labels), "tx_id")
    # skip_nulls: a null id never matches, not even a null id in the labels.
    has_label = pc.fill_null(pc.is_in(tx, value_set=labelled_ids, skip_nulls=True), False)
    missing = np.flatnonzero(~has_label.to_numpy(zero_copy_only=False))
    orphan = pc.invert(pc.fill_null(pc.is_in(labelled_ids, value_set=tx, skip_nulls=True), False))
    n = len(tx)
    share = 1.0 if n == 0 else (n - len(missing)) / n
    result = ExpectationResult(
        type="label_coverage",
        columns=("tx_id",),
        success=share >= min_share,
        unexpected_count=len(missing),
        unexpected_percent=percent(len(missing), n),
        samples=tuple(jsonable(tx[int(i)].as_py()) for i in missing[:max_samples]),
        sample_rows=tuple(int(i) for i in missing[:max_samples]),
        observed_value={
            "transactions": n,
            "labelled": n - len(missing),
            "share": share,
            "min_share": min_share,
            "labels_without_transaction": int(pc.sum(orphan).as_py() or 0),
        },
        kwargs={"min_share": min_share},
    )
    return _single("label_coverage", n, result)


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------


def _as_arrow(frame: Any) -> pa.Table:
    """A pyarrow Table from a Table, a pandas or Polars frame (or a dict of them: partitions)."""
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, Mapping):
        tables = [_as_arrow(v) for v in frame.values()]
        return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    if type(frame).__module__.startswith("polars"):
        return (frame.collect() if hasattr(frame, "collect") else frame).to_arrow()
    import pandas as pd

    if isinstance(frame, pd.DataFrame):
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise TypeError(f"expected a pyarrow Table, a pandas or a Polars frame, got {type(frame)}")


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        raise KeyError(f"column {name!r} not in frame (has {table.column_names})")
    return table.column(name).combine_chunks()


def _utc_micros(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch (UTC) of a time column, and which rows are not null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = _column(table, name)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not pa.types.is_timestamp(col.type):
        # Text or other types: let pandas parse them (naive as UTC), unparseable values become null.
        import pandas as pd

        parsed = pd.to_datetime(col.to_pandas(), utc=True, errors="coerce", format="ISO8601")
        col = pa.Array.from_pandas(parsed)
    # A naive column is read as UTC; an aware one is stored as UTC already.
    col = col.cast(pa.timestamp("us", tz="UTC"), safe=False)
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    us = pc.fill_null(col.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    return us, valid


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


def _iso(us: int) -> str:
    # Integer arithmetic: a float of seconds loses the microseconds of a present-day time.
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def _single(name: str, rows: int, result: ExpectationResult) -> SuiteResult:
    return SuiteResult(name=name, success=result.success, row_count=rows, results=(result,))
