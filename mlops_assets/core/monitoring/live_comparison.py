"""Champion and candidate on the same live requests: how far they agree, and which one the truth
that arrived later proves right.

While a candidate is rolled out (:mod:`mlops_assets.core.rollout`), the API logs two records for
a request it scores with both models: the answer it sent (role ``served``) and the prediction it
scored beside it and never sent (role ``shadow``), with the same ``request_id``. In shadow mode
the champion answers and the candidate is the shadow; in canary mode the candidate answers for
its share of entities and the champion is the shadow. Either way the pair is the same request
scored by both versions, so the comparison is like for like.

* :func:`served_rows`: only the answers that were sent (what traffic, latency, errors and live
  performance count: a shadow prediction is never an answer);
* :func:`paired_requests`: one row per request scored by both, ``champion_score`` beside
  ``candidate_score`` with both versions, whichever answered;
* :func:`comparison_table`: per day and (model, champion version, candidate version): how many
  requests were paired, the agreement rate (the same decision at a threshold for a classifier,
  predictions within a relative tolerance for a regressor: :class:`Agreement`), the Pearson and
  Spearman correlations of the scores and their mean absolute difference;
* :func:`labelled_comparison`: once the truth of the requests is known (a use case joins it:
  :class:`LabelledComparison`), the same metric of each version on the same labelled requests;
* :func:`judge_live_evidence`: whether that live evidence lets a promotion gate promote the
  candidate (:class:`LiveEvidence`; ``core.champion.gate`` takes it as a veto).

Pure: no Dagster; numpy, scipy and Polars are imported inside the functions (the code location
imports the assets that import this module).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from mlops_assets.core.rollout import SERVED_ROLE, SHADOW_ROLE

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    import pyarrow as pa

# The aliases a logged record names (the registry's `champion` and `candidate`); an old batch has
# no alias column: its records are the champion's answers.
CHAMPION_ALIAS = "champion"
CANDIDATE_ALIAS = "candidate"
ALIASES = (CHAMPION_ALIAS, CANDIDATE_ALIAS)

#: A comparison's group: the day of the requests, the use case, the registered model and the two
#: versions compared.
KEYS = ("day", "use_case", "model_name", "champion_version", "candidate_version")
#: The columns of :func:`comparison_table`, in order.
COMPARISON_COLUMNS = (
    *KEYS,
    "requests",
    "scored",
    "answered_by_candidate",
    "champion_failures",
    "candidate_failures",
    "agreement_rule",
    "agreement",
    "pearson",
    "spearman",
    "mean_abs_diff",
)
#: The columns :func:`labelled_comparison` adds to its groups.
LABELLED_COLUMNS = ("labelled", "champion_value", "candidate_value")


# --- the log's rows ----------------------------------------------------------------------------


def end_of_day(day: str) -> datetime:
    """The evaluation time of a daily partition ``day``: the next midnight, UTC. It comes from
    the partition, never the clock, so a day recomputed later gives the same answer."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)


def _frame(table: pa.Table | pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    return table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)  # type: ignore[return-value]


def with_roles(frame: pa.Table | pl.DataFrame) -> pl.DataFrame:
    """Request-log rows with ``role`` and ``alias`` filled in: a batch written before rollouts
    existed has neither column, and a null in either means the served answer of the champion."""
    import polars as pl

    frame = _frame(frame)
    filled = []
    for column, default in (("role", SERVED_ROLE), ("alias", CHAMPION_ALIAS)):
        if column in frame.columns:
            filled.append(pl.col(column).cast(pl.String).fill_null(default).alias(column))
        else:
            filled.append(pl.lit(default, pl.String).alias(column))
    return frame.with_columns(filled)


def served_rows(frame: pa.Table | pl.DataFrame) -> pl.DataFrame:
    """Only the answers the API sent (``role`` null or ``served``): a shadow prediction was never
    sent, so it is never counted as an answer, as traffic or as the champion's performance."""
    import polars as pl

    frame = _frame(frame)
    if "role" not in frame.columns:
        return frame
    return frame.filter(pl.col("role").is_null() | (pl.col("role") == SERVED_ROLE))


#: The columns of :func:`paired_requests`.
PAIR_SCHEMA_NAMES = (
    "day",
    "request_id",
    "ts",
    "use_case",
    "model_name",
    "champion_version",
    "candidate_version",
    "answered_by",
    "champion_status",
    "candidate_status",
    "champion_score",
    "candidate_score",
    "request_json",
)


