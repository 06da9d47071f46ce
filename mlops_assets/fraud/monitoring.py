"""How the fraud champion is watched once it serves: its performance on the labels that arrived
since, and the drift of its inputs away from its own training data.

**Live performance** (:func:`scored_rows`, :func:`with_labels`, :func:`performance_table`).
Every transaction scored on the days ``[P - horizon, P]``, by the batch (``fraud/scores``,
``source = "batch"``) or by the API (``serving/predictions_log``, ``source = "api"``: the answers
it sent, never the predictions a candidate scored in shadow beside them), is joined
with its label *as known at the end of day P* (``as_of = P + 1 day, 00:00 UTC``): a label counts
only if ``label_available_ts <= as_of``, otherwise the row is unlabelled. One row per scored day,
source and model version says how many rows were scored, how many are labelled (the label
coverage) and the metrics on the labelled ones. Partition P therefore re-evaluates the last
``horizon`` days with everything known by the end of P: the same day reads better-covered from
one partition to the next as chargebacks land, and each row says its ``as_of``. ``as_of`` comes
from the partition, never from the clock, so a partition recomputed later gives the same bytes.

The API answers a payment again when the terminal retries the request: an API ``tx_id`` counts
once, with the last answer (latest ``ts``, then ``request_id``); a request without a ``tx_id``
cannot be labelled and counts as an unlabelled row. Batch and API rows are never merged: the same
payment scored by both appears once in each source.

**The champion's judgement** (:func:`pooled_champion_performance`, :func:`champion_verdict`).
The champion is judged on its own batch rows, pooled over the scored days whose labels are
*mature* (label coverage at least ``min_label_coverage``). Before maturity the known labels are
biased, not merely fewer: a fraud is known as soon as its chargeback arrives (1 to N days), a
genuine payment only when the chargeback window closes (exactly N days), so a young day's
labelled rows are nearly all frauds and its PR-AUC says nothing about the champion. The pooled
PR-AUC is compared with the PR-AUC the champion showed on its validation period (the metric
``pr_auc`` logged on its MLflow run) through :func:`performance_verdict`: it fails when it falls
more than a tolerance below it, with enough labelled rows and frauds to trust the figure.

**Drift** (:func:`drift_frame`). The reference is the champion's own training set: the exact
version its run was tagged with (``training_set.version``, :func:`load_training_set`), and the
champion's probabilities on it. The current side is day P's transactions joined with their card
and merchant snapshots as ``fraud/scores`` joins them, and the probabilities ``fraud/scores``
gave them. Both become the model's inputs (:data:`DRIFT_NUMERIC`, :data:`DRIFT_CATEGORICAL`,
the hour of the day as the pipeline derives it) plus ``fraud_probability``; the comparison itself
is :func:`mlops_assets.core.monitoring.drift.assess_drift`.

Pure: no Dagster. The monitoring assets (:mod:`mlops_assets.fraud.monitors`) import this module
inside their bodies, so numpy, pandas and Polars load only when a monitor runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl

from mlops_assets.core.monitoring.verdicts import INSUFFICIENT_DATA, Verdict, performance_verdict
from mlops_assets.core.tracking import TAG_TRAINING_SET_DATA_VERSION, TAG_TRAINING_SET_VERSION
from mlops_assets.fraud import training

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_assets.core.storage import DatasetVersion, VersionedDataset

USE_CASE = "fraud"
BATCH, API = "batch", "api"
LABEL = "is_fraud"
SCORE = "fraud_probability"
KEYS = ("day", "source", "model_name", "model_version")
#: The columns of one scored transaction, whichever path scored it.
SCORED_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.String(),
    "source": pl.String(),
    "model_name": pl.String(),
    "model_version": pl.String(),
    "tx_id": pl.String(),
    SCORE: pl.Float64(),
}
METRICS = ("pr_auc", "roc_auc", "recall_at_precision", "precision_at_top_k", "brier")
#: The columns of ``fraud/live_performance``, in order.
PERFORMANCE_COLUMNS = (
    *KEYS,
    "as_of",
    "rows",
    "labelled",
    "label_coverage",
    "positives",
    *METRICS,
)
#: The metric the champion is judged on, and the run metric it is compared with.
JUDGED_METRIC = "pr_auc"

#: What drift is measured on: the model's numeric inputs and its output...
DRIFT_NUMERIC: list[str] = [*training.NUMERIC_FEATURES, SCORE]
#: ...and its categorical inputs, with the UTC hour the pipeline derives from ``event_ts``.
DRIFT_CATEGORICAL: list[str] = [*training.CATEGORICAL_FEATURES, "hour"]

#: The run tags naming a model's training set version (``candidates.lineage_tags``).
TRAINING_SET_VERSION_TAG = TAG_TRAINING_SET_VERSION
TRAINING_SET_DATA_VERSION_TAG = TAG_TRAINING_SET_DATA_VERSION


# --- the days -----------------------------------------------------------------------------------


def as_of(day: str) -> datetime:
    """The evaluation time of partition ``day``: the end of that UTC day (the next midnight)."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)


