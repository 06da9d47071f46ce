"""Fraud's live evidence: the champion and the candidate on the same payments the API scored
during a rollout, judged on the chargebacks that arrived since.

While the candidate is in shadow (the champion answers, the candidate scores beside it) or in
canary (the candidate answers for a share of cards, the champion scores beside it), the request
log holds both fraud probabilities of each such request
(:func:`~mlops_assets.core.monitoring.live_comparison.paired_requests`). Here they meet their
labels, with the live-performance join of :mod:`mlops_assets.fraud.monitoring`: the request's
``tx_id`` against bronze ``fraud/labels``, a label counting only if it was available at
``as_of``, the end of the partition's day; a payment answered several times (a terminal's retry)
counts once, with its last answer.

* :data:`LIVE_COMPARISON`: what ``serving/rollout_comparison`` adds for fraud: the PR-AUC of
  both versions on the same labelled payments, per day of the chargeback horizon;
* :func:`live_evidence`: what the promotion gate of ``fraud/champion`` takes when configured to:
  the labelled payments the gated candidate version scored beside the current champion version
  over a lookback of days, both PR-AUCs on them, and the verdict
  (:func:`~mlops_assets.core.monitoring.live_comparison.judge_live_evidence`).

Nothing heavy at module level (numpy and Polars load inside the functions): the assets import this
module inside their bodies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_assets.core.monitoring.live_comparison import (
    LabelledComparison,
    LiveEvidence,
    both_scored,
    judge_live_evidence,
)
from mlops_assets.core.rollout import Rollout
from mlops_assets.fraud.assets import MAX_CHARGEBACK_DAYS, MODEL_NAME

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from mlops_assets.core.asset_store import AssetStore

USE_CASE = "fraud"
#: The metric compared on live payments: the one the holdout gate and the monitors use.
METRIC = "pr_auc"
LABEL = "label"


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """PR-AUC (average precision) of ``scores`` against 0/1 ``labels``, as the holdout gate
    measures it (:func:`~mlops_assets.core.evaluation.classification_metrics`); NaN with fewer
    than two labels or a single class among them (no ranking to measure)."""
    import numpy as np

    from mlops_assets.core.evaluation import classification_metrics

    y = np.asarray(labels, dtype=np.float64)
    if len(y) < 2 or y.min() == y.max():
        return math.nan
    return float(classification_metrics(y, np.asarray(scores, dtype=np.float64))[METRIC])


def labelled_pairs(
    pairs: pl.DataFrame, labels: pl.DataFrame | None, evaluated_at: datetime
) -> pl.DataFrame:
    """The fraud requests of ``pairs`` (:func:`paired_requests`), one per payment (``tx_id`` of
    the request body) and pair of versions, with ``label``: ``is_fraud`` as known at
    ``evaluated_at`` (null when it arrived later or there is none; always null for a request
    without a ``tx_id``). A payment answered several times counts once, with its last answer
    (latest ``ts``, then ``request_id``), as in the live performance."""
    import polars as pl

    from mlops_assets.fraud import monitoring

    fraud = pairs.filter(pl.col("use_case") == USE_CASE).with_columns(
        pl.col("request_json").str.json_path_match("$.tx_id").alias("tx_id")
    )
    ordered = fraud.sort("ts", "request_id")
    with_id = ordered.filter(pl.col("tx_id").is_not_null()).unique(
        ["tx_id", "champion_version", "candidate_version"], keep="last", maintain_order=True
    )
    rows = pl.concat([with_id, ordered.filter(pl.col("tx_id").is_null())]).sort(
        "day", "ts", "request_id"
    )
    joined = monitoring.with_labels(rows, labels, evaluated_at)
    return joined.rename({monitoring.LABEL: LABEL})


def read_labels(asset_store: AssetStore, days: Sequence[str]) -> pl.DataFrame | None:
    """Bronze ``fraud/labels`` of ``days`` (those published; None when there is none)."""
    import polars as pl

    from mlops_assets.fraud.schema import CASE

    tables = asset_store.available_partitions(CASE.key("labels"), list(days))
    return pl.concat([pl.from_arrow(t) for t in tables.values()]) if tables else None  # type: ignore[misc]


def attach_labels(
    asset_store: AssetStore, pairs: pl.DataFrame, days: Sequence[str], evaluated_at: datetime
) -> pl.DataFrame:
    """:func:`labelled_pairs` with the labels of ``days`` read from the asset store."""
    return labelled_pairs(pairs, read_labels(asset_store, days), evaluated_at)


#: Fraud's part of ``serving/rollout_comparison``.
LIVE_COMPARISON = LabelledComparison(
    metric=METRIC,
    higher_is_better=True,
    horizon_days=MAX_CHARGEBACK_DAYS,
    attach_labels=attach_labels,
    measure=pr_auc,
)


def gate_evidence(
    labelled: pl.DataFrame,
    *,
    candidate_version: str,
    champion_version: str | None,
    days: Sequence[str],
    min_labelled: int,
    min_gain: float,
    rollout: Rollout | None = None,
) -> LiveEvidence:
    """The verdict of :func:`labelled_pairs` on promoting ``candidate_version`` over
    ``champion_version``: only the payments those two exact versions both scored count (a
    candidate registered since, or a champion that served before, says nothing about them)."""
    import polars as pl

    mine = labelled.filter(
        (pl.col("candidate_version") == str(candidate_version))
        & (pl.col("champion_version") == str(champion_version))
    )
    known = mine.filter(both_scored() & pl.col(LABEL).is_not_null())
    y = known[LABEL].to_numpy()
    values = {
        side: pr_auc(y, known[f"{side}_score"].to_numpy()) if known.height else math.nan
        for side in ("champion", "candidate")
    }
    if mine.is_empty():
        mode = f"the rollout mode is {rollout.mode}" if rollout is not None else ""
        note = "no request was scored by both" + (f"; {mode}" if mode else "")
    else:
        note = f"{mine.height:,} payment(s) scored by both, {known.height:,} labelled so far"
    return judge_live_evidence(
        metric=METRIC,
        higher_is_better=True,
        candidate_version=candidate_version,
        champion_version=champion_version,
        labelled=known.height,
        champion_value=values["champion"],
        candidate_value=values["candidate"],
        min_labelled=min_labelled,
        min_gain=min_gain,
        days=days,
        note=note,
    )


def live_evidence(
    asset_store: AssetStore,
    *,
    day: str,
    candidate_version: str | int,
    champion_version: str | int | None,
    lookback_days: int,
    min_labelled: int,
    min_gain: float,
    rollout: Rollout | None = None,
) -> LiveEvidence:
    """The live evidence about promoting ``candidate_version`` over ``champion_version`` at the
    end of ``day``: the API requests of ``day - lookback_days .. day`` both versions scored
    (shadow or canary), joined with the labels known at the end of ``day``.

    ``as_of`` comes from the day, never the clock: the gate of a partition decided again later
    sees the same evidence. ``rollout``: the model's rollout setting, named in the reason when
    no request was scored by both."""
    import polars as pl

    from mlops_assets.core.monitoring.live_comparison import paired_requests
    from mlops_assets.fraud import monitoring
    from mlops_assets.serving.request_log import read_day

    candidate = str(candidate_version)
    champion = None if champion_version is None else str(champion_version)
    days = monitoring.evaluation_days(day, lookback_days)
    settings: dict[str, Any] = {
        "candidate_version": candidate,
        "champion_version": champion,
        "days": days,
        "min_labelled": min_labelled,
        "min_gain": min_gain,
        "rollout": rollout,
    }
    if champion is None or champion == candidate:
        # Nothing to compare on live traffic: the verdict says so without reading the log.
        return gate_evidence(_no_pairs(), **settings)
    pairs = paired_requests({d: read_day(asset_store.base, d) for d in days}).filter(
        (pl.col("use_case") == USE_CASE)
        & (pl.col("model_name") == MODEL_NAME)
        & (pl.col("candidate_version") == candidate)
        & (pl.col("champion_version") == champion)
    )
    labelled = attach_labels(asset_store, pairs, days, monitoring.as_of(day))
    return gate_evidence(labelled, **settings)


def _no_pairs() -> pl.DataFrame:
    import polars as pl

    from mlops_assets.core.monitoring.live_comparison import paired_requests

    return paired_requests({}).with_columns(
        pl.lit(None, pl.String).alias("tx_id"), pl.lit(None, pl.Int8).alias(LABEL)
    )
