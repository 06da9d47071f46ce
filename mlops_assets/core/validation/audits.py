"""Audits: the blocking checks of an asset, judged on its staged data before it is published.

An audit runs inside the asset's step on the staged data (write, audit, publish:
:mod:`mlops_assets.core.publishing`), so rejected data never replaces good data and nothing built
downstream ever reads it. The factories here make one from a GX suite (:func:`gx_audit`), a key
(:func:`unique_key_audit`) or a regular time series (:func:`time_series_audits`). Audits are
partition-aware: each partition of a step is judged on its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core.validation.expectations import ExpectationSuiteSpec, check_name, run_suite
from mlops_assets.core.validation.frame_checks import (
    duplicate_timestamps,
    slot_unit,
    step_ns,
    time_gaps,
    unique_keys,
    unique_name,
)
from mlops_assets.core.validation.results import MAX_SAMPLES, SuiteResult

if TYPE_CHECKING:
    from mlops_assets.core.publishing import Audit


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
        check_name(name or suite.name),
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
        check_name(name or unique_name(cols)),
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

    unit = slot_unit(freq)
    step_ns(freq)  # fail at definition time on a frequency with no fixed length
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


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
