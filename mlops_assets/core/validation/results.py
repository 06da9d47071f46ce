"""What a check found, and how Dagster shows it.

Every check, GX suite or plain Python rule, returns a :class:`SuiteResult` (usable without
Dagster): its failing expectations, unexpected counts and sample values become the check's
metadata (:func:`check_metadata`), so a failure in the UI names the column, the count and a few
offending values. A step that covers several partitions judges each on its own and reports one
result (:func:`merge_partition_results`); :func:`asset_check_result` makes it a Dagster verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg

from mlops_assets.core.validation.frames import jsonable

#: At most this many sample values per failing expectation go into check metadata: enough to see
#: what is wrong, small enough that the event log stays light.
MAX_SAMPLES = 10


def expectation_label(type: str, columns: Sequence[str]) -> str:
    """``type(column)``, the name a failure is reported under."""
    return f"{type}({','.join(columns)})"


def percent(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole`` (0 of nothing is 0 %, not a division error)."""
    return 100.0 * part / whole if whole else 0.0


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
        return expectation_label(self.type, self.columns)


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of a suite or of a plain check on one frame: passed only if every part passed."""

    name: str
    success: bool
    row_count: int
    results: tuple[ExpectationResult, ...]
    #: Wall time of the evaluation, seconds, where measured (GX suites: :func:`run_suite`), and
    #: of the import of its library when this evaluation paid it (the first GX suite of a
    #: process: ~2 s, more than the suites of a day). Shown as check metadata; not part of what
    #: the result says about the data, so two results that differ only in them are equal.
    seconds: float | None = field(default=None, compare=False)
    import_seconds: float | None = field(default=None, compare=False)

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
                samples=tuple(jsonable(v) for v in list(samples)[:MAX_SAMPLES]),
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
        seconds=_total(r.seconds for r in by_partition.values()),
        import_seconds=_total(r.import_seconds for r in by_partition.values()),
    )


def _total(values: Iterable[float | None]) -> float | None:
    """The sum of the measured ``values``; ``None`` when none was measured."""
    measured = [v for v in values if v is not None]
    return sum(measured) if measured else None


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
    # How long the check took, so that a slow day is visible per check in the UI and in benches
    # (`bench/fraud_day.py` reads it from the event log).
    if result.seconds is not None:
        metadata["duration_s"] = round(result.seconds, 3)
    if result.import_seconds:
        metadata["import_s"] = round(result.import_seconds, 3)
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
