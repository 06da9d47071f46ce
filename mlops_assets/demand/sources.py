"""Your own hourly demand files as the ``raw`` contract of the demand use case (``source: files``).

One file per UTC day: ``<files_root>/<YYYY-MM-DD>.csv`` or ``<files_root>/<YYYY-MM-DD>.parquet``
(exactly one of the two), holding the hours of that UTC day, with the columns:

* ``respondent``: the balancing authority's code (``CISO``); rows of respondents that were not
  asked for are ignored (and counted in :attr:`FilesRead.ignored_rows`);
* ``period`` (or ``hour``): the start of the hour, **with its UTC offset** (``2024-05-01T05:00:00Z``,
  ``2024-05-01T05:00+00:00``, ``2024-04-30T22:00-07:00``), or EIA's hourly ``period`` text
  (``2024-05-01T05``, UTC by EIA's definition; ``2024-04-30T22-07`` with an offset). Parquet may
  use a timestamp column with a time zone. Every hour is converted to UTC. A time without an
  offset (``2024-05-01 05:00``, a naive parquet timestamp) is refused: a local hour read as UTC
  would shift the whole series by hours, and across a daylight-saving change would silently
  become a duplicate or a gap. A time that is not the start of a UTC hour is refused too;
* ``value``: demand in MWh, kept as text as EIA's is (an empty cell, ``NA``, ``NaN`` or ``null``
  is a missing value, reported as a missing hour); ``clean`` parses it and its checks judge it,
  exactly as for EIA.

Other columns are ignored (and listed in :attr:`FilesRead.extra_columns`). Duplicated hours, gaps
and text that is not a number are kept as written, for the same clean step and blocking checks as
EIA's data. A missing file, a missing column, a time that is not readable or has no offset, or a
row outside its file's UTC day raises :class:`FilesError` naming the file, the column, the count
and a few samples, before anything is written.

Pure code (pyarrow through :mod:`mlops_assets.core.contracts`); no Dagster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.core import contracts
from mlops_assets.demand import schema
from mlops_assets.demand.eia import parse_period

if TYPE_CHECKING:
    import pyarrow as pa

#: The columns a user's file must have.
FILE_COLUMNS = ("respondent", "period", "value")

# An ISO 8601 time ending in "Z" or an offset (+00:00, -0700, +05).
_OFFSET_RE = re.compile(r".*\d(Z|[+-]\d{2}(:?\d{2})?)$", re.ASCII | re.IGNORECASE)


class FilesError(contracts.ContractError):
    """A user's demand file that cannot be read as the raw contract; the message names the file,
    the columns and the counts."""


@dataclass(frozen=True)
class FilesRead:
    """The files of a range as the raw contract: ``table`` (sorted by respondent and hour, with
    ``type`` ``D`` and ``value_units`` megawatthours), the ``paths`` read, the ``extra_columns``
    ignored, and the ``ignored_rows`` of respondents that were not asked for, by respondent."""

    table: pa.Table
    paths: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()
    ignored_rows: dict[str, int] | None = None


def file_contract() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("respondent", pa.string()),
            ("period", pa.timestamp("us", tz="UTC")),
            ("value", pa.string()),
        ]
    )


def read_files(
    root: str | Path | Any, respondents: list[str] | tuple[str, ...], start: date, end: date
) -> FilesRead:
    """Every day file of ``start <= day < end`` under ``root``, as the raw contract.

    Raises :class:`FilesError` when a day has no file (or two), a file cannot be parsed, a column
    is missing, a time is unreadable, has no UTC offset or is not on the hour, a row lies outside
    its file's UTC day, or a respondent asked for has no row at all in the range.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = list(dict.fromkeys(respondents))
    tables, paths, extra, ignored = [], [], [], {}
    day = start
    while day < end:
        table, path, dropped = read_day_file(root, day)
        paths.append(path)
        extra.extend(c for c in dropped if c not in extra)
        # A row without a respondent is kept, for clean to refuse it by name.
        keep = pc.fill_null(pc.is_in(table["respondent"], pa.array(wanted)), True)
        for name in table.filter(pc.invert(keep)).column("respondent").to_pylist():
            ignored[name] = ignored.get(name, 0) + 1
        tables.append(table.filter(keep))
        day += timedelta(days=1)
    table = pa.concat_tables(tables) if tables else file_contract().empty_table()
    present = set(table.column("respondent").to_pylist())
    absent = [r for r in wanted if r not in present]
    if absent:
        where = f"{paths[0]} .. {paths[-1]}" if len(paths) > 1 else paths[0]
        raise FilesError(
            where,
            [
                f"no row for respondent(s) {absent} (column 'respondent' has "
                f"{sorted(present | set(ignored))}): set the respondents of demand/raw to those "
                f"of your files"
            ],
            missing_columns=(),
        )
    return FilesRead(_to_raw(table), tuple(paths), tuple(extra), ignored or None)


