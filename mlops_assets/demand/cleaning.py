"""From what the source said (``raw``) to the modelling contract (``clean``), and what was wrong.

``clean`` is ``unique_id, ds, y``: the respondent, the start of the UTC hour, and demand in MWh
as a float, sorted by ``unique_id, ds``. Cleaning *normalises* and *parses*; it does not repair:

* a value the source left empty (EIA sends ``null`` for hours it has no report for) has no
  demand to give, so the hour is not in ``clean``: the blocking ``no_missing_hours`` check then
  names the respondent and the hour, and the integrity report counts it under ``null_values``;
* a value that is not a number (``"n/a"``, ``"1,234"``, ``"inf"``) is an error that names the
  respondent, the hour and the text: guessing would train models on made-up demand;
* duplicates, gaps and implausible values are kept as they are and *reported*: the blocking checks
  on ``clean`` stop the models, and nothing is dropped silently.

Pure code (Polars, pyarrow); no Dagster.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_assets.demand import schema

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

#: Offending rows listed per problem in errors and reports.
MAX_SAMPLES = 10

# What makes a history unfit to train on, and the samples that show each (a history read back
# from clean has no empty values: they never reach it).
_PROBLEMS = ("duplicate_hours", "missing_hours", "implausible_values")
_PROBLEM_SAMPLES = ("duplicate_samples", "missing_samples", "implausible_samples")


class CleanError(ValueError):
    """Raw data that cannot become clean data; the message names every problem found."""


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%MZ")


def _samples(frame: pl.DataFrame, *, value: str = "value") -> list[dict[str, Any]]:
    return [
        {"respondent": r, "hour": _iso(p), value: v}
        for r, p, v in frame.head(MAX_SAMPLES).select("respondent", "period", value).iter_rows()
    ]


def parse_raw(raw: pa.Table) -> pl.DataFrame:
    """Raw rows with ``y``, the parsed value (null where the source sent none).

    Raises :class:`CleanError` when a column of the raw contract is missing, a row has no
    respondent or hour, a row is not demand, or a value is text that is not a finite number.
    """
    import polars as pl

    missing = [c for c in schema.RAW_COLUMNS if c not in raw.column_names]
    if missing:
        raise CleanError(f"raw data lacks the column(s) {missing}; it has {raw.column_names}")
    frame = pl.from_arrow(raw.select(list(schema.RAW_COLUMNS)))
    assert isinstance(frame, pl.DataFrame)
    problems = []
    keyless = frame.filter(pl.col("respondent").is_null() | pl.col("period").is_null())
    if keyless.height:
        problems.append(f"{keyless.height} row(s) without a respondent or an hour")
    other = frame.filter(pl.col("type") != schema.DEMAND_TYPE)
    if other.height:
        kinds = sorted(other["type"].unique().to_list())
        problems.append(
            f"{other.height} row(s) of type {kinds}, not demand ({schema.DEMAND_TYPE!r}): "
            f"{_samples(other, value='type')}"
        )
    parsed = _with_parsed_values(frame)
    junk = _non_numeric(parsed)
    if junk.height:
        problems.append(
            f"{junk.height} value(s) that are not numbers (respondent, hour, text): "
            f"{_samples(junk)}"
        )
    if problems:
        raise CleanError("raw demand cannot be cleaned: " + "; ".join(problems))
    return parsed


def _with_parsed_values(frame: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    return frame.with_columns(y=pl.col("value").str.strip_chars().cast(pl.Float64, strict=False))


def _non_numeric(parsed: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    return parsed.filter(
        pl.col("value").is_not_null() & (pl.col("y").is_null() | ~pl.col("y").is_finite())
    )


def non_numeric_values(raw: pa.Table) -> tuple[int, list[dict[str, Any]]]:
    """How many raw values are text that is not a finite number, and a sample of them
    (respondent, hour, text): what the blocking check on ``raw`` reports."""
    import polars as pl

    frame = pl.from_arrow(raw.select(["respondent", "period", "value"]))
    assert isinstance(frame, pl.DataFrame)
    junk = _non_numeric(_with_parsed_values(frame))
    return junk.height, _samples(junk)


def to_clean(
    raw: pa.Table, *, start: datetime | None = None, end: datetime | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """The clean table of ``raw`` and its integrity report (see :func:`integrity_report`; gaps
    are counted over ``[start, end)`` when given, e.g. a partition's day)."""
    import polars as pl

    parsed = parse_raw(raw)
    kept = parsed.filter(pl.col("y").is_not_null())
    clean = kept.select(
        pl.col("respondent").alias("unique_id"), pl.col("period").alias("ds"), "y"
    ).sort("unique_id", "ds", maintain_order=True)
    report = integrity_report(
        clean, nulls=parsed.filter(pl.col("y").is_null()), start=start, end=end
    )
    return clean.to_arrow().cast(schema.clean_schema()), report


def integrity_report(
    clean: pl.DataFrame,
    *,
    nulls: pl.DataFrame | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """What a reader of ``clean`` should know before trusting it, per respondent and overall:
    the hours covered, row count, duplicate and missing hours, values the source left empty, and
    values outside the plausible range (negative, or above ``schema.MAX_PLAUSIBLE_MWH``).

    Missing hours are counted between each respondent's first and last hour, widened to
    ``[start, end)`` when given (a partition's day). ``status`` is ``valid`` when nothing is wrong.
    """
    import polars as pl

    from mlops_assets.core import validation

    frame = clean.to_pandas()
    gaps = validation.time_gaps(frame, "ds", "unique_id", start=start, end=end)
    duplicates = validation.duplicate_timestamps(frame, "ds", "unique_id", freq="h")
    low, high = schema.MIN_PLAUSIBLE_MWH, schema.MAX_PLAUSIBLE_MWH
    implausible = clean.filter((pl.col("y") < low) | (pl.col("y") > high))
    null_rows = nulls.height if nulls is not None else 0
    by_respondent = (
        clean.group_by("unique_id")
        .agg(
            rows=pl.len(),
            first_hour=pl.col("ds").min(),
            last_hour=pl.col("ds").max(),
            y_min=pl.col("y").min(),
            y_mean=pl.col("y").mean(),
            y_max=pl.col("y").max(),
        )
        .sort("unique_id")
    )
    gap_result, dup_result = gaps.results[0], duplicates.results[0]
    missing_by = dict(gap_result.observed_value.get("missing_by_series", {}))
    per_respondent = {
        row["unique_id"]: {
            "rows": row["rows"],
            "first_hour": _iso(row["first_hour"]),
            "last_hour": _iso(row["last_hour"]),
            "missing_hours": int(missing_by.get(row["unique_id"], 0)),
            "y_min": row["y_min"],
            "y_mean": round(row["y_mean"], 3),
            "y_max": row["y_max"],
        }
        for row in by_respondent.iter_rows(named=True)
    }
    problems = {
        "duplicate_hours": dup_result.unexpected_count,
        "missing_hours": gap_result.unexpected_count,
        "null_values": null_rows,
        "implausible_values": implausible.height,
    }
    return {
        "status": "valid" if not any(problems.values()) else "invalid",
        "rows": clean.height,
        "respondents": sorted(per_respondent),
        "first_hour": _iso(clean["ds"].min()) if clean.height else None,
        "last_hour": _iso(clean["ds"].max()) if clean.height else None,
        **problems,
        "duplicate_samples": list(dup_result.samples),
        "missing_samples": list(gap_result.samples),
        "null_samples": _samples(nulls) if null_rows else [],
        "implausible_samples": [
            {"respondent": r, "hour": _iso(d), "y": y}
            for r, d, y in implausible.head(MAX_SAMPLES).iter_rows()
        ],
        "by_respondent": per_respondent,
    }


def day_start(day: str) -> datetime:
    """The first hour of the UTC day ``day`` (``YYYY-MM-DD``)."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def split_days(table: pa.Table, days: list[str], *, column: str = "period") -> dict[str, pa.Table]:
    """The rows of ``table`` of each UTC day of ``days`` (by ``column``, a UTC timestamp): a
    fetched range cut into its daily partitions."""
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return {
        day: frame.filter(pl.col(column).dt.date() == date.fromisoformat(day)).to_arrow()
        for day in days
    }


def clean_days(
    raw_days: dict[str, pa.Table],
) -> tuple[dict[str, pa.Table], dict[str, dict[str, Any]]]:
    """Each raw day cleaned (:func:`to_clean`), gaps counted over its whole UTC day, and its
    integrity report."""
    cleaned, reports = {}, {}
    for day, table in raw_days.items():
        start = day_start(day)
        cleaned[day], reports[day] = to_clean(table, start=start, end=start + timedelta(days=1))
    return cleaned, reports


def summarize(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The integrity reports of several days as one: ``valid`` only if every day is, the hours
    covered, and each problem counted over all days."""
    counts = ("duplicate_hours", "missing_hours", "null_values", "implausible_values")
    first = min((r["first_hour"] for r in reports.values() if r["first_hour"]), default=None)
    last = max((r["last_hour"] for r in reports.values() if r["last_hour"]), default=None)
    return {
        "status": "valid" if all(r["status"] == "valid" for r in reports.values()) else "invalid",
        "date_range": f"{first} .. {last}",
        **{name: sum(r[name] for r in reports.values()) for name in counts},
    }


def unfit_to_train(report: dict[str, Any]) -> tuple[dict[str, int], dict[str, list]] | None:
    """What makes a history of ``report`` (:func:`integrity_report`) unfit to train on: its
    problems counted and samples of each; ``None`` when it is fit."""
    if report["status"] == "valid":
        return None
    problems = {k: report[k] for k in _PROBLEMS if report[k]}
    samples = {k: report[k] for k in _PROBLEM_SAMPLES if report[k]}
    return problems, samples
