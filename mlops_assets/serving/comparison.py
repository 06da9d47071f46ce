"""The live comparison of champion and candidate as a Dagster asset: for every use case the API
serves, on every day a candidate was rolled out (shadow or canary), how far the two versions
agreed on the same requests, and, for a use case whose truth arrives later (fraud's chargebacks),
which of the two it proved right.

Thin glue over :mod:`mlops_assets.core.monitoring.live_comparison`. A use case adds its labelled
figures by exporting ``LIVE_COMPARISON`` (a
:class:`~mlops_assets.core.monitoring.live_comparison.LabelledComparison`) from its ``rollout``
module (``mlops_assets/<use case>/rollout.py``): the asset finds it as the API finds endpoints.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context` and configs.
import importlib
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.monitoring.live_comparison import COMPARISON_COLUMNS, KEYS, LABELLED_COLUMNS
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.serving.assets import DAILY, GROUP, PREDICTIONS_LOG

if TYPE_CHECKING:
    import polars as pl

    from mlops_assets.core.monitoring.live_comparison import Agreement, LabelledComparison

ROLLOUT_COMPARISON = dg.AssetKey(["serving", "rollout_comparison"])

#: The columns of the stored table, in order: the generic comparison of the requests, then the
#: labelled figures of use cases that have them (null for the others).
TABLE_COLUMNS = (
    *KEYS,
    "as_of",
    *COMPARISON_COLUMNS[len(KEYS) :],
    "metric",
    *LABELLED_COLUMNS,
)


def live_comparisons(use_cases: Sequence[str]) -> dict[str, "LabelledComparison"]:
    """The use cases of ``use_cases`` whose ``rollout`` module exports ``LIVE_COMPARISON``
    (their labelled figures), by use case."""
    found = {}
    for name in use_cases:
        module_name = f"mlops_assets.{name}.rollout"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        comparison = getattr(module, "LIVE_COMPARISON", None)
        if comparison is not None:
            found[name] = comparison
    return found


@deployment_defaults("serving__rollout_comparison")
class RolloutComparisonConfig(dg.Config):
    """When champion and candidate count as agreeing on a request."""

    decision_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"fraud": 0.5, "heart": 0.5},
        description="Use cases whose prediction is a probability, with their decision "
        "threshold: the two versions agree when both scores fall on the same side of it.",
    )
    relative_tolerance: float = Field(
        default=0.05,
        ge=0,
        description="Other use cases (a price, a demand, a lift): the two predictions agree when "
        "they are within this share of the larger one.",
    )

    def agreement(self, use_case: str) -> "Agreement":
        """The agreement rule of ``use_case``."""
        from mlops_assets.core.monitoring.live_comparison import Agreement

        if use_case in self.decision_thresholds:
            return Agreement.decision(self.decision_thresholds[use_case])
        return Agreement.within(self.relative_tolerance)


def _days(day: str, horizon: int) -> list[str]:
    last = date.fromisoformat(day)
    return [(last - timedelta(days=k)).isoformat() for k in range(horizon, -1, -1)]


def within_horizons(
    pairs: "pl.DataFrame", day: str, labelled: dict[str, "LabelledComparison"]
) -> "pl.DataFrame":
    """The pairs partition ``day`` reports: those of ``day``, and for a use case with labelled
    figures those of its whole horizon (their truth may have arrived since)."""
    import polars as pl

    kept = pl.col("day") == day
    for use_case, comparison in labelled.items():
        since = _days(day, comparison.horizon_days)[0]
        kept = kept | ((pl.col("use_case") == use_case) & (pl.col("day") >= since))
    return pairs.filter(kept)


def _labelled_schema(by: Sequence[str]) -> dict[str, Any]:
    import polars as pl

    return {
        **dict.fromkeys(by, pl.String()),
        "metric": pl.String(),
        "labelled": pl.Int64(),
        "champion_value": pl.Float64(),
        "candidate_value": pl.Float64(),
    }


def labelled_figures(
    labelled: dict[str, "LabelledComparison"],
    with_labels: dict[str, "pl.DataFrame"],
    by: Sequence[str],
) -> "pl.DataFrame":
    """Each use case's metric of both versions on the same labelled requests, per group of
    ``by`` (:func:`~mlops_assets.core.monitoring.live_comparison.labelled_comparison`), with the
    metric's name; ``with_labels``: the use case's pairs with their ``label``."""
    import polars as pl

    from mlops_assets.core.monitoring.live_comparison import labelled_comparison

    schema = _labelled_schema(by)
    measured = [
        labelled_comparison(frame, labelled[use_case].measure, by=by)
        .with_columns(pl.lit(labelled[use_case].metric).alias("metric"))
        .select(list(schema))
        for use_case, frame in sorted(with_labels.items())
    ]
    return pl.concat(measured) if measured else pl.DataFrame(schema=schema)


def comparison_rows(
    pairs: "pl.DataFrame",
    day: str,
    config: RolloutComparisonConfig,
    labelled: dict[str, "LabelledComparison"],
    with_labels: dict[str, "pl.DataFrame"],
) -> "pl.DataFrame":
    """The stored table of partition ``day`` (:data:`TABLE_COLUMNS`) from its pairs
    (:func:`within_horizons`): the generic comparison per day and pair of versions, the labelled
    figures joined on for the use cases that have them, labels as known at the end of ``day``."""
    import polars as pl

    from mlops_assets.core.monitoring import live_comparison as lc

    table = lc.comparison_table(pairs, config.agreement)
    figures = labelled_figures(labelled, with_labels, lc.KEYS)
    out = table.join(figures, on=list(lc.KEYS), how="left", nulls_equal=True).with_columns(
        pl.lit(lc.end_of_day(day)).cast(pl.Datetime("us", "UTC")).alias("as_of")
    )
    return out.select(TABLE_COLUMNS)


@dg.asset(
    key=ROLLOUT_COMPARISON,
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[PREDICTIONS_LOG],
    # One run per day: the IO manager stores one partition per output, and each day is judged
    # with the labels known at its own end.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    kinds={"polars"},
)
def rollout_comparison(
    context: dg.AssetExecutionContext, config: RolloutComparisonConfig, asset_store: AssetStore
):
    """Champion against candidate on the same live requests, per day, use case and pair of
    versions: the requests both scored (the candidate in shadow beside the champion's answer, or
    answering a canary's share with the champion in shadow), how often they agree (the same
    decision for a probability, within a tolerance for a number), the correlation of their scores
    and their mean absolute difference. For fraud, the PR-AUC of each on the same payments once
    their chargebacks are known: each partition re-measures the chargeback horizon with the
    labels known at the end of its day (`as_of`). A day without a rollout has no row."""
    import polars as pl

    from mlops_assets.core.monitoring.live_comparison import end_of_day, paired_requests
    from mlops_assets.serving.request_log import read_day
    from mlops_assets.use_cases import USE_CASES

    day = context.partition_key
    labelled = live_comparisons(USE_CASES)
    horizon = max((c.horizon_days for c in labelled.values()), default=0)
    log = {d: read_day(asset_store.base, d) for d in _days(day, horizon)}
    pairs = within_horizons(paired_requests(log), day, labelled)
    as_of = end_of_day(day)
    with_labels = {}
    for use_case, comparison in labelled.items():
        mine = pairs.filter(pl.col("use_case") == use_case)
        if mine.height:
            days = _days(day, comparison.horizon_days)
            with_labels[use_case] = comparison.attach_labels(asset_store, mine, days, as_of)
    table = comparison_rows(pairs, day, config, labelled, with_labels)
    pooled = labelled_figures(labelled, with_labels, _POOLED)
    yield dg.Output(table, metadata=_metadata(table, day, pooled, labelled))


# The labelled figures pooled over the horizon: per pair of versions, all days together.
_POOLED = ("use_case", "model_name", "champion_version", "candidate_version")
# Rows of each table shown in the metadata (the stored table has them all).
_SHOWN_ROWS = 30


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if v != v else round(v, 4)) if isinstance(v, float) else v for k, v in row.items()
    }


def _number(value: Any) -> Any:
    return dg.MetadataValue.null() if value is None or value != value else float(value)


def _metadata(
    table: "pl.DataFrame",
    day: str,
    pooled: "pl.DataFrame",
    labelled: dict[str, "LabelledComparison"],
) -> dict[str, Any]:
    """What the UI shows: the day's comparison per pair of versions, the labelled figures per day
    of the horizon, and per use case the headline numbers of its busiest pair of versions that
    day, with its labelled figures pooled over the horizon (what the promotion gate weighs)."""
    import polars as pl

    from mlops_assets.core import reporting
    from mlops_assets.core.monitoring.live_comparison import end_of_day

    today = table.filter(pl.col("day") == day)
    metadata: dict[str, Any] = {
        "as_of": end_of_day(day).isoformat(),
        "paired_requests": int(today["requests"].sum()) if today.height else 0,
    }
    if today.is_empty():
        metadata["versions"] = dg.MetadataValue.md(
            "no request was scored by both a champion and a candidate on this day (no rollout)"
        )
    else:
        shown = [
            "use_case",
            "champion_version",
            "candidate_version",
            "requests",
            "scored",
            "answered_by_candidate",
            "candidate_failures",
            "agreement_rule",
            "agreement",
            "pearson",
            "spearman",
            "mean_abs_diff",
        ]
        rows = [_rounded(r) for r in today.select(shown).head(_SHOWN_ROWS).to_dicts()]
        metadata["versions"] = dg.MetadataValue.md(reporting.markdown_table(rows, shown))
    measured = table.filter(pl.col("metric").is_not_null())
    if measured.height:
        shown = [
            "day",
            "use_case",
            "champion_version",
            "candidate_version",
            "metric",
            "labelled",
            "champion_value",
            "candidate_value",
        ]
        rows = [_rounded(r) for r in measured.select(shown).tail(_SHOWN_ROWS).to_dicts()]
        metadata["labelled_by_day"] = dg.MetadataValue.md(reporting.markdown_table(rows, shown))
    for use_case in sorted(set(today["use_case"].to_list())):
        busiest = (
            today.filter(pl.col("use_case") == use_case)
            .sort("requests", descending=True, maintain_order=True)
            .row(0, named=True)
        )
        metadata |= {
            f"{use_case}/versions": f"champion v{busiest['champion_version']}, candidate "
            f"v{busiest['candidate_version']}",
            f"{use_case}/paired_requests": int(busiest["requests"]),
            f"{use_case}/agreement": _number(busiest["agreement"]),
            f"{use_case}/spearman": _number(busiest["spearman"]),
        }
        comparison = labelled.get(use_case)
        if comparison is None:
            continue
        same = pooled.filter(
            pl.all_horizontal([pl.col(c) == busiest[c] for c in _POOLED])
        ).to_dicts()
        if not same:
            continue
        [figures] = same
        days = _days(day, comparison.horizon_days)
        metric = comparison.metric
        metadata |= {
            f"{use_case}/labelled": int(figures["labelled"]),
            f"{use_case}/champion_{metric}": _number(figures["champion_value"]),
            f"{use_case}/candidate_{metric}": _number(figures["candidate_value"]),
            f"{use_case}/labelled_days": f"{days[0]} .. {days[-1]}",
        }
    return metadata
