"""Verdicts of the monitors: does the champion still perform as validated, have its inputs drifted,
and, when the answer is no, which retraining that asks for.

A monitor (``fraud/live_performance``, ``demand/forecast_accuracy``, a drift asset) measures; a
:class:`Verdict` judges one measure against a promise: the metric the champion showed on its
holdout, less a tolerance, or a PSI threshold. Four outcomes:

* ``ok``: the promise holds;
* ``warn``: worth a look, not worth a retraining (drift at the warn level);
* ``failed``: the promise is broken, and the verdict names a :class:`Trigger`, the retraining
  request that :func:`mlops_assets.core.monitoring.retraining.retrain_on_failed_monitors` turns
  into a run;
* ``insufficient data``: too few labelled rows, no champion metric, no traffic. Never an alarm and
  never a retraining: a day with nothing to judge is not a bad day.

Pure: no dagster import at module level (only :meth:`Verdict.check_result`, which builds Dagster's
own result object, and :meth:`Trigger.tags`, which reuses the run tags of ``core.policies``,
import it when called).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

    from mlops_assets.core.monitoring.drift import DriftSummary, DriftThresholds

OK = "ok"
WARN = "warn"
FAILED = "failed"
INSUFFICIENT_DATA = "insufficient data"
STATUSES = (OK, WARN, FAILED, INSUFFICIENT_DATA)
#: A drift summary's most severe status (its verdict calls it ``failed``).
ERROR_LEVEL = "error"

#: Run-tag namespace of everything a trigger records on the retraining run it requests.
TAG_PREFIX = "mlops/trigger_"


def _short(value: float) -> str:
    """A number as a tag or a sentence shows it: 4 significant digits (0.6123, 1.235e+04)."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class Trigger:
    """A request for retraining, as a failed verdict states it: which check failed on which asset,
    on what figures, for which champion version and evaluation day, and which job should answer.

    It travels in the monitor's materialization metadata (:meth:`to_json`, under
    ``retraining.RETRAINING_TRIGGER``) to the sensor, which requests ``job`` with :meth:`run_key`
    and :meth:`tags`.
    """

    check: str
    asset: str
    metric: str
    value: float
    threshold: float
    model_name: str
    model_version: str
    #: The evaluation day: the monitor's partition (ISO date).
    day: str
    #: The retraining job to request.
    job: str
    #: That job's partition to request; None for an unpartitioned job.
    partition: str | None

    def run_key(self) -> str:
        """At most one retraining per champion version and evaluation day, whichever monitor
        (performance or drift) fired first: Dagster does not start a second run with a run key its
        sensor already used. A later day, or a new champion that fails too, asks again."""
        return f"retrain:{self.model_name}:{self.model_version}:{self.day}"

    def tags(self) -> dict[str, str]:
        """The run tags naming the trigger, so the runs page says why each retraining ran (and
        can be filtered by ``mlops/purpose=retraining`` like the scheduled ones). Values are short
        strings: Dagster run tags take strings only."""
        from mlops_assets.core.policies import scheduled_run_tags

        return {
            **scheduled_run_tags("retraining"),
            f"{TAG_PREFIX}check": self.check,
            f"{TAG_PREFIX}asset": self.asset,
            f"{TAG_PREFIX}metric": self.metric,
            f"{TAG_PREFIX}value": _short(self.value),
            f"{TAG_PREFIX}threshold": _short(self.threshold),
            f"{TAG_PREFIX}model": self.model_name,
            f"{TAG_PREFIX}model_version": self.model_version,
            f"{TAG_PREFIX}day": self.day,
        }

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (the materialization metadata stores them)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trigger:
        """The trigger :meth:`to_json` wrote. Keys this version does not know are ignored, so a
        monitor written by a newer release does not stop an older sensor; a missing key raises
        ``KeyError``."""
        known = {f.name: data[f.name] for f in fields(cls)}
        partition = known["partition"]
        return cls(
            **{
                **{k: str(v) for k, v in known.items()},
                "value": float(known["value"]),
                "threshold": float(known["threshold"]),
                "partition": None if partition is None else str(partition),
            }
        )


