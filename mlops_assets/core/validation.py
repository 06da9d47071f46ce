"""Data validation: declarative Great Expectations suites and plain checks, as blocking audits.

A use case states what its data must look like, and nothing built downstream ever reads data that
breaks it:

* **Declarative column expectations** (nulls, ranges, sets, types, row counts...) are written as an
  :class:`ExpectationSuiteSpec` of :func:`expect` entries, with no Great Expectations import, so the
  code location loads fast. :func:`run_suite` runs the suite with GX 1.x in an ephemeral context;
  :func:`gx_audit` makes it a blocking audit of an asset.
* **Checks GX cannot express** are plain functions on a frame: :func:`unique_keys`,
  :func:`hourly_gaps` / :func:`time_gaps` and :func:`duplicate_timestamps`, with the audit
  factories :func:`unique_key_audit` and :func:`time_series_audits`.

An audit is judged inside the asset's step on the staged data, before it is published (write,
audit, publish: :mod:`mlops_assets.core.publishing`), so rejected data never replaces good data.

Every check returns a :class:`SuiteResult` (usable without Dagster), whose failing expectations,
unexpected counts and sample values become the check's metadata, so a failure in the UI names the
column, the count and a few offending values. Audits are partition-aware: each partition of a
step is judged on its own.

Pandas and Polars frames are both accepted; Polars frames are converted to pandas (GX wants pandas).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import dagster as dg

# numpy and pandas are imported where used: the code location loads this module, and pandas alone
# costs ~0.4 s of every Dagster process start.
if TYPE_CHECKING:
    import great_expectations as gx
    import numpy as np
    import pandas as pd
    import polars as pl

    from mlops_assets.core.publishing import Audit

    Frame = pd.DataFrame | pl.DataFrame

#: At most this many sample values per failing expectation go into check metadata: enough to see
#: what is wrong, small enough that the event log stays light.
MAX_SAMPLES = 10

# Dagster check names: letters, digits and underscores only.
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_TYPE_RE = re.compile(r"^expect_[a-z0-9_]+$")
# Sample strings are cut to this length: metadata is for reading, not for copying data out.
_MAX_SAMPLE_CHARS = 80


# --------------------------------------------------------------------------------------------------
# The declarative suite (no Great Expectations import)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """One declarative expectation: a GX 1.x expectation type and its arguments.

    ``type`` is the snake_case GX name (``expect_column_values_to_not_be_null``); ``column`` is the
    column it is about (``None`` for table-level expectations); ``kwargs`` are the other arguments
    of the GX expectation class (``min_value``, ``value_set``, ``mostly``, ``type_``...). Build it
    with :func:`expect`.
    """

    type: str
    column: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _TYPE_RE.match(self.type):
            raise ValueError(
                f"expectation type must be a snake_case GX name like "
                f"'expect_column_values_to_not_be_null', got {self.type!r}"
            )
        if "column" in self.kwargs:
            raise ValueError("pass the column as `column=`, not inside kwargs")

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the expectation reads (one, a pair, a list, or none for table-level)."""
        if self.column is not None:
            return (self.column,)
        pair = tuple(self.kwargs[k] for k in ("column_A", "column_B") if k in self.kwargs)
        if pair:
            return pair
        return tuple(self.kwargs.get("column_list", ()))

    @property
    def label(self) -> str:
        """``type(column)``, the name a failure is reported under."""
        return _label(self.type, self.columns)

    def gx_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the GX expectation class."""
        return {**({"column": self.column} if self.column is not None else {}), **self.kwargs}


def expect(type: str, /, column: str | None = None, **kwargs: Any) -> Expectation:
    """Declare an expectation; the ``expect_`` prefix of the GX name may be left out.

    ``expect("column_values_to_be_between", column="age", min_value=0, max_value=120)``.

    GX 1.24 names a tz-aware column's type ``"Timestamp"``:
    ``expect("column_values_to_be_of_type", column="event_ts", type_="Timestamp")``.
    """
    full = type if type.startswith("expect_") else f"expect_{type}"
    return Expectation(type=full, column=column, kwargs=dict(kwargs))


@dataclass(frozen=True)
class ExpectationSuiteSpec:
    """A named set of expectations that one dataset must meet.

    The name is also the default name of the asset check built from it, so name it as a sentence
    about the data: ``transactions_meet_expectations``.
    """

    name: str
    expectations: Sequence[Expectation]
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"suite name must match {_NAME_RE.pattern} (it names a check): {self.name!r}"
            )
        # A tuple, so that a spec shared by several checks cannot be changed under them.
        object.__setattr__(self, "expectations", tuple(self.expectations))
        if not self.expectations:
            raise ValueError(f"suite {self.name!r} has no expectations")


def to_gx_suite(suite: ExpectationSuiteSpec) -> gx.ExpectationSuite:
    """The GX 1.x ``ExpectationSuite`` for a spec (imports great_expectations: ~6 s the first time)."""
    import great_expectations as gx
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    expectations = []
    for spec in suite.expectations:
        # The registry knows every core expectation and any custom one imported by the user.
        try:
            cls = get_expectation_impl(spec.type)
        except ExpectationNotFoundError:
            raise ValueError(
                f"suite {suite.name!r}: unknown GX expectation {spec.type!r}"
            ) from None
        try:
            expectations.append(cls(**spec.gx_kwargs()))
        except Exception as exc:  # pydantic says which argument is wrong; add which expectation
            raise ValueError(f"suite {suite.name!r}: invalid {spec.label}: {exc}") from exc
    return gx.ExpectationSuite(name=suite.name, expectations=expectations)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation (or one plain check) on one frame.

    ``unexpected_count`` is the number of offending rows (or missing slots, for gap checks), ``None``
    for aggregate expectations such as a mean, whose ``observed_value`` says what was seen.
    ``samples`` are a few offending values, JSON-safe; ``sample_rows`` the index labels of a few
    offending rows where known. ``error`` is set when the expectation could not be evaluated at all
    (a missing column), which counts as a failure.
    """

    type: str
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    samples: tuple[Any, ...] = ()
    sample_rows: tuple[Any, ...] = ()
    observed_value: Any = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def column(self) -> str | None:
        """The column, or the columns joined by ``,``; ``None`` for table-level expectations."""
        return ",".join(self.columns) or None

    @property
    def label(self) -> str:
        return _label(self.type, self.columns)


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of a suite or of a plain check on one frame: passed only if every part passed."""

    name: str
    success: bool
    row_count: int
    results: tuple[ExpectationResult, ...]

    @property
    def failures(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success)

    @property
    def unexpected_count(self) -> int:
        """Offending rows (or missing slots) summed over the failing parts."""
        return sum(r.unexpected_count or 0 for r in self.failures)

    def result_for(self, type: str, column: str | None = None) -> ExpectationResult:
        """The result of the expectation of this type (``expect_`` optional) on this column."""
        for r in self.results:
            if r.type in (type, f"expect_{type}") and (column is None or r.column == column):
                return r
        raise KeyError(f"no {type}({column or ''}) in {self.name}")


def _label(type: str, columns: Sequence[str]) -> str:
    return f"{type}({','.join(columns)})"


# --------------------------------------------------------------------------------------------------
# Great Expectations
# --------------------------------------------------------------------------------------------------


def run_suite(
    df: Frame, suite: ExpectationSuiteSpec, *, max_samples: int = MAX_SAMPLES
) -> SuiteResult:
    """Validate a frame against a suite with GX 1.x; usable with or without Dagster.

    Runs in an ephemeral GX context (nothing written to disk, nothing shared between calls).
    Results come back in the order of the suite, each with its unexpected count, percent, up to
    ``max_samples`` offending values and their row labels.
    """
    # Imported here, not at module top: `import great_expectations` costs ~6 s and the code
    # location must load fast.
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = to_pandas(df)
    context = gx.get_context(mode="ephemeral")
    # GX draws a tqdm bar per metric batch; in a Dagster step that floods the captured stderr.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas(name=f"{suite.name}_source")
        .add_dataframe_asset(name=suite.name)
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    # add_or_update, not add: plain `add` refuses a suite name it has seen in this context.
    gx_suite = context.suites.add_or_update(to_gx_suite(suite))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(
        gx_suite,
        # SUMMARY carries counts plus the first offending values and row labels, without
        # COMPLETE's full list of every unexpected value (which can be the whole frame).
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_samples},
    )

    # GX groups results by domain, not in suite order; map them back through the expectation ids.
    position = {exp.id: i for i, exp in enumerate(gx_suite.expectations)}
    ordered = sorted(
        validation.results, key=lambda r: position.get(r.expectation_config.id, 1 << 30)
    )
    results = []
    for spec, outcome in zip(suite.expectations, ordered, strict=True):
        detail = dict(outcome.result or {})
        error = _gx_error(outcome.exception_info)
        results.append(
            ExpectationResult(
                type=spec.type,
                columns=spec.columns,
                success=bool(outcome.success) and error is None,
                unexpected_count=_opt_int(detail.get("unexpected_count")),
                unexpected_percent=_opt_float(detail.get("unexpected_percent")),
                samples=tuple(
                    _jsonable(v) for v in detail.get("partial_unexpected_list", ())[:max_samples]
                ),
                sample_rows=tuple(
                    _jsonable(v)
                    for v in detail.get("partial_unexpected_index_list", ())[:max_samples]
                ),
                observed_value=_jsonable(detail.get("observed_value")),
                kwargs=dict(spec.kwargs),
                error=error,
            )
        )
    return SuiteResult(
        name=suite.name,
        success=all(r.success for r in results),
        row_count=len(frame),
        results=tuple(results),
    )


def _gx_error(exception_info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any.

    GX 1.24 reports it flat (``{"raised_exception": ...}``) or keyed by metric id.
    """
    if not isinstance(exception_info, Mapping):
        return None
    infos = (
        [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    )
    for info in infos:
        if isinstance(info, Mapping) and info.get("raised_exception"):
            return str(info.get("exception_message") or "expectation raised an exception")
    return None


# --------------------------------------------------------------------------------------------------
# Plain checks: what GX cannot express
# --------------------------------------------------------------------------------------------------


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
    _require_columns(frame, cols)
    surplus = int(frame.duplicated(subset=cols, keep="first").sum())
    samples: list[dict[str, Any]] = []
    if surplus:
        repeated = frame.loc[frame.duplicated(subset=cols, keep=False), cols]
        counts = repeated.value_counts(dropna=False).head(max_samples)
        for key, n in counts.items():
            values = key if isinstance(key, tuple) else (key,)
            samples.append(
                {**{c: _jsonable(v) for c, v in zip(cols, values, strict=True)}, "rows": int(n)}
            )
    distinct = len(frame) - surplus
    result = ExpectationResult(
        type="unique_keys",
        columns=tuple(cols),
        success=surplus == 0,
        unexpected_count=surplus,
        unexpected_percent=_percent(surplus, len(frame)),
        samples=tuple(samples),
        observed_value={"rows": len(frame), "distinct_keys": distinct},
        kwargs={"keys": cols},
    )
    return _single(_unique_name(cols), frame, result)


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
    step = _step_ns(freq)
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
        unexpected_percent=_percent(missing, expected),
        samples=samples,
        observed_value={
            "series": len(np.unique(c)),
            "expected_slots": expected,
            "null_timestamps": nulls,
            **({"missing_by_series": worst} if series_col else {}),
        },
        kwargs={"freq": freq, "series_col": series_col},
    )
    return _single(f"no_missing_{_slot_unit(freq)}s", frame, result)


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
    step = 1 if freq is None else _step_ns(freq)
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
        unexpected_percent=_percent(surplus, len(codes)),
        samples=samples,
        observed_value={
            "series": len(np.unique(c)),
            "distinct_timestamps": len(s),
            "null_timestamps": nulls,
        },
        kwargs={"freq": freq, "series_col": series_col},
    )
    name = "no_duplicate_timestamps" if freq is None else f"no_duplicate_{_slot_unit(freq)}s"
    return _single(name, frame, result)


