"""A user's own data file against an Arrow contract: read it, coerce it, say exactly what is wrong.

A use case that accepts the user's data (a CSV or parquet file) states its contract as a
``pa.Schema``; :func:`read_user_file` reads the file and :func:`coerce` converts each column to the
contract's type, or raises one :class:`ContractError` that names the file and every problem at
once: the missing columns, the repeated ones, and for each column with values that cannot be
converted, how many there are and a few ``(row, text)`` samples (rows count from 1, the header
excluded). Extra columns are dropped and reported, never an error.

The rules, the same for every use case:

* **CSV** files are read with every column as text, so that the conversion knows exactly which
  values are bad (and ``"02139"`` keeps its zero) instead of the reader guessing types; a row with
  the wrong number of fields is an error, not a row silently skipped; a byte-order mark is ignored.
* **Text columns** keep the text as written (not trimmed); only the empty string is null (``"NA"``
  may be Namibia). Values of other types are cast to text.
* **Number, date, time and boolean columns**: text is trimmed and :data:`NULL_TOKENS` (``NA``,
  ``NaN``, ``null``...) are nulls. Integers may be written ``3``, ``+3`` or ``3.0`` and must fit
  the target type; numbers are decimal (``1e6`` too, not ``1,5``); NaN is null and infinity is bad.
  Dates are ISO (``2021-06-30``, a time of day is ignored; ``2021-02-30`` is bad); timestamps are
  ISO 8601 (``T`` or a space, fractions, ``Z`` or an offset converted to the target zone; a value
  without one is taken as UTC). Epoch numbers are refused as timestamps (seconds? milliseconds?).
* **Parquet** columns are cast by type with the same judgement (an integral float is an integer,
  ``3.5`` is not); text columns follow the CSV rules.

A use case keeps its own rules for a column (a zipcode stored as a number, say) with a
:class:`ColumnRule`, which may fall back on :func:`convert`. Nulls, duplicates and out-of-range
values are never judged here: the use case's checks report them downstream.

Pure code: pyarrow, numpy and pandas are imported inside the functions, so that importing this
module (which the code location does at load) costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: The file formats :func:`read_table` reads, by suffix (without the dot).
FILE_FORMATS = ("csv", "parquet")

#: Text that means "no value" in a number, date, time or boolean column (pandas, R and spreadsheets
#: write these). In text columns only the empty string is null.
NULL_TOKENS = ("", "NA", "N/A", "NaN", "nan", "NaT", "null", "NULL", "None", "none")

#: How many bad values a problem shows, by default.
MAX_SAMPLES = 5

_INT_RE = r"^[+-]?\d{1,18}(\.0*)?$"  # 18 digits always fit an int64; "3.0" is an integer
_FLOAT_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
# An ISO date, optionally with a time of day (ignored by a date column).
_DATE_RE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_SAMPLE_CHARS = 40
_SCAN_BLOCK = 1_024

#: A column conversion: ``(values, target) -> (converted, failed)``. ``converted`` has the target
#: type; ``failed`` is a boolean mask, never null, true where a non-null value did not convert.
Converter = Callable[["pa.Array", "pa.DataType"], tuple["pa.Array", "pa.Array"]]


class ContractError(ValueError):
    """A user's file cannot be read as the contract.

    The message is ``"<path>: "`` and every problem, joined by ``"; "``. The same facts are
    attributes: ``path``, ``problems``, ``missing_columns``, ``repeated_columns``, ``bad_values``
    (column -> number of values that did not convert) and ``samples`` (column -> a few
    ``(row, text)`` pairs, rows counting from 1, the header excluded). ``columns`` lists every
    column at fault: repeated, then missing, then those with bad values.
    """

    def __init__(
        self,
        path: str,
        problems: Sequence[str],
        *,
        missing_columns: Sequence[str] = (),
        repeated_columns: Sequence[str] = (),
        bad_values: Mapping[str, int] | None = None,
        samples: Mapping[str, list[tuple[int, str]]] | None = None,
    ) -> None:
        self.path = path
        self.problems = tuple(problems)
        self.missing_columns = tuple(missing_columns)
        self.repeated_columns = tuple(repeated_columns)
        self.bad_values = dict(bad_values or {})
        self.samples = dict(samples or {})
        super().__init__(f"{path}: " + "; ".join(self.problems))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column at fault, once: repeated, missing, then those with bad values."""
        return tuple(
            dict.fromkeys((*self.repeated_columns, *self.missing_columns, *self.bad_values))
        )