def _pair_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "day": pl.String(),
        "request_id": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "use_case": pl.String(),
        "model_name": pl.String(),
        "champion_version": pl.String(),
        "candidate_version": pl.String(),
        "answered_by": pl.String(),
        "champion_status": pl.Int32(),
        "candidate_status": pl.Int32(),
        "champion_score": pl.Float64(),
        "candidate_score": pl.Float64(),
        "request_json": pl.String(),
    }


def paired_requests(log: Mapping[str, pa.Table | pl.DataFrame]) -> pl.DataFrame:
    """Every request of the days of ``log`` (``{day: request-log rows}``) that both a champion
    and a candidate scored: one row with ``champion_score`` and ``candidate_score``, both
    versions, the statuses of both scorings and which alias answered (``answered_by``:
    ``champion`` in shadow mode, ``candidate`` in canary mode). Sorted by day, time, request.

    A pair is a request's served record and its shadow record (same ``request_id``, use case and
    model), one held by each alias. A request scored by one model only (rollout off, or outside
    the rollout's share) is no pair. Both records are looked for in the same day's rows: a shadow
    scored across midnight from its answer (milliseconds a day) is not paired. ``ts`` and
    ``request_json`` are the served record's.
    """
    import polars as pl

    side = ["request_id", "use_case", "model_name", "model_version", "alias", "status"]
    frames = []
    for day, table in sorted(log.items()):
        frame = _frame(table)
        if frame.is_empty():
            continue
        frame = (
            with_roles(frame)
            .filter(pl.col("request_id").is_not_null())
            # A request logged twice in one role (it should not be) counts once, its last record.
            .sort("ts", "request_id")
        )
        served = frame.filter(pl.col("role") == SERVED_ROLE).unique(
            "request_id", keep="last", maintain_order=True
        )
        shadow = frame.filter(pl.col("role") == SHADOW_ROLE).unique(
            "request_id", keep="last", maintain_order=True
        )
        joined = served.select(*side, "prediction", "ts", "request_json").join(
            shadow.select(*side, "prediction"),
            on=["request_id", "use_case", "model_name"],
            how="inner",
            suffix="_shadow",
        )
        joined = joined.filter(
            pl.col("alias").is_in(ALIASES)
            & pl.col("alias_shadow").is_in(ALIASES)
            & (pl.col("alias") != pl.col("alias_shadow"))
        )
        frames.append(
            joined.select(
                pl.lit(day).alias("day"),
                "request_id",
                "ts",
                "use_case",
                "model_name",
                _pick("model_version", CHAMPION_ALIAS).alias("champion_version"),
                _pick("model_version", CANDIDATE_ALIAS).alias("candidate_version"),
                pl.col("alias").alias("answered_by"),
                _pick("status", CHAMPION_ALIAS).alias("champion_status"),
                _pick("status", CANDIDATE_ALIAS).alias("candidate_status"),
                _pick("prediction", CHAMPION_ALIAS).alias("champion_score"),
                _pick("prediction", CANDIDATE_ALIAS).alias("candidate_score"),
                "request_json",
            )
        )
    schema = _pair_schema()
    if not frames:
        return pl.DataFrame(schema=schema)
    out = pl.concat([f.cast(schema) for f in frames])  # type: ignore[arg-type]
    return out.sort("day", "ts", "request_id").select(PAIR_SCHEMA_NAMES)


def _pick(column: str, alias: str) -> pl.Expr:
    """``column`` of the record held by ``alias``: the served one's or the shadow's."""
    import polars as pl

    return (
        pl.when(pl.col("alias") == alias).then(pl.col(column)).otherwise(pl.col(f"{column}_shadow"))
    )


def both_scored() -> pl.Expr:
    """The pairs both models answered (status below 400 and a prediction on both sides): the only
    ones whose scores can be compared."""
    import polars as pl

    return (
        (pl.col("champion_status") < 400)
        & (pl.col("candidate_status") < 400)
        & pl.col("champion_score").is_not_null()
        & pl.col("candidate_score").is_not_null()
    )


