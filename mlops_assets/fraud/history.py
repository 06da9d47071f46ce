"""Which earlier days of a bronze asset are read as history, by the feature steps and by the
audit that recounts their merchant fraud counts: one rule, here.

Days before the first day ever ingested are the beginning of the data, as days before the
partitions' start are: windows reaching there are partial. A day missing *after* data began is a
hole that would silently shrink every window over it: it fails the step, naming the days and the
command that backfills them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core.asset_store import AssetStore

if TYPE_CHECKING:
    import polars as pl


def published_days(
    store: AssetStore, key: dg.AssetKey, wanted: Sequence[str], *, reader: str
) -> list[str]:
    """The days of ``wanted`` (ISO dates, oldest first) published for ``key``, from the first
    one on; fails naming the holes after it. ``reader`` names the asset that reads them, for the
    message."""
    if not wanted:
        return []
    published = store.published_partitions(key)
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


def with_history(
    store: AssetStore,
    key: dg.AssetKey,
    frame: pl.DataFrame,
    first: date,
    days: int,
    *,
    start: date,
    reader: str,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``frame`` (a step's own days of bronze ``key``, from ``first`` on) preceded by the ``days``
    days before ``first`` (none before ``start``, the partitions' first day) read from the
    published partitions, and the lineage of what was read: ``history`` (which days) and
    ``history_data_versions`` (the hash of each file read).

    The history is read here rather than declared as a partition mapping on purpose: Dagster
    maps a window dependency both ways, so a backfill of two days of bronze would also claim the
    30 (44) following days of features, which fail for want of bronze that was never asked
    for. In Dagster's graph a feature day depends on its own day; the days read before it are
    recorded as metadata.
    """
    import polars as pl

    wanted = days_before(first, days, start)
    present = published_days(store, key, wanted, reader=reader)
    if not present:
        begins = "the partitions' first day" if not wanted else "no earlier day was ingested"
        return frame, {"history": f"none: data begins on {first} ({begins})"}
    table, versions = store.read_partitions(key, present)
    partial = "" if present[0] == wanted[0] else f"; none before {present[0]}: windows are partial"
    return pl.concat([pl.from_arrow(table), frame], how="vertical_relaxed"), {
        "history": f"{key.to_user_string()} {present[0]} .. {present[-1]} "
        f"({len(present)} days{partial})",
        "history_data_versions": dg.MetadataValue.json(versions),
    }


def combined_lineage(lineages: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The lineage of a step that read the history of several bronze assets (by name): their
    ``history`` lines joined, their data versions by name (none when nothing was read)."""
    combined: dict[str, Any] = {"history": "; ".join(lin["history"] for lin in lineages.values())}
    versions = {
        name: lin["history_data_versions"].data
        for name, lin in lineages.items()
        if "history_data_versions" in lin
    }
    if versions:
        combined["history_data_versions"] = dg.MetadataValue.json(versions)
    return combined


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
