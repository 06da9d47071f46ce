"""Checks Great Expectations cannot express, as plain functions on a frame.

* :func:`unique_keys`: a key (one column or a combination) identifies at most one row;
* :func:`time_gaps` / :func:`hourly_gaps`: a regular time series has a row in every slot;
* :func:`duplicate_timestamps`: a time series has at most one row per instant (or slot).

Each returns a :class:`~mlops_assets.core.validation.results.SuiteResult` whose samples name the
offending keys or slots. Time is compared in UTC, as int64 nanoseconds: local-time arithmetic is
what miscounts the days clocks change. numpy and pandas are imported inside the functions (the code
location loads this module to declare the audits).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_assets.core.validation.frames import jsonable, require_columns, to_pandas
from mlops_assets.core.validation.results import (
    MAX_SAMPLES,
    ExpectationResult,
    SuiteResult,
    percent,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_assets.core.validation.frames import Frame


def unique_keys(
    df: Frame, keys: str | Sequence[str], *, max_samples: int = MAX_SAMPLES
) -> SuiteResult:
    """Each key (one column or a combination) identifies at most one row.

    ``unexpected_count`` is the number of surplus rows (every row after the first with the same
    key); samples are the duplicated keys with their row counts, most repeated first. Null keys
    compare equal to each other, so two rows with a null key are a duplicate.
    """
    frame = to_pandas(df)
    cols = [keys] if isinstance(keys, str) else list(keys)
    require_columns(frame, cols)
    surplus = int(frame.duplicated(subset=cols, keep="first").sum())
    samples: list[dict[str, Any]] = []
    if surplus:
        repeated = frame.loc[frame.duplicated(subset=cols, keep=False), cols]
        counts = repeated.value_counts(dropna=False).head(max_samples)
        for key, n in counts.items():
            values = key if isinstance(key, tuple) else (key,)
            samples.append(
                {**{c: jsonable(v) for c, v in zip(cols, values, strict=True)}, "rows": int(n)}
            )
    distinct = len(frame) - surplus
    result = ExpectationResult(
        type="unique_keys",
        columns=tuple(cols),
        success=surplus == 0,
        unexpected_count=surplus,
        unexpected_percent=percent(surplus, len(frame)),
        samples=tuple(samples),
        observed_value={"rows": len(frame), "distinct_keys": distinct},
        kwargs={"keys": cols},
    )
    return _single(unique_name(cols), frame, result)


def time_gaps(
    df: Frame,
    time_col: str,
    series_col: str | None = None,
    *,
    freq: str = "h",
    start: dt.datetime | str | None = None,
    end: dt.datetime | str | None = None,
    max_samples: int = MAX_SAMPLES,
) -> SuiteResult:
    """Every series has a row in every ``freq`` slot between its first and last slot.

    Time is compared in UTC (naive timestamps are taken as UTC), so a daylight-saving day in a
    local zone has neither a false gap nor a false duplicate. Slots are UTC-epoch aligned: an
    hourly slot is ``[hh:00, hh+1:00)``. With ``start`` (inclusive) / ``end`` (exclusive) the
    expected range is widened to cover them, so missing slots at the edges of a partition count
    too. ``unexpected_count`` is the number of missing slots over all series; samples are the gaps
    as runs (series, first and last missing slot, length), longest first. Rows with a null
    timestamp are ignored here (a not-null expectation catches them) and counted in
    ``observed_value``.
    """
    import numpy as np

    frame = to_pandas(df)
    step = step_ns(freq)
    codes, uniques, slots, nulls = _series_slots(frame, time_col, series_col, step)
    c, s, _ = _unique_pairs(codes, slots)
    lo = None if start is None else _utc_ns(start) // step
    hi = None if end is None else -(-_utc_ns(end) // step) - 1  # last slot before `end`

    # Gaps as runs of missing slots, one array per field: a frame with millions of gaps must not
    # become millions of Python tuples.
    run_code, run_first, run_last = [np.array([], dtype=np.int64)] * 3
    expected = 0
    if len(c):
        first = np.r_[True, c[1:] != c[:-1]]
        last = np.r_[c[1:] != c[:-1], True]
        prev = np.r_[s[:1], s[:-1]]
        gap = ~first & (s - prev > 1)  # `~first`: the predecessor is in the same series
        parts = [(c[gap], prev[gap] + 1, s[gap] - 1)]
        span_lo, span_hi = s[first], s[last]
        if lo is not None:
            lead = span_lo > lo
            parts.append((c[first][lead], np.full(int(lead.sum()), lo), span_lo[lead] - 1))
            span_lo = np.minimum(span_lo, lo)
        if hi is not None:
            trail = span_hi < hi
            parts.append((c[last][trail], span_hi[trail] + 1, np.full(int(trail.sum()), hi)))
            span_hi = np.maximum(span_hi, hi)
        run_code, run_first, run_last = (np.concatenate(p) for p in zip(*parts, strict=True))
        expected = int((span_hi - span_lo + 1).sum())

    run_len = run_last - run_first + 1
    missing = int(run_len.sum())
    # Longest runs first; ties by series, then time, so the samples are deterministic.
    top = np.lexsort((run_first, run_code, -run_len))[:max_samples]
    samples = tuple(
        {
            **({series_col: _series_value(uniques, int(run_code[i]))} if series_col else {}),
            "first_missing": _slot_iso(int(run_first[i]), step),
            "last_missing": _slot_iso(int(run_last[i]), step),
            "missing": int(run_len[i]),
        }
        for i in top
    )
    by_series = np.bincount(run_code, weights=run_len, minlength=len(uniques)).astype(np.int64)
    worst_codes = np.flatnonzero(by_series)[np.argsort(-by_series[by_series > 0], kind="stable")]
    worst = {
        str(_series_value(uniques, int(i))): int(by_series[i]) for i in worst_codes[:max_samples]
    }
    result = ExpectationResult(
        type="time_gaps",
        columns=(time_col,),
        success=missing == 0,
        unexpected_count=missing,
        unexpected_percent=percent(missing, expected),
        samples=samples,
        observed_value={
            "series": len(np.unique(c)),
            "expected_slots": expected,
            "null_timestamps": nulls,
            **({"missing_by_series": worst} if series_col else {}),
        },
        kwargs={"freq": freq, "series_col": series_col},
    )
    return _single(f"no_missing_{slot_unit(freq)}s", frame, result)


def hourly_gaps(
    df: Frame,
    time_col: str,
    series_col: str | None = None,
    *,
    start: dt.datetime | str | None = None,
    end: dt.datetime | str | None = None,
    max_samples: int = MAX_SAMPLES,
) -> SuiteResult:
    """Every series has a row for every UTC hour between its first and last hour.

    ``unexpected_count`` is the number of missing hours; see :func:`time_gaps`.
    """
    return time_gaps(
        df, time_col, series_col, freq="h", start=start, end=end, max_samples=max_samples
    )


def duplicate_timestamps(
    df: Frame,
    time_col: str,
    series_col: str | None = None,
    *,
    freq: str | None = None,
    max_samples: int = MAX_SAMPLES,
) -> SuiteResult:
    """Each series has at most one row per instant (or per ``freq`` slot, e.g. ``"h"``).

    Instants are compared in UTC: on the day clocks fall back, 01:30 EDT and 01:30 EST are two
    different instants, not a duplicate. ``unexpected_count`` is the number of surplus rows;
    samples are the duplicated (series, instant) pairs with their row counts.
    """
    import numpy as np

    frame = to_pandas(df)
    step = 1 if freq is None else step_ns(freq)
    codes, uniques, slots, nulls = _series_slots(frame, time_col, series_col, step)
    c, s, counts = _unique_pairs(codes, slots)
    surplus = int((counts - 1).sum()) if len(counts) else 0
    dup = np.flatnonzero(counts > 1)
    dup = dup[np.argsort(-counts[dup], kind="stable")][:max_samples]
    samples = tuple(
        {
            **({series_col: _series_value(uniques, int(c[i]))} if series_col else {}),
            time_col: _slot_iso(int(s[i]), step),
            "rows": int(counts[i]),
        }
        for i in dup
    )
    result = ExpectationResult(
        type="duplicate_timestamps",
        columns=(time_col,),
        success=surplus == 0,
        unexpected_count=surplus,
        unexpected_percent=percent(surplus, len(codes)),
        samples=samples,
        observed_value={
            "series": len(np.unique(c)),
            "distinct_timestamps": len(s),
            "null_timestamps": nulls,
        },
        kwargs={"freq": freq, "series_col": series_col},
    )
    name = "no_duplicate_timestamps" if freq is None else f"no_duplicate_{slot_unit(freq)}s"
    return _single(name, frame, result)


def unique_name(cols: Sequence[str]) -> str:
    """The check name of a uniqueness rule, read as a sentence in the UI: ``tx_id_is_unique``,
    ``card_id_and_event_ts_are_unique``."""
    if len(cols) == 1:
        return f"{cols[0]}_is_unique"
    return f"{'_'.join(cols[:-1])}_and_{cols[-1]}_are_unique"


def _single(name: str, frame: pd.DataFrame, result: ExpectationResult) -> SuiteResult:
    return SuiteResult(name=name, success=result.success, row_count=len(frame), results=(result,))


def _series_slots(
    frame: pd.DataFrame, time_col: str, series_col: str | None, step: int
) -> tuple[np.ndarray, Sequence[Any], np.ndarray, int]:
    """Series codes, their distinct values, UTC slot numbers of the non-null rows, null count."""
    import numpy as np
    import pandas as pd

    require_columns(frame, [time_col] + ([series_col] if series_col else []))
    times = pd.to_datetime(frame[time_col], utc=True)
    valid = times.notna().to_numpy()
    # int64 nanoseconds since the epoch in UTC: local-time arithmetic is what miscounts DST days.
    ns = times[valid].astype("datetime64[ns, UTC]").array.asi8
    slots = ns // step  # floor division: slots stay epoch-aligned before 1970 too
    if series_col is None:
        codes, uniques = np.zeros(len(frame), dtype=np.int64), [None]
    else:
        # NaN is a series of its own, not dropped: its rows must be checked as well.
        codes, uniques = pd.factorize(frame[series_col], use_na_sentinel=False)
        codes = codes.astype(np.int64)
    return codes[valid], uniques, slots, int((~valid).sum())


def _unique_pairs(
    codes: np.ndarray, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (series, slot) pairs sorted by series then slot, with their row counts."""
    import numpy as np

    if not len(codes):
        empty = np.array([], dtype=np.int64)
        return empty, empty, empty
    lo, span = int(slots.min()), int(slots.max()) - int(slots.min()) + 1
    if (int(codes.max()) + 1) * span < 2**62:
        # One int64 key sorts ~5x faster than a two-key lexsort.
        key = np.sort(codes * span + (slots - lo))
        c, s = key // span, key % span + lo
    else:
        order = np.lexsort((slots, codes))
        c, s = codes[order], slots[order]
    starts = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (s[1:] != s[:-1])])
    counts = np.diff(np.r_[starts, len(c)])
    return c[starts], s[starts], counts