# --- agreement and correlation -----------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """When two predictions of the same request agree.

    * ``decision``: a classifier's, at ``value`` (the decision threshold): both scores on the same
      side of it (a score equal to the threshold is a positive decision);
    * ``tolerance``: a regressor's, within ``value`` (a relative tolerance, 0.05 = 5 %) of the
      larger of the two in absolute value; equal predictions (zero included) always agree.
    """

    kind: Literal["decision", "tolerance"]
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("decision", "tolerance"):
            raise ValueError(f"agreement kind {self.kind!r}: use 'decision' or 'tolerance'")
        if not math.isfinite(self.value):
            raise ValueError(f"the {self.kind} of an agreement must be finite, not {self.value}")
        if self.kind == "tolerance" and self.value < 0:
            raise ValueError(f"a relative tolerance must be >= 0, not {self.value}")

    @classmethod
    def decision(cls, threshold: float) -> Agreement:
        return cls("decision", float(threshold))

    @classmethod
    def within(cls, tolerance: float) -> Agreement:
        return cls("tolerance", float(tolerance))

    def describe(self) -> str:
        """The rule in words, as the comparison table shows it."""
        if self.kind == "decision":
            return f"same decision at {self.value:g}"
        return f"within {self.value * 100:g}%"

    def agrees(self, champion: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """Per request, whether the two predictions agree."""
        import numpy as np

        a = np.asarray(champion, dtype=np.float64)
        b = np.asarray(candidate, dtype=np.float64)
        if self.kind == "decision":
            return (a >= self.value) == (b >= self.value)
        return np.abs(a - b) <= self.value * np.maximum(np.abs(a), np.abs(b))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r, NaN when it is undefined (fewer than two values, or a constant side)."""
    import numpy as np

    # A constant side is told by its range, not by its deviations from the mean: the mean of
    # three 0.2s is not exactly 0.2, which would make r a meaningless 0.0.
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    if denominator == 0.0 or not math.isfinite(denominator):
        return math.nan
    # Rounding can put |r| a hair above 1.
    return float(min(1.0, max(-1.0, float(np.dot(dx, dy)) / denominator)))


def score_agreement(
    champion: Sequence[float] | np.ndarray,
    candidate: Sequence[float] | np.ndarray,
    agreement: Agreement,
) -> dict[str, float]:
    """How close two models' scores of the same requests are: ``agreement`` (the share of
    requests on which they agree, by ``agreement``), ``pearson`` and ``spearman`` (the
    correlation of the scores and of their ranks, ties at their average rank; NaN with fewer than
    two requests or when one model gives every request the same score) and ``mean_abs_diff``.
    All NaN with no request."""
    import numpy as np
    from scipy.stats import rankdata

    a = np.asarray(champion, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"scores of shapes {a.shape} and {b.shape} are not one pair per request")
    if len(a) == 0:
        return dict.fromkeys(("agreement", "pearson", "spearman", "mean_abs_diff"), math.nan)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite numbers")
    return {
        "agreement": float(agreement.agrees(a, b).mean()),
        "pearson": _pearson(a, b),
        "spearman": _pearson(rankdata(a), rankdata(b)),
        "mean_abs_diff": float(np.abs(a - b).mean()),
    }


def _version_order(version: Any) -> tuple[int, str]:
    """Model versions are numbers in text: "10" after "9"."""
    text = "" if version is None else str(version)
    return (int(text), text) if text.isdigit() else (10**12, text)


def _group_order(row: Mapping[str, Any], by: Sequence[str]) -> tuple:
    return tuple(
        _version_order(row[c]) if c.endswith("_version") else ("" if row[c] is None else row[c])
        for c in by
    )


def comparison_table(
    pairs: pl.DataFrame,
    agreement_for: Callable[[str], Agreement],
    *,
    by: Sequence[str] = KEYS,
) -> pl.DataFrame:
    """One row per group of ``by`` (default :data:`KEYS`) of :func:`paired_requests`:
    ``requests`` (paired), ``scored`` (both answered: the comparison is on these),
    ``answered_by_candidate`` (canary answers), the failures of each side, then the rule
    (``agreement_for(use_case)``) and :func:`score_agreement` on the scored pairs. Sorted by the
    groups, versions as numbers. :data:`COMPARISON_COLUMNS` with the default ``by``."""
    import polars as pl

    columns = [*by, *COMPARISON_COLUMNS[len(KEYS) :]]
    schema = {
        **{c: pl.String() for c in by},
        **dict.fromkeys(
            (
                "requests",
                "scored",
                "answered_by_candidate",
                "champion_failures",
                "candidate_failures",
            ),
            pl.Int64(),
        ),
        "agreement_rule": pl.String(),
        **dict.fromkeys(("agreement", "pearson", "spearman", "mean_abs_diff"), pl.Float64()),
    }
    if pairs.is_empty():
        return pl.DataFrame(schema=schema).select(columns)
    flagged = pairs.with_columns(
        both_scored().alias("_scored"),
        ((pl.col("champion_status") >= 400) | pl.col("champion_score").is_null()).alias("_cf"),
        ((pl.col("candidate_status") >= 400) | pl.col("candidate_score").is_null()).alias("_kf"),
    )
    records = []
    for key, group in flagged.group_by(list(by), maintain_order=True):
        row = dict(zip(by, key, strict=True))
        rule = agreement_for(str(row.get("use_case")))
        scored = group.filter(pl.col("_scored"))
        row |= {
            "requests": group.height,
            "scored": scored.height,
            "answered_by_candidate": int((group["answered_by"] == CANDIDATE_ALIAS).sum()),
            "champion_failures": int(group["_cf"].sum()),
            "candidate_failures": int(group["_kf"].sum()),
            "agreement_rule": rule.describe(),
            **score_agreement(
                scored["champion_score"].to_numpy(), scored["candidate_score"].to_numpy(), rule
            ),
        }
        records.append(row)
    records.sort(key=lambda r: _group_order(r, by))
    return pl.DataFrame(records, schema=schema, orient="row").select(columns)