@dataclass(frozen=True)
class Verdict:
    """One monitor's judgement of one metric."""

    #: ``ok`` | ``warn`` | ``failed`` | ``insufficient data``.
    status: str
    #: A sentence naming the metric, its value and the threshold, or why there is nothing to judge.
    reason: str
    metric: str
    value: float | None
    threshold: float | None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")
        if self.status in (WARN, FAILED) and (self.value is None or self.threshold is None):
            raise ValueError(f"a {self.status!r} verdict needs a value and a threshold")

    def check_result(
        self,
        check_name: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        asset_key: dg.AssetKey | None = None,
    ) -> dg.AssetCheckResult:
        """The asset check result that shows this verdict in the UI.

        ``ok`` and ``insufficient data`` pass (metadata ``status`` says which: a day without labels
        is not a failure); ``warn`` fails with severity WARN, ``failed`` with severity ERROR.
        ``metadata`` adds to ``status``, ``reason``, ``metric``, ``value`` and ``threshold``;
        ``asset_key`` is only needed when the step materializes more than one asset.
        """
        import dagster as dg

        return dg.AssetCheckResult(
            check_name=check_name,
            asset_key=asset_key,
            passed=self.status in (OK, INSUFFICIENT_DATA),
            severity=(
                dg.AssetCheckSeverity.WARN if self.status == WARN else dg.AssetCheckSeverity.ERROR
            ),
            description=self.reason,
            metadata={
                "status": self.status,
                "reason": self.reason,
                "metric": self.metric,
                "value": dg.MetadataValue.null() if self.value is None else self.value,
                "threshold": dg.MetadataValue.null() if self.threshold is None else self.threshold,
                **(metadata or {}),
            },
        )

    def trigger(
        self,
        *,
        check: str,
        asset: str,
        model_name: str,
        model_version: str,
        day: str,
        job: str,
        partition: str | None,
    ) -> Trigger | None:
        """The retraining this verdict asks for: one only when it ``failed`` (a warning or a day
        with insufficient data never retrains). ``model_version`` must be the version the verdict
        judged, the champion that served that day."""
        if self.status != FAILED:
            return None
        assert self.value is not None and self.threshold is not None  # __post_init__
        return Trigger(
            check=check,
            asset=asset,
            metric=self.metric,
            value=self.value,
            threshold=self.threshold,
            model_name=model_name,
            model_version=str(model_version),
            day=day,
            job=job,
            partition=partition,
        )