def evaluation_days(day: str, horizon: int) -> list[str]:
    """The scored days partition ``day`` re-evaluates, oldest first: ``day - horizon .. day``."""
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, not {horizon}")
    last = date.fromisoformat(day)
    return [(last - timedelta(days=k)).isoformat() for k in range(horizon, -1, -1)]


# --- scored rows --------------------------------------------------------------------------------


def _empty_scored() -> pl.DataFrame:
    return pl.DataFrame(schema=SCORED_SCHEMA)


def batch_rows(scores: Mapping[str, pl.DataFrame | pa.Table]) -> pl.DataFrame:
    """The batch scores of each day (``{day: fraud/scores partition}``) as scored rows.

    A day is the partition it was scored in (its transactions' UTC day)."""
    frames = []
    for day, frame in sorted(scores.items()):
        frame = frame if isinstance(frame, pl.DataFrame) else pl.from_arrow(frame)
        frames.append(
            frame.select(
                pl.lit(day).alias("day"),
                pl.lit(BATCH).alias("source"),
                pl.col("model_name").cast(pl.String),
                pl.col("model_version").cast(pl.String),
                pl.col("tx_id").cast(pl.String),
                pl.col(SCORE).cast(pl.Float64),
            )
        )
    return pl.concat(frames) if frames else _empty_scored()


def api_rows(log: Mapping[str, pl.DataFrame | pa.Table], use_case: str = USE_CASE) -> pl.DataFrame:
    """The API's answers to ``use_case`` in each day of its request log (``{day: log}``) as
    scored rows.

    Only the answers the API sent count: a shadow prediction (``role = "shadow"``, scored beside
    the answer during a rollout and never sent) is not the model's answer to the payment, and
    counting it would put the candidate's scores in the live performance of a version that did
    not answer (:func:`~mlops_assets.core.monitoring.live_comparison.served_rows`). Among them,
    only answered requests count (``status < 400``: a refusal has no prediction). A ``tx_id``
    answered several times (a retried request) counts once, with its last answer (latest
    ``ts``, then ``request_id``, across the days given); a request without one is kept, unlabelled.
    The day of a row is the UTC day the API answered it (its log partition).
    """
    from mlops_assets.core.monitoring.live_comparison import served_rows

    frames = []
    for day, table in sorted(log.items()):
        frame = served_rows(table)
        if frame.is_empty():
            continue
        # An answer (status < 400) always carries its prediction; a refusal never does.
        answered = frame.filter(
            (pl.col("use_case") == use_case)
            & (pl.col("status") < 400)
            & pl.col("prediction").is_not_null()
        )
        frames.append(
            answered.select(
                pl.lit(day).alias("day"),
                pl.lit(API).alias("source"),
                pl.col("model_name").cast(pl.String),
                pl.col("model_version").cast(pl.String),
                # The request body's tx_id, vectorised; null when absent (or the body unreadable).
                pl.col("request_json").str.json_path_match("$.tx_id").alias("tx_id"),
                pl.col("prediction").cast(pl.Float64).alias(SCORE),
                pl.col("ts"),
                pl.col("request_id").cast(pl.String),
            )
        )
    if not frames:
        return _empty_scored()
    rows = pl.concat(frames).sort("ts", "request_id", nulls_last=False)
    with_id = rows.filter(pl.col("tx_id").is_not_null()).unique(
        "tx_id", keep="last", maintain_order=True
    )
    without_id = rows.filter(pl.col("tx_id").is_null())
    return pl.concat([with_id, without_id]).sort("ts", "request_id").select(list(SCORED_SCHEMA))