# --- on the truth that arrived later -----------------------------------------------------------


@dataclass(frozen=True)
class LabelledComparison:
    """How a use case measures champion and candidate on the truth of the requests they scored.

    ``metric``: the name of the figure (``pr_auc``), ``higher_is_better`` its direction;
    ``horizon_days``: how many days back the truth can still arrive (a chargeback: 14 days): the
    comparison of day P re-measures the requests of ``P - horizon .. P``;
    ``attach_labels(asset_store, pairs, days, as_of)``: ``pairs`` (:func:`paired_requests` of
    the use case) with a ``label`` column, the truth as known at ``as_of`` (null while unknown),
    one row per unit the truth is about (a payment answered twice counts once);
    ``measure(labels, scores)``: the metric of one model's scores, NaN when it cannot be
    measured (too few rows, one class only).
    """

    metric: str
    higher_is_better: bool
    horizon_days: int
    attach_labels: Callable[[Any, pl.DataFrame, Sequence[str], datetime], pl.DataFrame]
    measure: Callable[[np.ndarray, np.ndarray], float]


def labelled_comparison(
    labelled: pl.DataFrame,
    measure: Callable[[np.ndarray, np.ndarray], float],
    *,
    by: Sequence[str] = KEYS,
    label: str = "label",
) -> pl.DataFrame:
    """Per group of ``by``: ``labelled`` (scored pairs whose ``label`` is known) and the
    ``measure`` of the champion's and of the candidate's scores on exactly those requests
    (``champion_value``, ``candidate_value``; NaN when it cannot be measured). Sorted like
    :func:`comparison_table`."""
    import numpy as np
    import polars as pl

    schema = {
        **{c: pl.String() for c in by},
        "labelled": pl.Int64(),
        "champion_value": pl.Float64(),
        "candidate_value": pl.Float64(),
    }
    if labelled.is_empty():
        return pl.DataFrame(schema=schema)
    known = both_scored() & pl.col(label).is_not_null()
    records = []
    for key, group in labelled.group_by(list(by), maintain_order=True):
        row = dict(zip(by, key, strict=True))
        rows = group.filter(known)
        y = rows[label].to_numpy().astype(np.float64)
        values = {}
        for side in ("champion", "candidate"):
            value = measure(y, rows[f"{side}_score"].to_numpy()) if rows.height else math.nan
            values[f"{side}_value"] = float(value) if value is not None else math.nan
        records.append({**row, "labelled": rows.height, **values})
    records.sort(key=lambda r: _group_order(r, by))
    return pl.DataFrame(records, schema=schema, orient="row")


# --- the promotion gate's live evidence --------------------------------------------------------

LIVE_DECISIONS = ("promote", "keep")