def _number(value: float | None) -> float | None:
    """``value`` as a float, None when it is missing or NaN (a metric on a single class)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def performance_verdict(
    *,
    metric: str,
    live: float | None,
    promised: float | None,
    labelled_rows: int,
    min_labelled_rows: int,
    tolerance: float,
    higher_is_better: bool = True,
    relative: bool = False,
) -> Verdict:
    """Whether the champion still performs as validated: the ``live`` metric (measured on the
    labels known so far) against the ``promised`` one (its holdout metric, or the error its
    backtest promised), with a ``tolerance``.

    * The threshold is ``promised - tolerance`` when higher is better, ``promised + tolerance``
      when lower is better; ``relative=True`` reads ``tolerance`` as a share of the promise
      (0.2: an RMSE 20% worse than the backtest's).
    * ``failed`` when live is strictly worse than the threshold; at the threshold it holds.
    * ``insufficient data`` when fewer than ``min_labelled_rows`` rows are labelled (few labels
      give a noisy metric: a retraining on noise is a storm), or ``live`` is missing or NaN (no
      traffic, a single class), or ``promised`` is missing or not finite (the champion recorded
      no such metric).
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, not {tolerance}")
    if min_labelled_rows < 0:
        raise ValueError(f"min_labelled_rows must be >= 0, not {min_labelled_rows}")
    live_value, promised_value = _number(live), _number(promised)
    if promised_value is not None and not math.isfinite(promised_value):
        promised_value = None
    direction = "higher" if higher_is_better else "lower"
    # The relative margin is a share of the promise's size, so a negative promise (a bias) still
    # gives a threshold on the worse side.
    margin = (
        tolerance * abs(promised_value) if relative and promised_value is not None else tolerance
    )
    shown_tolerance = f"{_short(tolerance * 100)}%" if relative else _short(tolerance)
    if promised_value is None:
        threshold = None
    else:
        threshold = promised_value - margin if higher_is_better else promised_value + margin

    def verdict(status: str, reason: str) -> Verdict:
        return Verdict(status, reason, metric, live_value, threshold)

    rows = f"{labelled_rows:,} labelled rows"
    if labelled_rows < min_labelled_rows:
        return verdict(
            INSUFFICIENT_DATA,
            f"{metric}: only {rows}, fewer than the {min_labelled_rows:,} needed to judge it",
        )
    if live_value is None:
        return verdict(
            INSUFFICIENT_DATA,
            f"{metric} could not be measured on the {rows} (no traffic, or a single class)",
        )
    if threshold is None or promised_value is None:
        return verdict(
            INSUFFICIENT_DATA,
            f"{metric} {_short(live_value)} on {rows}, but the champion recorded no {metric} "
            "to compare with",
        )
    worse = live_value < threshold if higher_is_better else live_value > threshold
    side = "below" if higher_is_better else "above"
    promise = (
        f"the validated {_short(promised_value)} {'minus' if higher_is_better else 'plus'} "
        f"the tolerance {shown_tolerance} ({direction} is better; {rows})"
    )
    if worse:
        return verdict(
            FAILED, f"{metric} {_short(live_value)} is {side} {_short(threshold)}, {promise}"
        )
    return verdict(
        OK, f"{metric} {_short(live_value)} is not {side} {_short(threshold)}, {promise}"
    )


def drift_verdict(
    summary: DriftSummary, *, fail_on: str = "error", thresholds: DriftThresholds | None = None
) -> Verdict:
    """The verdict on a day's drift (:func:`mlops_assets.core.monitoring.drift.assess_drift`):
    metric ``psi``, value the worst feature's PSI.

    ``fail_on="error"``: drift at the error level fails (and retrains), at the warn level warns;
    ``fail_on="warn"`` makes warn-level drift fail too. The threshold reported is the one that
    fails. ``insufficient data`` passes through with the summary's reason. ``thresholds``: the
    ``DriftThresholds`` the summary was assessed with (default: the summary's own ``thresholds``
    if it carries them, else the defaults).
    """
    if fail_on not in (ERROR_LEVEL, WARN):
        raise ValueError(f"fail_on must be 'error' or 'warn', not {fail_on!r}")
    status = summary.status
    if status == INSUFFICIENT_DATA:
        return Verdict(INSUFFICIENT_DATA, summary.reason, "psi", None, None)
    if status not in (OK, WARN, ERROR_LEVEL):
        raise ValueError(f"unknown drift status {status!r}")
    if thresholds is None:
        thresholds = getattr(summary, "thresholds", None)
    if thresholds is None:
        from mlops_assets.core.monitoring.drift import DriftThresholds

        thresholds = DriftThresholds()
    threshold = float(thresholds.psi_warn if fail_on == WARN else thresholds.psi_error)
    value = _number(summary.worst_psi)
    if status == ERROR_LEVEL or (status == WARN and fail_on == WARN):
        outcome = FAILED
    else:
        outcome = WARN if status == WARN else OK
    if outcome in (WARN, FAILED) and value is None:
        raise ValueError(f"a drift summary with status {status!r} must name its worst PSI")
    reason = f"{summary.reason} (the check fails at PSI >= {_short(threshold)})"
    return Verdict(outcome, reason, "psi", value, threshold)