def scored_rows(batch: pl.DataFrame, api: pl.DataFrame) -> pl.DataFrame:
    """Batch and API rows together (:data:`SCORED_SCHEMA`), kept apart by ``source``."""
    return pl.concat([batch.select(list(SCORED_SCHEMA)), api.select(list(SCORED_SCHEMA))])


def with_labels(
    scored: pl.DataFrame, labels: pl.DataFrame | pa.Table | None, evaluated_at: datetime
) -> pl.DataFrame:
    """``scored`` with ``is_fraud`` as known at ``evaluated_at``: null when the label became
    available later, or when there is none. Every scored row is kept, in its order.

    ``labels`` (bronze ``fraud/labels`` of the scored days) holds one label per ``tx_id``."""
    if labels is None:
        return scored.with_columns(pl.lit(None, pl.Int8).alias(LABEL))
    frame = labels if isinstance(labels, pl.DataFrame) else pl.from_arrow(labels)
    known = frame.filter(pl.col("label_available_ts") <= evaluated_at).select(
        pl.col("tx_id").cast(pl.String), pl.col(LABEL).cast(pl.Int8)
    )
    # One label per payment (the bronze checks refuse a day that repeats one); unique() keeps
    # the join from ever multiplying a scored row if a user's file slipped one through.
    known = known.unique("tx_id", keep="first", maintain_order=True)
    return scored.join(known, on="tx_id", how="left", maintain_order="left")


# --- the table ----------------------------------------------------------------------------------


def _version_order(version: Any) -> tuple[int, str]:
    """Model versions are numbers in text: "10" after "9"."""
    text = "" if version is None else str(version)
    return (int(text), text) if text.isdigit() else (10**12, text)


def empty_performance_table() -> pd.DataFrame:
    """The table of a day with nothing scored: the columns, no row."""
    columns = {c: pd.Series(dtype="string") for c in KEYS}
    columns["as_of"] = pd.Series(dtype="datetime64[us, UTC]")
    for c in ("rows", "labelled", "positives"):
        columns[c] = pd.Series(dtype="int64")
    for c in ("label_coverage", *METRICS):
        columns[c] = pd.Series(dtype="float64")
    return pd.DataFrame(columns)[list(PERFORMANCE_COLUMNS)]


def performance_table(
    labelled: pl.DataFrame,
    evaluated_at: datetime,
    *,
    precision_target: float = 0.9,
    top_k: int = 100,
) -> pd.DataFrame:
    """One row per scored day, source and model version (:data:`PERFORMANCE_COLUMNS`): rows,
    labels known at ``evaluated_at`` and the metrics on them
    (:func:`mlops_assets.core.monitoring.performance.classification_performance`; NaN for a
    group with fewer than two labelled rows or a single class). Sorted by day, source, model
    name and version (as a number)."""
    from mlops_assets.core.monitoring.performance import classification_performance

    if labelled.is_empty():
        return empty_performance_table()
    frame = labelled.select(*KEYS, SCORE, LABEL).to_pandas()
    # Nullable integers: a label not known yet is <NA>, never a guess.
    frame[LABEL] = frame[LABEL].astype("Float64")
    table = classification_performance(
        frame,
        label=LABEL,
        score=SCORE,
        by=list(KEYS),
        precision_target=precision_target,
        top_k=top_k,
    )
    table.insert(len(KEYS), "as_of", pd.Timestamp(evaluated_at).as_unit("us"))
    order = sorted(
        range(len(table)),
        key=lambda i: (
            table["day"].iat[i],
            table["source"].iat[i],
            str(table["model_name"].iat[i]),
            _version_order(table["model_version"].iat[i]),
        ),
    )
    table = table.iloc[order].reset_index(drop=True)
    return table[list(PERFORMANCE_COLUMNS)].astype(
        {"rows": "int64", "labelled": "int64", "positives": "int64"}
    )