# The usual frequencies, known without pandas: checks are declared when the code location loads,
# and pandas alone costs ~0.4 s of every Dagster process start.
_SIMPLE_FREQS = {
    "h": ("hour", 3_600_000_000_000),
    "D": ("day", 86_400_000_000_000),
    "min": ("minute", 60_000_000_000),
    "s": ("second", 1_000_000_000),
}


def step_ns(freq: str) -> int:
    """The length of a fixed frequency in nanoseconds ("h", "15min", "D"; not "MS" or "W-MON")."""
    if freq in _SIMPLE_FREQS:
        return _SIMPLE_FREQS[freq][1]
    import pandas as pd

    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).value
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"freq must be a fixed duration such as 'h', '15min' or 'D', got {freq!r}"
        ) from exc
    if step <= 0:
        raise ValueError(f"freq must be positive, got {freq!r}")
    return int(step)


def slot_unit(freq: str) -> str:
    """The word a check name uses for one slot: "hour" for "h", else e.g. "15min_slot"."""
    if freq in _SIMPLE_FREQS:
        return _SIMPLE_FREQS[freq][0]
    import pandas as pd

    offset = pd.tseries.frequencies.to_offset(freq)
    words = {"h": "hour", "D": "day", "min": "minute", "s": "second", "ms": "millisecond"}
    if offset.n == 1 and offset.name in words:
        return words[offset.name]
    return re.sub(r"\W", "_", freq) + "_slot"


def _slot_iso(slot: int, step: int) -> str:
    import pandas as pd

    return pd.Timestamp(slot * step, unit="ns", tz="UTC").isoformat()


def _utc_ns(value: dt.datetime | str) -> int:
    import pandas as pd

    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _series_value(uniques: Sequence[Any], code: int) -> Any:
    return jsonable(uniques[code])