def read_day_file(root: str | Path | Any, day: date) -> tuple[pa.Table, str, tuple[str, ...]]:
    """One day's file coerced to :func:`file_contract`: ``(table, path, extra columns)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        fmt, path = contracts.day_file(root, day, what="demand", error=FilesError)
    except FileNotFoundError as exc:
        raise FilesError(str(root), [str(exc)]) from exc
    table = contracts.read_table(path, fmt=fmt, source=str(path), error=FilesError)
    if "period" not in table.column_names and "hour" in table.column_names:
        table = table.rename_columns(["period" if c == "hour" else c for c in table.column_names])
    coerced = contracts.coerce(
        table,
        file_contract(),
        source=str(path),
        rules={
            "period": contracts.ColumnRule(
                _to_utc_hour,
                ("an hour with a UTC offset", "hours with a UTC offset"),
            ),
            "value": contracts.ColumnRule(_to_value_text),
        },
        error=FilesError,
    )
    table = coerced.table
    first = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    inside = pc.and_(
        pc.greater_equal(table["period"], pa.scalar(first, table["period"].type)),
        pc.less(table["period"], pa.scalar(first + timedelta(days=1), table["period"].type)),
    )
    outside = table.filter(pc.invert(pc.fill_null(inside, True)))
    if outside.num_rows:
        shown = [
            f"{r['respondent']} {r['period']:%Y-%m-%dT%H:%MZ}"
            for r in outside.slice(0, contracts.MAX_SAMPLES).to_pylist()
        ]
        raise FilesError(
            str(path),
            [
                f"column 'period' has {outside.num_rows} hour(s) outside the UTC day "
                f"{day.isoformat()} the file is named after (e.g. {', '.join(shown)}): each file "
                f"holds the 24 UTC hours of its day"
            ],
            bad_values={"period": outside.num_rows},
        )
    return table, str(path), coerced.extra_columns


def _to_utc_hour(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Times with an offset (or EIA's UTC hourly text) as UTC; naive or off-the-hour ones fail."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is None:  # a naive timestamp: local or UTC? Nobody can tell.
            return pa.nulls(len(arr), target), pc.is_valid(arr)
        original = arr
        values, _ = contracts.convert(arr, target)
    elif contracts.is_text(arr):
        original = contracts.clean_text(arr)  # trimmed; "NA", "null"... are nulls
        values = pa.array([_parse_time(text) for text in original.to_pylist()], target)
    else:  # epoch numbers (seconds? milliseconds?), dates: no hour, or no zone
        return pa.nulls(len(arr), target), pc.is_valid(arr)
    ok = pc.equal(pc.floor_temporal(values, unit="hour"), values)
    return contracts.keep(values, ok), contracts.failed(original, ok)


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:  # EIA's period text: "2024-05-01T05" is a UTC hour by EIA's definition
        return parse_period(text)
    except ValueError:
        pass
    if not _OFFSET_RE.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _to_value_text(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """The value as text, as EIA's: numbers of a parquet file become their text, NaN a null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = contracts.nan_as_null(arr)
    if contracts.is_text(arr):
        # As written (not trimmed), but "NA", "NaN", "null"... are a missing value, not junk.
        text = contracts.keep(arr, pc.is_valid(contracts.clean_text(arr)))
        return contracts.to_text(text, target)
    if pa.types.is_floating(arr.type):
        values = [
            None if v is None else (str(int(v)) if v.is_integer() else repr(v))
            for v in arr.to_pylist()
        ]
        return pa.array(values, target), contracts.failed(arr, pc.is_valid(arr))
    return contracts.to_text(arr, target)


def _to_raw(table: pa.Table) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    order = pc.sort_indices(table, sort_keys=[("respondent", "ascending"), ("period", "ascending")])
    table = table.take(order)
    n = table.num_rows
    return pa.table(
        {
            "respondent": table["respondent"],
            "period": table["period"],
            "type": pa.array([schema.DEMAND_TYPE] * n, pa.string()),
            "value": table["value"],
            "value_units": pa.array([schema.VALUE_UNITS] * n, pa.string()),
        },
        schema=schema.raw_schema(),
    )