# --- the champion's judgement -------------------------------------------------------------------


@dataclass(frozen=True)
class PooledPerformance:
    """The champion's batch rows over its mature days, as one sample."""

    model_version: str
    #: The scored days pooled (label coverage at least the minimum), oldest first.
    days: tuple[str, ...]
    #: Days the champion scored whose labels are not mature yet (left out).
    immature_days: tuple[str, ...]
    rows: int
    labelled: int
    positives: int
    pr_auc: float | None
    metrics: Mapping[str, float]


def pooled_champion_performance(
    labelled: pl.DataFrame,
    table: pd.DataFrame,
    *,
    model_version: str,
    min_label_coverage: float = 0.99,
    precision_target: float = 0.9,
    top_k: int = 100,
) -> PooledPerformance:
    """The champion ``model_version``'s batch rows pooled over the days of ``table`` whose label
    coverage is at least ``min_label_coverage`` (see the module docstring for why younger days
    are left out), with its metrics on them."""
    from mlops_assets.core.monitoring.performance import classification_performance

    version = str(model_version)
    mine = table[(table["source"] == BATCH) & (table["model_version"].astype(str) == version)]
    mature = mine[mine["label_coverage"] >= min_label_coverage]
    days = tuple(sorted(mature["day"].unique()))
    immature = tuple(sorted(set(mine["day"]) - set(days)))
    rows = labelled.filter(
        (pl.col("source") == BATCH)
        & (pl.col("model_version") == version)
        & pl.col("day").is_in(list(days))
    )
    if rows.is_empty():
        return PooledPerformance(version, days, immature, 0, 0, 0, None, {})
    frame = rows.select("source", "model_version", SCORE, LABEL).to_pandas()
    frame[LABEL] = frame[LABEL].astype("Float64")
    [pooled] = classification_performance(
        frame,
        label=LABEL,
        score=SCORE,
        by=["source", "model_version"],
        precision_target=precision_target,
        top_k=top_k,
    ).to_dict("records")
    metrics = {m: float(pooled[m]) for m in METRICS}
    value = metrics[JUDGED_METRIC]
    return PooledPerformance(
        model_version=version,
        days=days,
        immature_days=immature,
        rows=int(pooled["rows"]),
        labelled=int(pooled["labelled"]),
        positives=int(pooled["positives"]),
        pr_auc=None if math.isnan(value) else value,
        metrics=metrics,
    )


def champion_verdict(
    pooled: PooledPerformance | None,
    *,
    validated_pr_auc: float | None,
    tolerance: float,
    min_labelled_rows: int,
    min_positives: int,
) -> Verdict:
    """Does the champion still perform as validated? Its pooled live PR-AUC against its
    validation PR-AUC minus ``tolerance``
    (:func:`~mlops_assets.core.monitoring.verdicts.performance_verdict`).

    "insufficient data" (never an alarm) when there is no champion (``pooled`` None), no mature
    day yet, fewer than ``min_labelled_rows`` labelled rows or fewer than ``min_positives``
    frauds among them: PR-AUC on a handful of frauds swings by tenths from day to day, and a
    retraining on noise is a storm."""
    if pooled is None:
        return Verdict(INSUFFICIENT_DATA, "no champion to judge yet", JUDGED_METRIC, None, None)
    if not pooled.days:
        waiting = (
            f" (the labels of {', '.join(pooled.immature_days)} are still arriving)"
            if pooled.immature_days
            else ""
        )
        return Verdict(
            INSUFFICIENT_DATA,
            f"{JUDGED_METRIC}: champion v{pooled.model_version} has no batch-scored day with "
            f"mature labels yet{waiting}",
            JUDGED_METRIC,
            None,
            None,
        )
    if pooled.labelled >= min_labelled_rows and pooled.positives < min_positives:
        return Verdict(
            INSUFFICIENT_DATA,
            f"{JUDGED_METRIC}: only {pooled.positives:,} frauds among the "
            f"{pooled.labelled:,} labelled rows of {len(pooled.days)} mature day(s), fewer than "
            f"the {min_positives:,} needed to judge it",
            JUDGED_METRIC,
            pooled.pr_auc,
            None,
        )
    verdict = performance_verdict(
        metric=JUDGED_METRIC,
        live=pooled.pr_auc,
        promised=validated_pr_auc,
        labelled_rows=pooled.labelled,
        min_labelled_rows=min_labelled_rows,
        tolerance=tolerance,
    )
    days = pooled.days
    span = days[0] if len(days) == 1 else f"{days[0]} .. {days[-1]}"
    return Verdict(
        verdict.status,
        f"champion v{pooled.model_version}, batch, mature days {span}: {verdict.reason}",
        verdict.metric,
        verdict.value,
        verdict.threshold,
    )


