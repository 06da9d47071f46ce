"""Leak-free card and merchant windows, checked against a brute-force reference.

The reference below is the contract written as plainly as possible: for a transaction at ``t`` the
window ``w`` holds the key's other transactions with ``t - w <= event_ts <= t - 1 s``, and a fraud
label counts when its ``label_available_ts`` lies in that interval. It loops over rows, so it only
runs on small frames; the fast code must agree with it exactly (floats to rounding).
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.fraud import schema
from mlops_assets.fraud.features import card_features, history_start, merchant_features

T = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 2, tzinfo=UTC)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


# --- building frames -------------------------------------------------------------------------


def transactions_frame(rows: list[dict]) -> pl.DataFrame:
    """Schema-conforming transactions from dicts with tx_id, event_ts, card_id, merchant_id, amount."""
    columns = {name: [row.get(name) for row in rows] for name in schema.TRANSACTIONS.names}
    frame = pl.DataFrame(columns, schema=_polars_schema(schema.TRANSACTIONS))
    return frame.with_columns(
        pl.col("merchant_category").fill_null("grocery"),
        pl.col("channel").fill_null("pos"),
        pl.col("country").fill_null("US"),
    )


def labels_frame(rows: list[dict]) -> pl.DataFrame:
    columns = {name: [row[name] for row in rows] for name in schema.LABELS.names}
    return pl.DataFrame(columns, schema=_polars_schema(schema.LABELS))


def _polars_schema(arrow_schema) -> pl.Schema:
    return pl.from_arrow(arrow_schema.empty_table()).schema


def tx(tx_id: str, at: datetime, card: int = 1, merchant: int = 10, amount: float = 1.0) -> dict:
    return {
        "tx_id": tx_id,
        "event_ts": at,
        "card_id": card,
        "merchant_id": merchant,
        "amount": amount,
    }


def label(tx_row: dict, available: datetime, fraud: int = 1) -> dict:
    return {
        "tx_id": tx_row["tx_id"],
        "event_ts": tx_row["event_ts"],
        "is_fraud": fraud,
        "label_available_ts": available,
    }


# --- the brute-force reference -----------------------------------------------------------------


def reference_card(rows: list[dict], start: datetime, end: datetime) -> list[dict]:
    out = []
    for row in _targets(rows, start, end):
        t = row["event_ts"]
        feature = {"tx_id": row["tx_id"], "card_id": row["card_id"], "event_ts": t}
        for name, w in schema.WINDOWS.items():
            window = [
                o
                for o in rows
                if o["card_id"] == row["card_id"] and t - w <= o["event_ts"] <= t - SECOND
            ]
            feature |= _amount_stats("card", name, window)
            feature[f"card_distinct_merchants_{name}"] = len({o["merchant_id"] for o in window})
        out.append(feature)
    return out


def reference_merchant(
    rows: list[dict], label_rows: list[dict], start: datetime, end: datetime
) -> list[dict]:
    merchant_of = {o["tx_id"]: o["merchant_id"] for o in rows}
    out = []
    for row in _targets(rows, start, end):
        t = row["event_ts"]
        feature = {"tx_id": row["tx_id"], "merchant_id": row["merchant_id"], "event_ts": t}
        for name, w in schema.WINDOWS.items():
            window = [
                o
                for o in rows
                if o["merchant_id"] == row["merchant_id"] and t - w <= o["event_ts"] <= t - SECOND
            ]
            feature |= _amount_stats("merchant", name, window)
        for name in schema.FRAUD_WINDOWS:
            w = schema.WINDOWS[name]
            feature[f"merchant_fraud_count_{name}"] = sum(
                1
                for lab in label_rows
                if lab["is_fraud"] == 1
                and lab["tx_id"] != row["tx_id"]
                and merchant_of[lab["tx_id"]] == row["merchant_id"]
                and t - w <= lab["label_available_ts"] <= t - SECOND
            )
        out.append(feature)
    return out


def _targets(rows: list[dict], start: datetime, end: datetime) -> list[dict]:
    targets = [o for o in rows if start <= o["event_ts"] < end]
    return sorted(targets, key=lambda o: (o["event_ts"], o["tx_id"]))


def _amount_stats(prefix: str, name: str, window: list[dict]) -> dict:
    amounts = [o["amount"] for o in window]
    return {
        f"{prefix}_tx_count_{name}": len(amounts),
        f"{prefix}_amount_sum_{name}": float(sum(amounts)),
        f"{prefix}_amount_mean_{name}": sum(amounts) / len(amounts) if amounts else None,
        f"{prefix}_amount_max_{name}": max(amounts) if amounts else None,
    }


def assert_rows_equal(actual: pl.DataFrame, expected: list[dict]) -> None:
    got = actual.to_dicts()
    assert [r["tx_id"] for r in got] == [r["tx_id"] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.keys() == e.keys()
        for column, value in e.items():
            if isinstance(value, float):
                assert g[column] is not None, (g["tx_id"], column)
                assert math.isclose(g[column], value, rel_tol=1e-9, abs_tol=1e-9), (
                    g["tx_id"],
                    column,
                    g[column],
                    value,
                )
            else:
                assert g[column] == value, (g["tx_id"], column, g[column], value)


# --- hand-made windows with the expected values written out ----------------------------------

# Each case: the card's other transactions as (offset from T, merchant, amount), and per window
# the expected (count, sum, mean, max, distinct merchants) of the transaction at T.
EMPTY = (0, 0.0, None, None, 0)
CARD_CASES = {
    "no history: zero counts, null mean and max": ([], dict.fromkeys(schema.WINDOWS, EMPTY)),
    "same second is excluded": ([(timedelta(0), 11, 5.0)], dict.fromkeys(schema.WINDOWS, EMPTY)),
    "one second before is included": (
        [(-SECOND, 11, 7.0)],
        dict.fromkeys(schema.WINDOWS, (1, 7.0, 7.0, 7.0, 1)),
    ),
    "later transactions never count": (
        [(SECOND, 11, 7.0), (DAY, 12, 9.0)],
        dict.fromkeys(schema.WINDOWS, EMPTY),
    ),
    "t - 1h is inside the 1h window, one second earlier is not": (
        [(-HOUR, 11, 10.0), (-HOUR - SECOND, 12, 20.0)],
        {
            "1h": (1, 10.0, 10.0, 10.0, 1),
            "1d": (2, 30.0, 15.0, 20.0, 2),
            "7d": (2, 30.0, 15.0, 20.0, 2),
            "30d": (2, 30.0, 15.0, 20.0, 2),
        },
    ),
    "t - 30d is the oldest row that counts": (
        [(-30 * DAY, 11, 3.0), (-30 * DAY - SECOND, 12, 100.0)],
        {"1h": EMPTY, "1d": EMPTY, "7d": EMPTY, "30d": (1, 3.0, 3.0, 3.0, 1)},
    ),
    "repeat merchant counts once among distinct": (
        [(-2 * SECOND, 11, 1.0), (-3 * SECOND, 11, 2.0), (-2 * DAY, 12, 4.0), (-8 * DAY, 11, 8.0)],
        {
            "1h": (2, 3.0, 1.5, 2.0, 1),
            "1d": (2, 3.0, 1.5, 2.0, 1),
            "7d": (3, 7.0, 7.0 / 3, 4.0, 2),
            "30d": (4, 15.0, 3.75, 8.0, 2),
        },
    ),
    "ties before t all count, ties at t none": (
        [
            (-SECOND, 11, 1.0),
            (-SECOND, 12, 2.0),
            (timedelta(0), 13, 50.0),
            (timedelta(0), 11, 60.0),
        ],
        dict.fromkeys(schema.WINDOWS, (2, 3.0, 1.5, 2.0, 2)),
    ),
}


@pytest.mark.parametrize("others, expected", CARD_CASES.values(), ids=CARD_CASES.keys())
def test_card_windows_end_one_second_before_the_transaction(others, expected) -> None:
    rows = [tx("current", T, amount=1000.0)]
    rows += [tx(f"o{i}", T + dt, merchant=m, amount=a) for i, (dt, m, a) in enumerate(others)]
    rows.append(tx("other-card", T - SECOND, card=2, amount=500.0))  # another card never counts
    out = card_features(transactions_frame(rows), START, END).filter(pl.col("tx_id") == "current")
    row = out.to_dicts()[0]
    for name, (count, total, mean, amax, distinct) in expected.items():
        assert row[f"card_tx_count_{name}"] == count
        assert row[f"card_amount_sum_{name}"] == pytest.approx(total)
        assert row[f"card_amount_mean_{name}"] == (None if mean is None else pytest.approx(mean))
        assert row[f"card_amount_max_{name}"] == amax
        assert row[f"card_distinct_merchants_{name}"] == distinct
    assert_rows_equal(out, [r for r in reference_card(rows, START, END) if r["tx_id"] == "current"])


def test_subsecond_timestamps_keep_the_one_second_gap() -> None:
    micro = timedelta(microseconds=1)
    rows = [
        tx("current", T, amount=1.0),
        tx("half-second-before", T - SECOND / 2, amount=2.0),  # inside the last second: left out
        tx("one-second-before", T - SECOND, amount=4.0),
        tx("just-inside-1h", T - HOUR, amount=8.0),
        tx("just-outside-1h", T - HOUR - micro, amount=16.0),
    ]
    out = card_features(transactions_frame(rows), START, END)
    assert_rows_equal(out, reference_card(rows, START, END))
    current = out.filter(pl.col("tx_id") == "current").to_dicts()[0]
    assert current["card_tx_count_1h"] == 2
    assert current["card_amount_sum_1h"] == 12.0
    assert current["card_tx_count_1d"] == 3


# --- merchant fraud counts: labels count from the moment they are known ----------------------


def test_merchant_fraud_counts_ignore_labels_not_yet_available() -> None:
    old = tx("old", T - 3 * DAY, merchant=7)
    older_than_history = tx("ancient", T - 40 * DAY, merchant=7)  # before the 30 days of history
    rows = [
        tx("current", T, merchant=7),
        old,
        older_than_history,
        tx("other-merchant", T - 3 * DAY, merchant=8),
    ]
    label_rows = [
        label(old, T + HOUR),  # known only after the transaction: must not count
        label(old, T),  # known at the same second: must not count
        label(older_than_history, T - 2 * DAY),  # old payment, recent chargeback: 7d and 30d
        label(rows[3], T - SECOND),  # fraud at another merchant: never
    ]
    out = merchant_features(transactions_frame(rows), labels_frame(label_rows), START, END)
    current = out.filter(pl.col("tx_id") == "current").to_dicts()[0]
    assert [current[f"merchant_fraud_count_{w}"] for w in schema.FRAUD_WINDOWS] == [0, 1, 1]

    # The same chargeback, known one second before the transaction, counts in every window.
    label_rows[0] = label(old, T - SECOND)
    out = merchant_features(transactions_frame(rows), labels_frame(label_rows), START, END)
    current = out.filter(pl.col("tx_id") == "current").to_dicts()[0]
    assert [current[f"merchant_fraud_count_{w}"] for w in schema.FRAUD_WINDOWS] == [1, 2, 2]
    assert_rows_equal(out, reference_merchant(rows, label_rows, START, END))


@pytest.mark.parametrize(
    "available, expected",
    [
        (T - DAY, [1, 1, 1]),  # exactly t - 1d: inside the 1d window
        (T - DAY - SECOND, [0, 1, 1]),
        (T - 7 * DAY, [0, 1, 1]),
        (T - 7 * DAY - SECOND, [0, 0, 1]),
        (T - 30 * DAY, [0, 0, 1]),
        (T - 30 * DAY - SECOND, [0, 0, 0]),
    ],
)
def test_merchant_fraud_window_bounds_on_availability_time(available, expected) -> None:
    labelled = tx("labelled", T - 45 * DAY, merchant=7)
    rows = [tx("current", T, merchant=7), labelled]
    out = merchant_features(
        transactions_frame(rows), labels_frame([label(labelled, available)]), START, END
    )
    current = out.filter(pl.col("tx_id") == "current").to_dicts()[0]
    assert [current[f"merchant_fraud_count_{w}"] for w in schema.FRAUD_WINDOWS] == expected


def test_merchant_fraud_counts_never_include_the_transactions_own_label() -> None:
    current = tx("current", T, merchant=7)
    rows = [current, tx("before", T - HOUR, merchant=7)]
    label_rows = [
        label(current, T),  # a label with no delay at all
        # Bad data, a label "known" before its payment happened: still not the current one's.
        label(current, T - HOUR),
        label(rows[1], T - HOUR, fraud=0),  # a genuine, known label that is not fraud
    ]
    out = merchant_features(transactions_frame(rows), labels_frame(label_rows), START, END)
    row = out.filter(pl.col("tx_id") == "current").to_dicts()[0]
    assert [row[f"merchant_fraud_count_{w}"] for w in schema.FRAUD_WINDOWS] == [0, 0, 0]


def test_merchant_fraud_counts_refuse_labels_without_their_transaction() -> None:
    missing = tx("not-read", T - 50 * DAY, merchant=7)
    rows = [tx("current", T, merchant=7)]
    with pytest.raises(ValueError, match=r"1 fraud labels .* no transaction"):
        merchant_features(
            transactions_frame(rows), labels_frame([label(missing, T - DAY)]), START, END
        )


def test_merchant_amount_windows_match_the_reference() -> None:
    rows = [
        tx("a", T, merchant=7, amount=5.0),
        tx("b", T - SECOND, merchant=7, amount=3.0, card=2),
        tx("c", T - 2 * HOUR, merchant=7, amount=11.0, card=3),
        tx("d", T - SECOND, merchant=8, amount=99.0),
    ]
    out = merchant_features(transactions_frame(rows), labels_frame([]), START, END)
    a = out.filter(pl.col("tx_id") == "a").to_dicts()[0]
    assert (a["merchant_tx_count_1h"], a["merchant_amount_max_1h"]) == (1, 3.0)
    assert (a["merchant_tx_count_1d"], a["merchant_amount_sum_1d"]) == (2, 14.0)
    assert a["merchant_amount_mean_1d"] == 7.0
    assert_rows_equal(out, reference_merchant(rows, [], START, END))


# --- the output: which rows, which schema, which bytes ----------------------------------------


def test_rows_outside_the_period_are_not_output_but_count_as_history() -> None:
    rows = [
        tx("history", START - DAY, amount=2.0),
        tx("first", START, amount=3.0),
        tx("last", END - SECOND, amount=4.0),
        tx("after", END, amount=5.0),
    ]
    out = card_features(transactions_frame(rows), START, END)
    assert out["tx_id"].to_list() == ["first", "last"]
    assert out["card_tx_count_1d"].to_list() == [1, 1]  # "history" for first, "first" for last
    assert out["card_amount_sum_30d"].to_list() == [2.0, 5.0]
    assert_rows_equal(out, reference_card(rows, START, END))


def test_output_schema_is_the_contract() -> None:
    rows = [tx("a", T), tx("b", T + SECOND, card=2)]
    card = card_features(transactions_frame(rows), START, END)
    merchant = merchant_features(transactions_frame(rows), labels_frame([]), START, END)
    assert card.schema == _polars_schema(schema.CARD_FEATURES)
    assert merchant.schema == _polars_schema(schema.MERCHANT_FEATURES)
    assert card.to_arrow().cast(schema.CARD_FEATURES).schema == schema.CARD_FEATURES
    empty = card_features(transactions_frame([]), START, END)
    assert empty.height == 0
    assert empty.schema == _polars_schema(schema.CARD_FEATURES)


def test_output_is_deterministic_and_independent_of_input_row_order() -> None:
    rows, label_rows = _random_dataset(np.random.default_rng(3), n=400)
    frame, labs = transactions_frame(rows), labels_frame(label_rows)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=1)

    def as_bytes(out: pl.DataFrame) -> bytes:
        buffer = io.BytesIO()
        out.write_parquet(buffer)
        return buffer.getvalue()

    card = [as_bytes(card_features(f, START, END)) for f in (frame, frame, shuffled)]
    merchant = [as_bytes(merchant_features(f, labs, START, END)) for f in (frame, shuffled)]
    assert card[0] == card[1] == card[2]
    assert merchant[0] == merchant[1]


def test_lazy_input_gives_the_same_frame() -> None:
    rows, label_rows = _random_dataset(np.random.default_rng(4), n=200)
    frame, labs = transactions_frame(rows), labels_frame(label_rows)
    assert card_features(frame.lazy(), START, END).equals(card_features(frame, START, END))
    assert merchant_features(frame.lazy(), labs.lazy(), START, END).equals(
        merchant_features(frame, labs, START, END)
    )


def test_history_start_covers_the_longest_window_and_label_delay() -> None:
    assert history_start(START) == START - timedelta(days=30)
    assert history_start(START, max_label_delay=60 * DAY) == START - timedelta(days=90)


def test_null_values_are_refused() -> None:
    frame = transactions_frame([tx("a", T), tx("b", T - HOUR)])
    frame = frame.with_columns(
        pl.when(pl.col("tx_id") == "b").then(None).otherwise(pl.col("amount")).alias("amount")
    )
    with pytest.raises(ValueError, match="nulls"):
        card_features(frame, START, END)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        card_features(transactions_frame([tx("a", T)]), START.replace(tzinfo=None), END)


# --- property: random small datasets equal the reference --------------------------------------

# Offsets that put rows exactly on, one second inside and one second outside every window bound.
_BOUNDARY_OFFSETS = sorted(
    {0, 1, 2, 59}
    | {int(w.total_seconds()) + d for w in schema.WINDOWS.values() for d in (-1, 0, 1)}
)


def _random_dataset(rng: np.random.Generator, n: int) -> tuple[list[dict], list[dict]]:
    """Vectorised: clustered second-resolution times around START, labels with assorted delays."""
    days = rng.integers(-40, 2, n)
    offsets = rng.choice(_BOUNDARY_OFFSETS, n) * rng.choice([-1, 1], n)
    times = [
        START + timedelta(hours=12) + int(d) * DAY + int(o) * SECOND
        for d, o in zip(days, offsets, strict=True)
    ]
    rows = [
        tx(f"t{i:05d}", at, card=int(c), merchant=int(m), amount=float(a))
        for i, (at, c, m, a) in enumerate(
            zip(
                times,
                rng.integers(0, 5, n),
                rng.integers(0, 6, n),
                np.round(rng.gamma(2.0, 30.0, n), 2),
                strict=True,
            )
        )
    ]
    delays = rng.choice([0, 1, 3600, 86400, 86401, 7 * 86400, 20 * 86400, 45 * 86400], n)
    label_rows = [
        label(row, row["event_ts"] + timedelta(seconds=int(d)), fraud=int(f))
        for row, d, f, keep in zip(
            rows, delays, rng.random(n) < 0.4, rng.random(n) < 0.8, strict=True
        )
        if keep
    ]
    return rows, label_rows


# Key ids far apart (and negative) take the code paths for ids that do not fit a dense range.
_ID_SPACES = {"dense": (0, 1), "sparse": (-(2**62), 2**61 + 12_345)}


@st.composite
def datasets(draw) -> tuple[list[dict], list[dict]]:
    n = draw(st.integers(0, 30))
    n_cards, n_merchants = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    offset, stride = _ID_SPACES[draw(st.sampled_from(sorted(_ID_SPACES)))]
    # Sub-second times switch the engine from second to microsecond ticks.
    jitter = st.sampled_from([0, 1, 500_000, 999_999]) if draw(st.booleans()) else st.just(0)
    rows = []
    for i in range(n):
        # Clustered times: anchors a window apart, then offsets on and around the window bounds,
        # so that rows fall exactly on, just inside and just outside each other's windows.
        at = (
            START
            + timedelta(hours=draw(st.sampled_from([0, 12])))
            + draw(st.sampled_from([0, 0, 0, -1, -7, -30, -31, 1])) * DAY
            + draw(st.sampled_from([-1, 1])) * draw(st.sampled_from(_BOUNDARY_OFFSETS)) * SECOND
            + timedelta(microseconds=draw(jitter))
        )
        rows.append(
            tx(
                f"t{i:03d}",
                at,
                card=offset + stride * draw(st.integers(0, n_cards - 1)),
                merchant=offset + stride * draw(st.integers(0, n_merchants - 1)),
                amount=draw(st.sampled_from([0.0, 0.01, 1.5, 20.0, 999.99, 1e6])),
            )
        )
    delays = st.sampled_from([0, 1, 3599, 3600, 86399, 86400, 86401, 7 * 86400, 30 * 86400])
    label_rows = [
        label(row, row["event_ts"] + draw(delays) * SECOND, fraud=draw(st.sampled_from([0, 1])))
        for row in rows
        if draw(st.booleans())
    ]
    # Input order must not matter: present the rows shuffled.
    return draw(st.permutations(rows)), label_rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_card_features_equal_the_brute_force_reference(dataset) -> None:
    rows, _ = dataset
    out = card_features(transactions_frame(rows), START, END)
    assert_rows_equal(out, reference_card(rows, START, END))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_merchant_features_equal_the_brute_force_reference(dataset) -> None:
    rows, label_rows = dataset
    out = merchant_features(transactions_frame(rows), labels_frame(label_rows), START, END)
    assert_rows_equal(out, reference_merchant(rows, label_rows, START, END))


def test_a_larger_random_dataset_equals_the_reference() -> None:
    rows, label_rows = _random_dataset(np.random.default_rng(11), n=600)
    frame, labs = transactions_frame(rows), labels_frame(label_rows)
    assert_rows_equal(card_features(frame, START, END), reference_card(rows, START, END))
    assert_rows_equal(
        merchant_features(frame, labs, START, END),
        reference_merchant(rows, label_rows, START, END),
    )