@dataclass(frozen=True)
class LiveEvidence:
    """What the live requests say about promoting ``candidate_version`` over
    ``champion_version``: ``allows`` (the gate may promote, if its own rule agrees) or not, and
    why, with the figures: the labelled requests both scored and each one's ``metric`` on them.

    The gate (:func:`mlops_assets.core.champion.gate`) takes it as a veto: evidence that does not
    allow the promotion keeps the champion whatever the holdout says; evidence that allows it
    leaves the decision to the holdout rule.
    """

    allows: bool
    reason: str
    metric: str
    candidate_version: str
    champion_version: str | None
    labelled: int = 0
    champion_value: float | None = None
    candidate_value: float | None = None
    min_labelled: int = 0
    min_gain: float = 0.0
    days: tuple[str, ...] = ()

    @property
    def decision(self) -> str:
        """``promote`` (the live evidence allows it) or ``keep``."""
        return LIVE_DECISIONS[0] if self.allows else LIVE_DECISIONS[1]

    @property
    def span(self) -> str:
        """The days of requests looked at, in words."""
        if not self.days:
            return "no day"
        return self.days[0] if len(self.days) == 1 else f"{self.days[0]} .. {self.days[-1]}"

    def metadata(self) -> dict[str, Any]:
        """The champion materialization's ``live/*`` metadata (plain values; None where a figure
        could not be measured)."""
        return {
            "live/decision": self.decision,
            "live/reason": self.reason,
            "live/metric": self.metric,
            "live/labelled": self.labelled,
            "live/min_labelled": self.min_labelled,
            f"live/champion_{self.metric}": self.champion_value,
            f"live/candidate_{self.metric}": self.candidate_value,
            "live/min_gain": self.min_gain,
            "live/champion_version": self.champion_version,
            "live/candidate_version": self.candidate_version,
            "live/days": self.span,
        }

    def tags(self) -> dict[str, str]:
        """The candidate version's ``live.*`` tags in the registry (text; empty where a figure
        could not be measured)."""

        def shown(value: float | None) -> str:
            return "" if value is None else f"{value:.6g}"

        return {
            "live.decision": self.decision,
            "live.reason": self.reason,
            "live.labelled": str(self.labelled),
            f"live.champion_{self.metric}": shown(self.champion_value),
            f"live.candidate_{self.metric}": shown(self.candidate_value),
            "live.champion_version": self.champion_version or "",
            "live.days": self.span,
        }


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def judge_live_evidence(
    *,
    metric: str,
    higher_is_better: bool,
    candidate_version: str | int,
    champion_version: str | int | None,
    labelled: int,
    champion_value: float | None,
    candidate_value: float | None,
    min_labelled: int,
    min_gain: float,
    days: Sequence[str] = (),
    note: str = "",
) -> LiveEvidence:
    """Whether the live figures let the gate promote ``candidate_version``.

    * No champion (the first promotion) or a candidate that already serves: there is nothing to
      compare on live traffic; the evidence allows it.
    * Fewer than ``min_labelled`` labelled requests scored by both: refused (``note`` says why
      there are so few, e.g. the rollout mode is ``off``).
    * The metric not measurable for either model (one class among the labels): refused.
    * The candidate's metric not better than the champion's by at least ``min_gain`` (and
      strictly better: a tie is no reason to change models): refused.
    * Otherwise allowed.
    """
    if min_labelled < 0 or not math.isfinite(min_gain) or min_gain < 0:
        raise ValueError(f"min_labelled ({min_labelled}) and min_gain ({min_gain}) must be >= 0")
    candidate = str(candidate_version)
    champion = None if champion_version is None else str(champion_version)
    champion_value, candidate_value = _finite(champion_value), _finite(candidate_value)

    def verdict(allows: bool, reason: str) -> LiveEvidence:
        return LiveEvidence(
            allows=allows,
            reason=reason,
            metric=metric,
            candidate_version=candidate,
            champion_version=champion,
            labelled=int(labelled),
            champion_value=champion_value,
            candidate_value=candidate_value,
            min_labelled=int(min_labelled),
            min_gain=float(min_gain),
            days=tuple(days),
        )

    span = verdict(True, "").span
    if champion is None:
        return verdict(True, "no champion yet: there is no live traffic to compare with")
    if champion == candidate:
        return verdict(True, f"candidate v{candidate} already is the champion")
    pair = f"candidate v{candidate} beside champion v{champion}"
    if labelled < min_labelled:
        return verdict(
            False,
            f"only {labelled:,} labelled request(s) scored by {pair} over {span}, fewer than the "
            f"{min_labelled:,} required" + (f" ({note})" if note else ""),
        )
    if champion_value is None or candidate_value is None:
        return verdict(
            False,
            f"live {metric} cannot be measured on the {labelled:,} labelled requests scored by "
            f"{pair} over {span} (a single class among their labels)",
        )
    gain = (
        candidate_value - champion_value if higher_is_better else champion_value - candidate_value
    )
    figures = (
        f"live {metric} {candidate_value:.4f} (v{candidate}) vs {champion_value:.4f} "
        f"(v{champion}) on the same {labelled:,} labelled requests over {span}"
    )
    if gain <= 0 or gain < min_gain:
        return verdict(
            False, f"{figures}: gain {gain:+.4f}, below the required {min_gain:g} (or not better)"
        )
    return verdict(True, f"{figures}: better by {gain:.4f} (required {min_gain:g})")
