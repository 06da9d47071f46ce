"""Leak-free rolling features of the fraud use case: the card's and the merchant's recent activity.

Every feature row describes one transaction with what was known one second before it: for a
transaction at time ``t`` the window ``w`` holds the key's *other* transactions ``j`` with
``t - w <= event_ts_j <= t - 1 s``. The window ends one second before the event because including
the current row leaks its label (seed 004, "Prevent label leakage"); transactions at the very same
second are left out too, since a scorer could not have seen them either. An empty window gives
count 0, sum 0.0, mean null, max null, distinct 0.

Merchant fraud counts come from a separate label-event stream windowed on *availability* time: a
fraud label counts for a transaction at ``t`` when its ``label_available_ts`` lies in
``[t - w, t - 1 s]``, whatever the time of the transaction it labels. A label that arrives later,
and the transaction's own label, are never counted (an availability before the labelled payment,
which only bad data can hold, is read as the payment's own time).

How far back the caller must read bronze, for target transactions in ``[start, end)``
(:func:`history_start` computes it):

* ``card_features``: transactions from ``start - LOOKBACK`` (30 days);
* ``merchant_features``: transactions, and labels, from ``start - LOOKBACK - max chargeback
  delay``: a fraud label that becomes available inside a window needs its transaction (to know
  the merchant), and that transaction can be as old as the longest label delay before the window.
  A missing one raises instead of silently undercounting.

Inputs follow :data:`schema.TRANSACTIONS` (non-null, finite amounts, unique ``tx_id``; a null or
a non-finite amount raises). Times may carry microseconds; whole seconds are merely faster.

The algorithm never loops over rows and never materializes windows (O(n log n)):

* rows are sorted by (key, time); each window is the index range ``[lo, hi)`` found by binary
  search on a composite ``key * span + time``; counts are ``hi - lo``, sums come from per-key
  cumulative sums, maxima from a sparse table (range-maximum query) built one level at a time;
* distinct merchants: transaction ``j`` of a card counts for the query times
  ``t in [max(ts_j + 1 s, ts_prev + w + 1 tick), ts_j + w]``, where ``ts_prev`` is the card's
  previous visit to the same merchant; a stabbing count of these intervals is one sort and one
  binary search;
* fraud counts: binary searches in the sorted (merchant, availability time) stream.

``bench/fraud_features.py`` measures it: 10M transactions (every one a target) take ~13 s for the
card features and ~10 s for the merchant features on 2 cores, ~4.3 GB peak each, against
pandas' ``groupby().rolling()`` at 6 minutes. Pure Polars and NumPy, no Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import polars as pl

from mlops_assets.fraud import schema

if TYPE_CHECKING:
    import pyarrow as pa

_US_PER_S = 1_000_000
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Composite search keys are ``key_code * span + time``; they must stay clear of int64 overflow.
_INT64_LIMIT = 2**62
_T = TypeVar("_T")
_R = TypeVar("_R")


def history_start(start: datetime, max_label_delay: timedelta = timedelta(0)) -> datetime:
    """The earliest event time of the bronze rows that features from ``start`` on depend on.

    Card features need the 30 days before ``start``. Merchant fraud counts also need the
    transactions (and their labels) whose label became available in those 30 days: pass the
    longest chargeback delay of the labels as ``max_label_delay``.
    """
    return start - schema.LOOKBACK - max_label_delay


def card_features(
    transactions: pl.DataFrame | pl.LazyFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    """One row per transaction in ``[start, end)`` with the card's activity in the windows before it.

    Per window (1h, 1d, 7d, 30d, ending one second before the transaction): how many other
    payments the card made, their total, mean and largest amount, and at how many distinct
    merchants. ``transactions`` must hold the card history from ``start - 30 days`` on (older rows
    and rows from ``end`` on are ignored); rows before ``start`` count as history but get no
    output row. The result has exactly :data:`schema.CARD_FEATURES`, sorted by (event_ts, tx_id).
    """
    events = _prepare(transactions, "card_id", start, end, with_merchant=True)
    return events.output(_card_columns(events), "card", schema.CARD_FEATURES)


def _card_columns(events: _Events) -> dict[str, np.ndarray]:
    windows = {name: events.units(w) for name, w in schema.WINDOWS.items()}
    with _Threads() as threads:
        lo = dict(zip(windows, threads.map(events.window_start, windows.values()), strict=True))
        maxima = events.amount_max(lo, threads)
        previous = events.previous_visit_of_merchant()

        def per_window(name: str) -> dict[str, np.ndarray]:
            count, total = events.amount_count_sum(lo[name])
            return {
                f"card_tx_count_{name}": count,
                f"card_amount_sum_{name}": total,
                f"card_amount_max_{name}": maxima[name],
                f"card_distinct_merchants_{name}": events.distinct_merchants(
                    windows[name], lo[name], previous
                ),
            }

        return {c: v for part in threads.map(per_window, windows) for c, v in part.items()}


def merchant_features(
    transactions: pl.DataFrame | pl.LazyFrame,
    labels: pl.DataFrame | pl.LazyFrame,
    start: datetime,
    end: datetime,
) -> pl.DataFrame:
    """One row per transaction in ``[start, end)`` with the merchant's activity before it.

    Per window (1h, 1d, 7d, 30d, ending one second before the transaction): the merchant's other
    payments (count, total, mean, largest amount); per 1d/7d/30d window also the number of fraud
    labels on the merchant's transactions that became *available* inside the window, so a
    chargeback counts only from the moment it was known. ``transactions`` must reach back
    ``30 days + the longest label delay`` before ``start`` (every fraud label available inside a
    window needs its transaction, to know the merchant; a missing one raises ``ValueError``).
    The result has exactly :data:`schema.MERCHANT_FEATURES`, sorted by (event_ts, tx_id).
    """
    events = _prepare(transactions, "merchant_id", start, end, with_merchant=False)
    fraud = events.fraud_label_stream(transactions, labels)
    return events.output(_merchant_columns(events, fraud), "merchant", schema.MERCHANT_FEATURES)


def _merchant_columns(events: _Events, fraud: np.ndarray) -> dict[str, np.ndarray]:
    windows = {name: events.units(w) for name, w in schema.WINDOWS.items()}
    with _Threads() as threads:
        lo = dict(zip(windows, threads.map(events.window_start, windows.values()), strict=True))
        maxima = events.amount_max(lo, threads)

        def per_window(name: str) -> dict[str, np.ndarray]:
            count, total = events.amount_count_sum(lo[name])
            out = {
                f"merchant_tx_count_{name}": count,
                f"merchant_amount_sum_{name}": total,
                f"merchant_amount_max_{name}": maxima[name],
            }
            if name in schema.FRAUD_WINDOWS:
                out[f"merchant_fraud_count_{name}"] = events.stream_count(fraud, windows[name])
            return out

        return {c: v for part in threads.map(per_window, windows) for c, v in part.items()}


class _Threads:
    """A small thread pool for the NumPy steps, sized like Polars' own (``POLARS_MAX_THREADS``).

    NumPy releases the GIL in binary searches, sorts, gathers and element-wise maths, so the
    independent windows can use every core the step was given.
    """

    def __enter__(self) -> _Threads:
        workers = pl.thread_pool_size()
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def map(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
        if self._pool is None:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))


@dataclass
class _Events:
    """One key's transactions in ``[start - LOOKBACK, end)``, sorted by (key, event_ts, tx_id).

    Times are integer ticks (seconds when every timestamp is a whole second, else microseconds)
    counted from ``start - LOOKBACK``, so every window bound of a target row is >= 0. The target
    rows (``start <= event_ts``) are the queries; every row is history.
    """

    skeleton: pl.DataFrame  # tx_id, key, event_ts of the target rows, sorted by (event_ts, tx_id)
    key_values: np.ndarray  # distinct key values, ascending: code -> key
    code: np.ndarray  # dense key code per row
    ts: np.ndarray  # ticks since base
    amount: np.ndarray
    merchant: np.ndarray | None  # merchant_id per row (card features only)
    query: slice | np.ndarray  # the target rows
    out_row: np.ndarray  # output row of each target row
    tick: int  # ticks per second
    base_us: int  # start - LOOKBACK, microseconds since the epoch
    end_us: int
    span: int  # composite stride: larger than any tick value in use
    comp: np.ndarray = field(init=False)  # code * span + ts: sorted, one search finds a window
    q: np.ndarray = field(init=False)  # comp of the queries
    hi: np.ndarray = field(init=False)  # per query: one past the last row at or before t - 1 s
    cum: np.ndarray = field(init=False)  # per-key running sum of the amounts, inclusive
    cum_before: np.ndarray = field(init=False)  # the same, exclusive
    cum_at_hi: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.comp = self.code * self.span + self.ts  # sorted: the rows are in (key, time) order
        self.q = self.comp[self.query]
        # Last row at or before t - 1 s, plus one: the end of every window of the query.
        if self.tick == 1:  # whole seconds: that is where the query's run of equal times starts
            run_start = np.where(_first_of_run(self.comp), np.arange(len(self.comp)), 0)
            self.hi = np.maximum.accumulate(run_start)[self.query]
        else:
            self.hi = np.searchsorted(self.comp, self.q - self.tick, side="right")
        # Per-key running sums (inclusive, and exclusive: 0.0 on a key's first row) keep the
        # rounding error at the scale of one key's history, not of the whole table.
        frame = pl.DataFrame({"code": self.code, "amount": self.amount})
        self.cum = frame.select(pl.col("amount").cum_sum().over("code")).to_series().to_numpy()
        self.cum_before = np.empty_like(self.cum)
        self.cum_before[1:] = self.cum[:-1]
        self.cum_before[_first_of_run(self.code)] = 0.0
        self.cum_at_hi = self.cum[self.hi - 1]

    def units(self, window: timedelta) -> int:
        return (window // _MICROSECOND) * self.tick // _US_PER_S

    def window_start(self, w: int) -> np.ndarray:
        """First row at or after ``t - w`` of the query's key (``t - w >= base`` by construction)."""
        return np.searchsorted(self.comp, self.q - w, side="left")

    def amount_count_sum(self, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Count and sum of the amounts in ``[lo, hi)`` for every query."""
        count = self.hi - lo
        total = self.cum_at_hi - np.take(self.cum_before, lo, mode="clip")
        total[count == 0] = 0.0  # exactly, whatever the neighbouring key's sums
        return count, total

    def amount_max(self, lo: dict[str, np.ndarray], threads: _Threads) -> dict[str, np.ndarray]:
        """Largest amount in ``[lo, hi)`` per window and query (NaN where empty)."""
        return _range_max(self.amount, lo, self.hi, threads)

    def previous_visit_of_merchant(self) -> np.ndarray:
        """Per row, ``comp`` of the card's previous transaction at the same merchant (or -2**62)."""
        assert self.merchant is not None
        merchant = self.merchant
        previous = np.full(len(merchant), -_INT64_LIMIT, dtype=np.int64)
        if not len(merchant):
            return previous
        low = int(merchant.min())
        m_range = int(merchant.max()) - low + 1
        if (len(self.key_values) + 1) * m_range < _INT64_LIMIT:
            m_code = merchant - low
        else:  # sparse ids: dense-rank them first so that the pair key fits in int64
            m_code = pl.Series(merchant).rank("dense").to_numpy().astype(np.int64)
            m_range = int(m_code.max()) + 1
        pair = self.code * m_range + m_code
        # Rows are time-ordered within a card, so a stable sort by (card, merchant) lists each
        # pair's visits in time order: the previous row of the same pair is the previous visit.
        # (Timsort: the pairs come in runs already sorted by card.)
        order = np.argsort(pair, kind="stable")
        same = ~_first_of_run(pair[order])[1:]
        previous[order[1:][same]] = self.comp[order[:-1][same]]
        return previous

    def distinct_merchants(self, w: int, lo: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """Distinct merchants of the card in ``[t - w, t - 1 s]`` for every query.

        Row ``j`` stands for its merchant in the window iff it lies in the window and the
        previous visit to that merchant does not: ``t in [ts_j + 1 s, ts_j + w]`` and
        ``t > prev + w``, an interval ``[first_j, last_j]``. The count of intervals holding ``t``
        is ``#{first_j <= t} - #{last_j < t}``, and ``#{ts_j + w < t}`` is ``lo`` itself. An
        empty interval is written ``[last_j + 1, last_j]`` so that it cancels out.
        """
        first = previous + (w + 1)
        np.clip(first, self.comp + self.tick, self.comp + (w + 1), out=first)
        first.sort()
        return np.searchsorted(first, self.q, side="right") - lo

    def fraud_label_stream(
        self, transactions: pl.DataFrame | pl.LazyFrame, labels: pl.DataFrame | pl.LazyFrame
    ) -> np.ndarray:
        """Sorted composite (merchant, availability tick) of the fraud labels that can count."""
        lookback_start = _from_us(self.base_us)
        # A label cannot be known before its transaction happened: clipping the availability to
        # the event time guarantees that a transaction never sees its own label, even on bad data.
        available = pl.max_horizontal(
            _utc_us(pl.col("label_available_ts")), _utc_us(pl.col("event_ts"))
        )
        fraud = (
            labels.lazy()
            .filter(pl.col("is_fraud") == 1)
            .select("tx_id", available.alias("available_ts"))
            .filter(
                (pl.col("available_ts") >= lookback_start)
                & (pl.col("available_ts") < _from_us(self.end_us))
            )
            .join(transactions.lazy().select("tx_id", "merchant_id"), on="tx_id", how="left")
            .collect()
        )
        missing = fraud.filter(pl.col("merchant_id").is_null())
        if missing.height:
            raise ValueError(
                f"{missing.height} fraud labels available from {lookback_start.isoformat()} on "
                f"have no transaction (e.g. tx_id {missing['tx_id'][0]!r}): merchant fraud counts "
                "need transactions from start - 30 days - the longest label delay"
            )
        ticks = (fraud["available_ts"].cast(pl.Int64).to_numpy() - self.base_us) // (
            _US_PER_S // self.tick
        )
        merchant = fraud["merchant_id"].to_numpy()
        # Merchants without a transaction in the period have no feature row to count for.
        code = np.searchsorted(self.key_values, merchant)
        known = code < len(self.key_values)
        known[known] = self.key_values[code[known]] == merchant[known]
        return np.sort(code[known] * self.span + ticks[known])

    def stream_count(self, stream: np.ndarray, w: int) -> np.ndarray:
        """Events of a sorted (key, tick) stream in ``[t - w, t - 1 s]`` for every query."""
        # Searching the short stream in the (sorted) queries, not the other way round: event s
        # counts from the first query at or after s + 1 s and stops after the last before s + w.
        enters = np.bincount(np.searchsorted(self.q, stream + self.tick), minlength=len(self.q) + 1)
        leaves = np.bincount(
            np.searchsorted(self.q, stream + w, side="right"), minlength=len(self.q) + 1
        )
        return np.cumsum(enters[:-1] - leaves[:-1])

    def output(
        self, columns: dict[str, np.ndarray], prefix: str, target: pa.Schema
    ) -> pl.DataFrame:
        """The target rows in output order with their features, cast to the contract's schema."""
        # Computed in key order; one gather puts them in (event_ts, tx_id) order. The gather
        # costs a cache miss per value, so counts travel two to an int64 (both < 2**31).
        to_output = np.empty(len(self.out_row), dtype=np.int64)
        to_output[self.out_row] = np.arange(len(self.out_row))
        counts = [name for name, values in columns.items() if values.dtype.kind == "i"]
        per_word = 2 if len(self.comp) < 2**31 else 1
        pairs = [counts[i : i + per_word] for i in range(0, len(counts), per_word)]
        series = [
            # NaN marks an empty window's max: null in the output.
            pl.Series(name, values, nan_to_null=True)
            for name, values in columns.items()
            if values.dtype.kind == "f"
        ]
        series += [pl.Series("+".join(pair), _pack([columns[c] for c in pair])) for pair in pairs]
        columns.clear()
        features = pl.DataFrame(series)[to_output]
        del series
        features = features.with_columns(
            [
                expr.alias(name)
                for pair in pairs
                for name, expr in zip(pair, _unpack(pl.col("+".join(pair)), len(pair)), strict=True)
            ]
        )
        means = [
            pl.when(pl.col(f"{prefix}_tx_count_{w}") > 0)
            .then(pl.col(f"{prefix}_amount_sum_{w}") / pl.col(f"{prefix}_tx_count_{w}"))
            .alias(f"{prefix}_amount_mean_{w}")
            for w in schema.WINDOWS
        ]
        expected = pl.from_arrow(target.empty_table()).schema  # type: ignore[union-attr]
        frame = pl.concat([self.skeleton, features], how="horizontal").with_columns(means)
        return frame.select([pl.col(c).cast(t) for c, t in expected.items()])


def _prepare(
    transactions: pl.DataFrame | pl.LazyFrame,
    key: str,
    start: datetime,
    end: datetime,
    *,
    with_merchant: bool,
) -> _Events:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware (UTC) datetimes")
    lookback_start = start - schema.LOOKBACK
    needed = ["tx_id", key, "event_ts", "amount"] + (["merchant_id"] if with_merchant else [])
    frame = (
        transactions.lazy()
        .select(needed)
        .with_columns(_utc_us(pl.col("event_ts")).alias("event_ts"))
        .filter((pl.col("event_ts") >= lookback_start) & (pl.col("event_ts") < end))
        .collect()
    )
    nulls = {c: n for c, n in frame.null_count().row(0, named=True).items() if n}
    if nulls:
        raise ValueError(f"transactions have nulls in {nulls}")
    # Output order, and a tie order independent of the input's row order (same bytes). Bronze
    # is usually stored in this order already: checking is ~20x cheaper than sorting by a string.
    if not frame.select(_in_output_order()).item():
        frame = frame.sort("event_ts", "tx_id")

    start_us, end_us, base_us = (_to_us(t) for t in (start, end, lookback_start))
    n_history = int(frame["event_ts"].cast(pl.Int64).search_sorted(start_us, side="left"))
    # Key order: a stable sort by key keeps the (event_ts, tx_id) order inside each key.
    row = _stable_order(frame[key].to_numpy())
    # (A tz-aware column converts to Python objects: take its integer microseconds.)
    by_key_frame = frame.select(pl.col(needed[1:]).to_physical())[row]
    by_key = {c: by_key_frame[c].to_numpy() for c in needed[1:]}
    del by_key_frame
    ts_us = by_key["event_ts"]
    whole_seconds = all(t % _US_PER_S == 0 for t in (start_us, end_us)) and not np.any(
        ts_us % _US_PER_S
    )
    tick = 1 if whole_seconds else _US_PER_S
    key_sorted = by_key[key]
    is_first = _first_of_run(key_sorted)
    code = np.cumsum(is_first, dtype=np.int64) - 1
    ts = (ts_us - base_us) // (_US_PER_S // tick)
    # Ticks in use: event times in [0, end - base), interval ends up to ts + LOOKBACK + 1.
    span = (end_us - base_us + schema.LOOKBACK // _MICROSECOND) * tick // _US_PER_S + 2
    n_keys = int(is_first.sum())
    if (n_keys + 1) * span >= _INT64_LIMIT:
        raise ValueError(
            f"{n_keys} keys over {span} ticks overflow the int64 search keys: "
            "round event_ts to whole seconds or compute fewer days at once"
        )
    amount = by_key["amount"]
    if not np.isfinite(amount).all():
        raise ValueError("transactions have non-finite amounts")
    query: slice | np.ndarray = slice(None) if n_history == 0 else np.flatnonzero(row >= n_history)
    return _Events(
        skeleton=frame.slice(n_history).select("tx_id", key, "event_ts"),
        key_values=key_sorted[is_first],
        code=code,
        ts=ts,
        amount=amount,
        merchant=by_key["merchant_id"] if with_merchant else None,
        query=query,
        out_row=row[query] - n_history,
        tick=tick,
        base_us=base_us,
        end_us=end_us,
        span=span,
    )


def _first_of_run(values: np.ndarray) -> np.ndarray:
    """True where a run of equal values begins."""
    first = np.empty(len(values), dtype=bool)
    first[:1] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return first


def _pack(values: list[np.ndarray]) -> np.ndarray:
    if len(values) == 1:
        return values[0].astype(np.int64)
    return (values[0].astype(np.int64) << 32) | values[1]


def _unpack(packed: pl.Expr, n: int) -> list[pl.Expr]:
    if n == 1:
        return [packed]
    return [packed // (1 << 32), packed % (1 << 32)]


def _in_output_order() -> pl.Expr:
    ts, tx_id = pl.col("event_ts"), pl.col("tx_id")
    later = ts > ts.shift(1)
    return (later | ((ts == ts.shift(1)) & (tx_id > tx_id.shift(1)))).fill_null(True).all()


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """The permutation that sorts ``keys`` stably (equal keys keep their row order)."""
    n = len(keys)
    if not n:
        return np.zeros(0, dtype=np.int64)
    low = int(keys.min())
    if (int(keys.max()) - low + 1) * n < _INT64_LIMIT:
        # Unique composites (key, row) need no stable sort, and NumPy's int64 sort is vectorised.
        return np.sort((keys - low) * n + np.arange(n)) % n
    frame = pl.DataFrame({"key": keys}).with_row_index("row")
    return frame.sort("key", maintain_order=True)["row"].to_numpy().astype(np.int64)


def _range_max(
    values: np.ndarray, lo: dict[str, np.ndarray], hi: np.ndarray, threads: _Threads
) -> dict[str, np.ndarray]:
    """``max(values[lo:hi])`` per window and query (NaN where empty), by a sparse table.

    Level k holds the maxima of the blocks of 2**k rows; a range of length L is covered by two
    blocks of 2**floor(log2 L) that start at ``lo`` and end at ``hi``. Answering each level's
    ranges (of every window) before building the next keeps one level alive instead of log2(n).
    """

    def levels(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # floor(log2 L), exact for integers below 2**53; -1 marks an empty window. Sorting the
        # queries by level (a radix sort of int8) lets each level read one increasing run.
        level = (np.frexp((hi - lo[name]).astype(np.float64))[1] - 1).astype(np.int8)
        order = np.argsort(level, kind="stable")
        return order, level[order], np.full(len(level), np.nan)

    runs = dict(zip(lo, threads.map(levels, lo), strict=True))
    top = max((int(level[-1]) for _, level, _ in runs.values() if len(level)), default=-1)
    bounds = {
        name: np.searchsorted(level, np.arange(top + 2)) for name, (_, level, _) in runs.items()
    }
    blocks = values

    def answer(name: str) -> None:
        order, _, result = runs[name]
        at = order[bounds[name][k] : bounds[name][k + 1]]
        if at.size:
            result[at] = np.maximum(blocks[lo[name][at]], blocks[hi[at] - (1 << k)])

    for k in range(top + 1):
        threads.map(answer, lo)
        if k < top:
            blocks = np.maximum(blocks[: -(1 << k)], blocks[1 << k :])
    return {name: result for name, (_, _, result) in runs.items()}


def _utc_us(column: pl.Expr) -> pl.Expr:
    return column.dt.cast_time_unit("us").dt.convert_time_zone("UTC")


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