@dataclass(frozen=True)
class ColumnRule:
    """A use case's own conversion of one column, in place of :func:`convert`.

    ``expected`` is what a value should have been, singular and plural (``("a zipcode",
    "zipcodes")``), for the message; by default, the noun of the target type.
    """

    convert: Converter
    expected: tuple[str, str] | None = None


@dataclass(frozen=True)
class Samples:
    """Which bad values a problem shows, and how: the first ``count`` of them (or, with
    ``distinct``, the first ``count`` distinct texts), as ``row 3 'abc'`` or, without ``rows``, as
    ``(e.g. 'abc')``. The error's ``samples`` attribute always has the rows."""

    count: int = MAX_SAMPLES
    distinct: bool = False
    rows: bool = True


@dataclass(frozen=True)
class Coerced:
    """A file coerced to a contract: ``table`` has exactly the contract's columns, in its order and
    types, and every row of the file in file order. ``extra_columns`` are the file's columns that
    are not in the contract, in file order: dropped, and listed so the caller can say so."""

    table: pa.Table
    extra_columns: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def as_path(root: str | Path | Any) -> Any:
    """A folder or file a user names: a local ``Path``, or a ``UPath`` for a remote URL
    (``s3://...``)."""
    if isinstance(root, Path) or hasattr(root, "protocol"):
        return root
    text = str(root)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) and not text.startswith("file://"):
        from upath import UPath  # only for remote roots (s3://...): fsspec is a slow import

        return UPath(text)
    return Path(text.removeprefix("file://"))


def day_file(
    folder: str | Path | Any, day: date, *, what: str, error: type[ContractError]
) -> tuple[str, Any]:
    """The one file of ``day`` in ``folder``, ``<YYYY-MM-DD>.csv`` or ``.parquet``: its format
    and path. ``what`` names the data in messages ("labels").

    Raises :class:`FileNotFoundError` naming the paths looked for when there is none, and
    ``error`` when both exist (which one is the day would be a guess).
    """
    base = as_path(folder)
    candidates = {fmt: base / f"{day.isoformat()}.{fmt}" for fmt in FILE_FORMATS}
    found = {fmt: path for fmt, path in candidates.items() if path.exists()}
    if not found:
        looked = " or ".join(str(p) for p in candidates.values())
        raise FileNotFoundError(f"no {what} file for {day.isoformat()}: looked for {looked}")
    if len(found) > 1:
        raise error(
            f"{base / day.isoformat()}.*",
            ["both a .parquet and a .csv file exist for this day; keep only one"],
        )
    return next(iter(found.items()))


def read_user_file(
    file: str | Path | Any,
    contract: pa.Schema,
    *,
    fmt: str | None = None,
    source: str | None = None,
    rules: Mapping[str, ColumnRule] | None = None,
    samples: Samples = Samples(),
    error: type[ContractError] = ContractError,
) -> Coerced:
    """Read ``file`` with :func:`read_table` and coerce it to ``contract`` with :func:`coerce`."""
    name = str(file) if source is None else source
    table = read_table(file, fmt=fmt, source=name, error=error)
    return coerce(table, contract, source=name, rules=rules, samples=samples, error=error)


def read_table(
    file: str | Path | Any,
    *,
    fmt: str | None = None,
    source: str | None = None,
    error: type[ContractError] = ContractError,
) -> pa.Table:
    """The file as an Arrow table: a CSV with every column as text, a parquet file as typed.

    ``file`` is a path, or anything with ``open("rb")`` (a ``UPath`` on S3); ``fmt`` is ``"csv"``
    or ``"parquet"``, by default the file's suffix; ``source`` names the file in errors (by default
    ``str(file)``). Raises :class:`FileNotFoundError` when a local file does not exist, and
    ``error`` when the format is neither or the file cannot be parsed.
    """
    p = Path(file) if isinstance(file, str) else file
    name = str(p) if source is None else source
    if fmt is None:
        suffix = getattr(p, "suffix", "")
        fmt = suffix.lower().removeprefix(".")
        if fmt not in FILE_FORMATS:
            expected = [f".{f}" for f in FILE_FORMATS]
            raise error(name, [f"unsupported file type {suffix!r}: expected one of {expected}"])
    elif fmt not in FILE_FORMATS:
        raise ValueError(f"fmt must be one of {list(FILE_FORMATS)}, got {fmt!r}")
    if isinstance(p, Path) and not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    with p.open("rb") as f:
        if fmt == "parquet":
            return _read_parquet(f, name, error)
        return read_csv_as_text(f.read(), source=name, error=error)


