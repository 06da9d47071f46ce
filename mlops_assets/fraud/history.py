"""Which earlier days of a bronze asset are read as history, by the feature steps and by the
audit that recounts their merchant fraud counts: one rule, here.

Days before the first day ever ingested are the beginning of the data, as days before the
partitions' start are: windows reaching there are partial. A day missing *after* data began is a
hole that would silently shrink every window over it: it fails the step, naming the days and the
command that backfills them.
"""

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import dagster as dg


def published_days(io: Any, key: dg.AssetKey, wanted: Sequence[str], *, reader: str) -> list[str]:
    """The days of ``wanted`` (ISO dates, oldest first) published for ``key``, from the first
    one on; fails naming the holes after it. ``io`` is the ParquetIOManager; ``reader`` names
    the asset that reads them, for the message. One listing of the asset's folder, not a
    request per day (on S3 each would be a round trip)."""
    if not wanted:
        return []
    folder = io.partition_path(key, wanted[0]).parent
    published = (
        {p.name.removesuffix(".parquet") for p in folder.iterdir()} if folder.exists() else set()
    )
    present = [d for d in wanted if d in published]
    holes = [d for d in wanted if present and d > present[0] and d not in published]
    if holes:
        name = key.to_user_string()
        raise dg.Failure(
            f"{reader} reads {len(wanted)} days of {name} ({wanted[0]} .. {wanted[-1]}), and "
            f"{len(holes)} of them, after data began on {present[0]}, were never materialized: "
            f"{_ranges(holes)}. Materialize them first: `dagster asset materialize -m "
            "mlops_assets.definitions --select 'fraud/transactions,fraud/labels' "
            f"--partition-range {holes[0]}...{holes[-1]}`.",
            allow_retries=False,
        )
    return present


def days_before(first: date, days: int, start: date) -> list[str]:
    """The ``days`` days before ``first`` (ISO, oldest first), none before ``start``."""
    begin = max(first - timedelta(days=days), start)
    return [(begin + timedelta(days=i)).isoformat() for i in range((first - begin).days)]


def _ranges(days: list[str]) -> str:
    """Consecutive days written as ranges: ``2024-01-02..2024-01-05, 2024-01-09``."""
    spans: list[list[str]] = []
    for day in days:
        previous = spans[-1][-1] if spans else None
        if previous and date.fromisoformat(day) - date.fromisoformat(previous) == timedelta(1):
            spans[-1].append(day)
        else:
            spans.append([day])
    return ", ".join(s[0] if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in spans)