def _unique_name(cols: Sequence[str]) -> str:
    # Reads as a sentence in the UI: "tx_id_is_unique", "card_id_and_event_ts_are_unique".
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

    _require_columns(frame, [time_col] + ([series_col] if series_col else []))
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


def _step_ns(freq: str) -> int:
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


def _slot_unit(freq: str) -> str:
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
    return _jsonable(uniques[code])


# --------------------------------------------------------------------------------------------------
# Frames and JSON-safe values
# --------------------------------------------------------------------------------------------------


def to_pandas(df: Any) -> pd.DataFrame:
    """A pandas frame from a pandas or Polars frame (or a LazyFrame, which is collected).

    A dict of frames, which is what an IO manager hands over when several partitions are loaded
    at once, is concatenated.
    """
    import pandas as pd

    if isinstance(df, pd.DataFrame):
        return df
    if isinstance(df, Mapping):
        frames = [to_pandas(v) for v in df.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    # Duck-typed so that this module does not import Polars for pandas-only users.
    if type(df).__module__.startswith("polars"):
        if hasattr(df, "collect"):
            df = df.collect()
        return df.to_pandas()
    raise TypeError(f"expected a pandas or Polars DataFrame, got {type(df).__name__}")


def _require_columns(frame: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} not in frame (has {list(frame.columns)})")


def _jsonable(value: Any) -> Any:
    """A JSON-safe version of a sample value: NaN/NaT become None, timestamps ISO strings."""
    import numpy as np
    import pandas as pd

    if value is None or isinstance(value, bool | int | str):
        return value[:_MAX_SAMPLE_CHARS] if isinstance(value, str) else value
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.datetime64 | np.timedelta64):
        # .item() of a nanosecond datetime64 is a bare int; go through pandas instead.
        as_pd = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
        return _jsonable(as_pd)
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | dt.time):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return None if pd.isna(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [_jsonable(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)[:_MAX_SAMPLE_CHARS]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


# --------------------------------------------------------------------------------------------------
# Check metadata
# --------------------------------------------------------------------------------------------------


def check_metadata(result: SuiteResult) -> dict[str, Any]:
    """What a check shows in the UI, as plain JSON-safe values (no Dagster types).

    ``failing_expectations`` (labels), ``failing_columns``, one ``unexpected_count:<column>`` per
    failing column (summed over that column's failing expectations), ``samples`` (label -> values)
    and ``failures``, a markdown table with one row per failing expectation.
    """
    failures = result.failures
    by_column: dict[str, int] = {}
    for r in failures:
        if r.unexpected_count is not None:
            key = r.column or "table"
            by_column[key] = by_column.get(key, 0) + r.unexpected_count
    metadata: dict[str, Any] = {
        "check": result.name,
        "row_count": result.row_count,
        "evaluated_expectations": len(result.results),
        "failed_expectations": len(failures),
        "failing_expectations": [r.label for r in failures],
        "failing_columns": sorted({c for r in failures for c in r.columns}),
        **{f"unexpected_count:{col}": n for col, n in by_column.items()},
    }
    if failures:
        metadata["samples"] = {r.label: list(r.samples) for r in failures if r.samples}
        rows = {r.label: list(r.sample_rows) for r in failures if r.sample_rows}
        if rows:
            metadata["sample_rows"] = rows
        errors = {r.label: r.error for r in failures if r.error}
        if errors:
            metadata["errors"] = errors
        metadata["failures"] = _failures_markdown(failures)
    return metadata


def _failures_markdown(failures: Sequence[ExpectationResult]) -> str:
    rows = [
        "| expectation | column | unexpected | unexpected % | observed | samples |",
        "|---|---|---:|---:|---|---|",
    ]
    for r in failures:
        pct = "" if r.unexpected_percent is None else f"{r.unexpected_percent:.2f}"
        count = "" if r.unexpected_count is None else str(r.unexpected_count)
        observed = r.error or ("" if r.observed_value is None else str(r.observed_value))
        cells = [
            r.type,
            r.column or "(table)",
            count,
            pct,
            observed,
            ", ".join(map(str, r.samples)),
        ]
        rows.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def _md_cell(text: str, limit: int = 200) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def _summary(result: SuiteResult) -> str:
    if result.success:
        return f"{result.name}: all {len(result.results)} passed on {result.row_count} rows"
    parts = [
        f"{r.label}: {r.error or (f'{r.unexpected_count} unexpected' if r.unexpected_count is not None else f'observed {r.observed_value}')}"
        for r in result.failures
    ]
    return (
        f"{result.name}: {len(parts)} of {len(result.results)} failed on {result.row_count} rows; "
        + "; ".join(parts)
    )


def rule_result(
    name: str,
    row_count: int,
    unexpected_count: int,
    samples: Sequence[Any] = (),
    *,
    columns: Sequence[str] = (),
) -> SuiteResult:
    """A rule written in plain Python as a result: passed when nothing is unexpected, otherwise
    failed with the count and a few samples (offending values, or sentences)."""
    return SuiteResult(
        name=name,
        success=unexpected_count == 0,
        row_count=row_count,
        results=(
            ExpectationResult(
                type=name,
                columns=tuple(columns),
                success=unexpected_count == 0,
                unexpected_count=unexpected_count,
                samples=tuple(_jsonable(v) for v in list(samples)[:MAX_SAMPLES]),
            ),
        ),
    )


def merge_partition_results(
    name: str, by_partition: Mapping[str | None, SuiteResult]
) -> SuiteResult:
    """One result for a check judged on each partition of a ranged step: passed only if every
    partition passed; the failing expectations are those of the failing partitions, their labels
    prefixed with the partition (``2024-01-02/expect_...``) so the UI says which day failed."""
    if len(by_partition) == 1:
        return next(iter(by_partition.values()))
    results: list[ExpectationResult] = []
    for partition, result in sorted(by_partition.items(), key=lambda kv: kv[0] or ""):
        for r in result.results if not result.success else ():
            results.append(replace(r, type=f"{partition}/{r.type}"))
    if not results:
        results = [r for result in by_partition.values() for r in result.results]
    return SuiteResult(
        name=name,
        success=all(r.success for r in by_partition.values()),
        row_count=sum(r.row_count for r in by_partition.values()),
        results=tuple(results),
    )


def asset_check_result(
    result: SuiteResult, *, asset_key: dg.AssetKey | None = None, check_name: str | None = None
) -> dg.AssetCheckResult:
    """A Dagster check result of ``result``, with its metadata (:func:`check_metadata`)."""
    raw = check_metadata(result)
    metadata: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "failures":
            metadata[key] = dg.MetadataValue.md(value)
        elif isinstance(value, list | dict):
            metadata[key] = dg.MetadataValue.json(value)
        else:
            metadata[key] = value
    return dg.AssetCheckResult(
        passed=result.success,
        asset_key=asset_key,
        check_name=check_name,
        # ERROR, so that a blocking check stops everything downstream.
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=_summary(result),
    )


# --------------------------------------------------------------------------------------------------
# Audits: the blocking checks of an asset, judged on its staged data before it is published
# --------------------------------------------------------------------------------------------------


def gx_audit(
    asset_key: dg.AssetKey,
    suite: ExpectationSuiteSpec,
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
    name: str | None = None,
    description: str | None = None,
    max_samples: int = MAX_SAMPLES,
) -> Audit:
    """A blocking audit that the staged data of ``asset_key`` meets a GX suite.

    Named after the suite unless ``name`` is given; fails (ERROR) if any expectation fails, so
    the data is quarantined instead of published (:mod:`mlops_assets.core.publishing`).
    """
    from mlops_assets.core.publishing import audit

    listed = "\n".join(
        f"- `{e.label}` {_kwargs_text(e.kwargs)}".rstrip() for e in suite.expectations
    )
    head = (
        description
        or suite.description
        or f"`{asset_key.to_user_string()}` meets the suite `{suite.name}`"
    )
    return audit(
        asset_key,
        _check_name(name or suite.name),
        lambda staged: run_suite(staged.frame(asset_key), suite, max_samples=max_samples),
        description=f"{head}\n\n{listed}",
        partitions_def=partitions_def,
        metadata={"suite": suite.name, "expectations": [e.label for e in suite.expectations]},
    )


def unique_key_audit(
    asset_key: dg.AssetKey,
    keys: str | Sequence[str],
    *,
    partitions_def: dg.PartitionsDefinition | None = None,
    name: str | None = None,
    max_samples: int = MAX_SAMPLES,
) -> Audit:
    """A blocking audit that a key identifies at most one row of the staged data (per partition).

    Named ``<key>_is_unique`` (``tx_id_is_unique``) or ``<a>_and_<b>_are_unique`` for a combined key.
    """
    from mlops_assets.core.publishing import audit

    cols = [keys] if isinstance(keys, str) else list(keys)
    return audit(
        asset_key,
        _check_name(name or _unique_name(cols)),
        lambda staged: unique_keys(staged.frame(asset_key), cols, max_samples=max_samples),
        description=f"Each {' + '.join(f'`{c}`' for c in cols)} appears on at most one row.",
        partitions_def=partitions_def,
    )


def time_series_audits(
    asset_key: dg.AssetKey,
    time_col: str,
    series_col: str | None = None,
    *,
    freq: str = "h",
    partitions_def: dg.PartitionsDefinition | None = None,
    cover_partition: bool = False,
    max_samples: int = MAX_SAMPLES,
) -> list[Audit]:
    """Two blocking audits of a regular time series: no missing slots, no duplicate slots.

    Named ``no_missing_hours`` and ``no_duplicate_hours`` for ``freq="h"`` (``..._days`` for
    ``"D"``). Gaps are counted per series between its first and last slot; with
    ``cover_partition=True`` on a time-partitioned asset the whole partition window is expected,
    so slots missing at the start or end of the day count too. Duplicates are rows in the same
    series and the same slot. Times are compared in UTC.
    """
    from mlops_assets.core.publishing import audit

    unit = _slot_unit(freq)
    _step_ns(freq)  # fail at definition time on a frequency with no fixed length
    per = f"each `{series_col}`" if series_col else "the series"

    def gaps(staged: Any) -> SuiteResult:
        window = staged.time_window if cover_partition else None
        return time_gaps(
            staged.frame(asset_key),
            time_col,
            series_col,
            freq=freq,
            start=window.start if window else None,
            end=window.end if window else None,
            max_samples=max_samples,
        )

    def duplicates(staged: Any) -> SuiteResult:
        return duplicate_timestamps(
            staged.frame(asset_key), time_col, series_col, freq=freq, max_samples=max_samples
        )

    whole = " and over the whole partition" if cover_partition else ""
    return [
        audit(
            asset_key,
            f"no_missing_{unit}s",
            gaps,
            description=f"{per.capitalize()} has a row for every `{freq}` slot of `{time_col}` "
            f"(UTC) between its first and last{whole}.",
            partitions_def=partitions_def,
        ),
        audit(
            asset_key,
            f"no_duplicate_{unit}s",
            duplicates,
            description=f"{per.capitalize()} has at most one row per `{freq}` slot of "
            f"`{time_col}` (UTC).",
            partitions_def=partitions_def,
        ),
    ]


@contextmanager
def partitioned_checks_preview() -> Iterator[None]:
    """Partitioned asset checks are a preview API in dagster 1.13, used on purpose: without them
    a check on a partitioned asset is unpartitioned. Keeps the warning out of every load log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"check name must match {_NAME_RE.pattern}: {name!r}")
    return name


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