def read_csv_as_text(
    data: bytes, *, source: str, error: type[ContractError] = ContractError
) -> pa.Table:
    """CSV bytes as a table of text columns; an empty cell (quoted or not) is null."""
    import csv
    import io

    import pyarrow as pa
    import pyarrow.csv as pv

    if not data.strip():
        raise error(source, ["the file is empty (not even a header row)"])
    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    header = next(csv.reader(io.StringIO(first_line)), [])
    try:
        return pv.read_csv(
            pa.py_buffer(data),
            convert_options=pv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowException as exc:
        # A row with the wrong number of fields is an error, not a row silently skipped.
        raise error(source, [f"not a readable CSV file ({exc})"]) from exc


def _read_parquet(f: Any, source: str, error: type[ContractError]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(f)
    except (pa.ArrowException, OSError) as exc:
        raise error(source, [f"not a readable parquet file ({exc})"]) from exc


# --------------------------------------------------------------------------------------------------
# Coercion
# --------------------------------------------------------------------------------------------------


def coerce(
    table: pa.Table,
    contract: pa.Schema,
    *,
    source: str,
    rules: Mapping[str, ColumnRule] | None = None,
    samples: Samples = Samples(),
    error: type[ContractError] = ContractError,
) -> Coerced:
    """``table`` with exactly the columns and types of ``contract``, and the columns it dropped.

    Column names must match exactly; their order is free. ``rules`` replaces :func:`convert` for
    some columns. Raises ``error`` (a :class:`ContractError`, its message prefixed with ``source``)
    listing every repeated contract column, every missing column and every column with values that
    cannot be converted, with its count and a few samples, chosen and shown as ``samples`` says.
    """
    import pyarrow as pa

    rules = rules or {}
    names = table.column_names
    problems: list[str] = []
    repeated = sorted({c for c in names if names.count(c) > 1 and c in contract.names})
    if repeated:
        problems.append(f"repeated columns {_quoted(repeated)}")
    missing = tuple(f.name for f in contract if f.name not in names)
    if missing:
        word = "column" if len(missing) == 1 else "columns"
        problems.append(f"missing {word} {_quoted(missing)} (the file has {_quoted(names)})")
    extra = tuple(c for c in dict.fromkeys(names) if c not in contract.names)

    arrays: list[pa.Array] = []
    bad: dict[str, int] = {}
    shown_by_column: dict[str, list[tuple[int, str]]] = {}
    for f in contract:
        if f.name in missing or f.name in repeated:
            continue
        arr = _one_array(table.column(f.name))
        rule = rules.get(f.name)
        if rule is None:
            values, bad_mask = convert(arr, f.type)
            noun = expected_noun(f.type)
        else:
            values, bad_mask = rule.convert(arr, f.type)
            noun = rule.expected or expected_noun(f.type)
        n_bad, shown = _samples(arr, bad_mask, samples.count, distinct=samples.distinct)
        if n_bad:
            bad[f.name], shown_by_column[f.name] = n_bad, shown
            count = "1 value" if n_bad == 1 else f"{n_bad} values"
            verb, what = ("is", noun[0]) if n_bad == 1 else ("are", noun[1])
            head = f"column '{f.name}' has {count} that {verb} not {what}"
            if samples.rows:
                problems.append(f"{head}: " + ", ".join(f"row {r} {t!r}" for r, t in shown))
            else:
                problems.append(f"{head} (e.g. " + ", ".join(repr(t) for _, t in shown) + ")")
        arrays.append(values)
    if problems:
        raise error(
            source,
            problems,
            missing_columns=missing,
            repeated_columns=repeated,
            bad_values=bad,
            samples=shown_by_column,
        )
    return Coerced(pa.Table.from_arrays(arrays, schema=contract), extra)


def convert(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """``arr`` as ``target`` (nulls where it failed) and the mask of non-null values that failed.

    ``target`` is text, an integer, a float, a date, a timestamp or a boolean; see the module's
    rules. Raises :class:`TypeError` for any other target.
    """
    import pyarrow as pa

    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return to_text(arr, target)
    if pa.types.is_integer(target):
        return _to_integer(arr, target)
    if pa.types.is_floating(target):
        return _to_float(arr, target)
    if pa.types.is_date(target):
        return _to_date(arr, target)
    if pa.types.is_timestamp(target):
        return _to_timestamp(arr, target)
    if pa.types.is_boolean(target):
        return _to_bool(arr)
    raise TypeError(f"no conversion to {target}")


def expected_noun(target: pa.DataType) -> tuple[str, str]:
    """What a value of ``target`` is, singular and plural, for a message."""
    import numpy as np
    import pyarrow as pa

    if pa.types.is_integer(target):
        info = np.iinfo(target.to_pandas_dtype())
        span = "" if target == pa.int64() else f" in [{info.min}, {info.max}]"
        return f"an integer{span}", f"integers{span}"
    if pa.types.is_floating(target):
        return "a number", "numbers"
    if pa.types.is_date(target):
        return "an ISO date (YYYY-MM-DD)", "ISO dates (YYYY-MM-DD)"
    if pa.types.is_timestamp(target):
        return "a timestamp", "timestamps"
    if pa.types.is_boolean(target):
        return "a boolean", "booleans"
    return "text", "text"


# --------------------------------------------------------------------------------------------------
# Building blocks, also for a use case's own rules
# --------------------------------------------------------------------------------------------------


def keep(values: pa.Array, ok: pa.Array) -> pa.Array:
    """``values`` where ``ok`` is true, null elsewhere."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(pc.fill_null(ok, False), values, pa.scalar(None, values.type))


def failed(original: pa.Array, ok: pa.Array) -> pa.Array:
    """True where ``original`` has a value and ``ok`` is not true: the values that did not convert."""
    import pyarrow.compute as pc

    return pc.and_(pc.is_valid(original), pc.invert(pc.fill_null(ok, False)))


def nan_as_null(arr: pa.Array) -> pa.Array:
    """A float array with NaN as null (how pandas and numpy write "missing"); others unchanged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(arr.type):
        return keep(arr, pc.invert(pc.is_nan(arr)))
    return arr


def clean_text(arr: pa.Array) -> pa.Array:
    """Text trimmed, with the :data:`NULL_TOKENS` as nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    return keep(text, pc.invert(pc.is_in(text, pa.array(NULL_TOKENS))))


def is_text(arr: pa.Array) -> bool:
    import pyarrow as pa

    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def to_text(arr: pa.Array, target: pa.DataType | None = None) -> tuple[pa.Array, pa.Array]:
    """Text as written, the empty string as null; other types cast to text where they can be."""
    import pyarrow as pa
    import pyarrow.compute as pc

    target = target or pa.string()
    if is_text(arr):
        text = arr.cast(target)
        return keep(text, pc.not_equal(text, "")), _none_failed(arr)
    try:
        return arr.cast(target), _none_failed(arr)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Lists, structs, bytes that are not UTF-8: nothing sensible to turn into text.
        return _nothing_converts(arr, target)


# --------------------------------------------------------------------------------------------------
# The conversions
# --------------------------------------------------------------------------------------------------


def _to_integer(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = nan_as_null(arr)
    if is_text(arr):
        text = clean_text(arr)
        ok = pc.match_substring_regex(text, _INT_RE)
        # Arrow parses neither "+5" nor "5.0" as an integer: drop the sign and the zero fraction.
        digits = pc.replace_substring_regex(keep(text, ok), r"^\+|\.0*$", "")
        values = digits.cast(pa.int64())
        original = text
    elif pa.types.is_uint64(arr.type):
        ok = pc.less_equal(arr, pa.scalar(2**63 - 1, pa.uint64()))
        values, original = keep(arr, ok).cast(pa.int64()), arr
    elif pa.types.is_integer(arr.type) or pa.types.is_boolean(arr.type):
        values, original = arr.cast(pa.int64()), arr
        ok = pc.is_valid(values)
    elif pa.types.is_floating(arr.type):
        ok = pc.and_(pc.is_finite(arr), pc.equal(pc.floor(arr), arr))
        ok = pc.and_(ok, pc.less(pc.abs(arr), 2.0**63))
        values, original = keep(arr, ok).cast(pa.int64()), arr
    else:
        return _nothing_converts(arr, target)
    info = np.iinfo(target.to_pandas_dtype())
    low, high = int(info.min), min(int(info.max), 2**63 - 1)
    in_range = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
    ok = pc.and_(pc.fill_null(ok, False), pc.fill_null(in_range, False))
    return keep(values, ok).cast(target), failed(original, ok)


def _to_float(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = nan_as_null(arr)
    if is_text(arr):
        text = clean_text(arr)
        ok = pc.fill_null(pc.match_substring_regex(text, _FLOAT_RE), False)
        values = pc.replace_substring_regex(keep(text, ok), r"^\+", "").cast(target)
        return keep(values, ok), failed(text, ok)
    if (
        pa.types.is_integer(arr.type)
        or pa.types.is_floating(arr.type)
        or pa.types.is_boolean(arr.type)
        or pa.types.is_decimal(arr.type)
    ):
        # Unsafe only in precision (an id-sized integer), which a measure never has.
        values = arr.cast(target, safe=False)
        ok = pc.is_finite(values)  # an infinite amount is as unusable as text
        return keep(values, ok), failed(values, ok)
    return _nothing_converts(arr, target)


def _to_date(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if is_text(arr):
        text = clean_text(arr)
        day = pc.utf8_slice_codeunits(keep(text, pc.match_substring_regex(text, _DATE_RE)), 0, 10)
        ts = pc.strptime(day, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls "2021-02-30" over to March: a date is valid if it prints back as written.
        ok = pc.equal(pc.strftime(ts, format="%Y-%m-%d"), day)
        return keep(ts, ok).cast(target), failed(text, ok)
    if pa.types.is_date(arr.type) or pa.types.is_timestamp(arr.type):
        return arr.cast(target), _none_failed(arr)
    return _nothing_converts(arr, target)


def _to_timestamp(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(arr.type):
        # Arrow stores UTC instants whatever the zone, so a cast converts offsets; a naive column
        # is read as UTC. ns -> us only truncates sub-microseconds (unsafe = no error on that).
        try:
            return arr.cast(target, safe=arr.type.unit != "ns"), _none_failed(arr)
        except pa.ArrowInvalid:  # seconds beyond the microsecond range (year 300,000)
            return _nothing_converts(arr, target)
    if pa.types.is_date(arr.type):
        return arr.cast(target), _none_failed(arr)
    if not is_text(arr):
        # Epoch numbers are ambiguous (seconds? milliseconds?): refuse rather than guess.
        return _nothing_converts(arr, target)
    import pandas as pd

    text = clean_text(arr)
    # ISO 8601, with "T" or a space, with or without fractions; "Z" or an offset is converted to
    # UTC and a value without one is taken as UTC.
    parsed = pd.to_datetime(text.to_pandas(), utc=True, format="ISO8601", errors="coerce").astype(
        "datetime64[ns, UTC]"
    )
    values = pa.Array.from_pandas(parsed).cast(target, safe=False)
    return values, failed(text, pc.is_valid(values))


def _to_bool(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(arr.type):
        return arr, _none_failed(arr)
    if is_text(arr):
        text = pc.utf8_lower(clean_text(arr))
        true, false = pc.is_in(text, pa.array(_TRUE)), pc.is_in(text, pa.array(_FALSE))
        ok = pc.or_(true, false)
        return keep(true, ok), failed(text, ok)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        arr = nan_as_null(arr)
        ok = pc.or_(pc.equal(arr, 0), pc.equal(arr, 1))
        return keep(pc.equal(arr, 1), ok), failed(arr, ok)
    return _nothing_converts(arr, pa.bool_())


def _nothing_converts(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa.nulls(len(arr), target), pc.is_valid(arr)


def _none_failed(arr: pa.Array) -> pa.Array:
    import pyarrow as pa

    return pa.repeat(pa.scalar(False), len(arr))


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    import pyarrow as pa

    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _samples(
    original: pa.Array, failed_mask: pa.Array, limit: int, *, distinct: bool
) -> tuple[int, list[tuple[int, str]]]:
    """How many values failed, and up to ``limit`` of them as ``(1-based row, text as written)``:
    the first ones, or the first distinct texts."""
    import numpy as np

    rows = np.flatnonzero(failed_mask.to_numpy(zero_copy_only=False))
    if not distinct:
        head = rows[:limit]
        return len(rows), [
            (int(i) + 1, t) for i, t in zip(head, _texts(original, head), strict=True)
        ]
    shown: list[tuple[int, str]] = []
    seen: set[str] = set()
    for start in range(0, len(rows), _SCAN_BLOCK):
        block = rows[start : start + _SCAN_BLOCK]
        for i, text in zip(block, _texts(original, block), strict=True):
            if text not in seen:
                seen.add(text)
                shown.append((int(i) + 1, text))
                if len(shown) == limit:
                    return len(rows), shown
    return len(rows), shown


def _texts(arr: pa.Array, rows: Any) -> list[str]:
    import pyarrow as pa

    picked = arr.take(pa.array(rows, pa.int64()))
    try:
        values = picked.to_pylist()
    except (ValueError, OverflowError, pa.ArrowException):
        # A time beyond what Python's datetime holds: show the raw number.
        raw = picked.view(pa.int64()) if pa.types.is_timestamp(picked.type) else picked
        values = raw.cast(pa.int64()).to_pylist()
    return [str(v)[:_SAMPLE_CHARS] for v in values]


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