# --- drift --------------------------------------------------------------------------------------


def training_set_version(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """``(dt, run_id)`` of the training set version a model's run was tagged with, or None."""
    from mlops_assets.core.storage import parse_version_name

    return parse_version_name(tags.get(TRAINING_SET_VERSION_TAG, "") or "")


def load_training_set(
    dataset: VersionedDataset, tags: Mapping[str, str]
) -> tuple[pa.Table, DatasetVersion] | str:
    """The exact training set version named by a model run's ``tags``, or why it cannot be read
    (a sentence): no tag (a model registered by hand), the version deleted, or its data version
    not the one the model was trained on."""
    from mlops_assets.core.storage import DatasetVersion, read_pointer

    named = training_set_version(tags)
    if named is None:
        return f"the champion's run has no {TRAINING_SET_VERSION_TAG} tag: no training set to compare with"
    dt, run_id = named
    manifest = read_pointer(dataset.version_dir(dt, run_id) / dataset.MANIFEST)
    if manifest is None:
        return f"the champion's training set dt={dt}/run_id={run_id} is not in the store"
    version = DatasetVersion(**manifest)
    expected = tags.get(TRAINING_SET_DATA_VERSION_TAG)
    if expected and expected != version.data_version:
        return (
            f"the champion's training set dt={dt}/run_id={run_id} holds data version "
            f"{version.data_version[:12]}, not the {expected[:12]} it was trained on"
        )
    return dataset.read(version), version


def drift_frame(frame: pd.DataFrame | pl.DataFrame, probability: Sequence[float]) -> pd.DataFrame:
    """The columns drift is measured on (:data:`DRIFT_NUMERIC`, :data:`DRIFT_CATEGORICAL`) for
    the model-input rows of ``frame`` and the fraud ``probability`` of each."""
    pandas = frame.to_pandas() if isinstance(frame, pl.DataFrame) else frame
    out = pd.DataFrame(index=pandas.index)
    numeric = training._as_float(pandas[training.NUMERIC_FEATURES])
    categories = training._as_category(pandas[training.CATEGORICAL_FEATURES])
    for column in training.NUMERIC_FEATURES:
        out[column] = numeric[column]
    out[SCORE] = np.asarray(probability, dtype=np.float64)
    for column in training.CATEGORICAL_FEATURES:
        out[column] = categories[column]
    hours = training._hour_of_day(pandas[[training.TIME_COLUMN]]).iloc[:, 0]
    # The pipeline's own hour (UTC, -1 when the time is missing), shown as "07" rather than 7.
    out["hour"] = hours.map(lambda h: "missing" if h < 0 else f"{h:02d}")
    return out.reset_index(drop=True)[[*DRIFT_NUMERIC, *DRIFT_CATEGORICAL]]


def current_probabilities(
    joined: pl.DataFrame, scores: pl.DataFrame | None, model_version: str
) -> np.ndarray | None:
    """The probabilities ``fraud/scores`` gave ``joined``'s transactions (in ``joined``'s order),
    or None when they cannot stand for the champion's: no scores, scores by another version (the
    champion changed after the day was scored), or a transaction without a score."""
    if scores is None or scores.is_empty():
        return None
    versions = set(scores["model_version"].cast(pl.String).unique().to_list())
    if versions != {str(model_version)}:
        return None
    aligned = joined.select("tx_id").join(
        scores.select(pl.col("tx_id").cast(pl.String), pl.col(SCORE).cast(pl.Float64)),
        on="tx_id",
        how="left",
        maintain_order="left",
    )
    if aligned[SCORE].null_count():
        return None
    return aligned[SCORE].to_numpy()
