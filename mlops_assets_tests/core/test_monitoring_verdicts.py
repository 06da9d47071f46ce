"""Verdicts of the monitors: every status, the thresholds in both directions and relative, days
with insufficient data that never trigger, and the trigger that travels to the sensor."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.monitoring.drift import DriftSummary, DriftThresholds, assess_drift
from mlops_assets.core.monitoring.verdicts import (
    FAILED,
    INSUFFICIENT_DATA,
    OK,
    WARN,
    Trigger,
    Verdict,
    drift_verdict,
    performance_verdict,
)

TRIGGER_ARGS = {
    "check": "champion_performs_as_validated",
    "asset": "fraud/live_performance",
    "model_name": "fraud_model",
    "model_version": "3",
    "day": "2024-03-05",
    "job": "fraud_retraining",
    "partition": "2024-03-05",
}


def _pr_auc(live: float | None, *, labelled_rows: int = 500, **kwargs) -> Verdict:
    args = {
        "metric": "pr_auc",
        "live": live,
        "promised": 0.8,
        "labelled_rows": labelled_rows,
        "min_labelled_rows": 200,
        "tolerance": 0.05,
        **kwargs,
    }
    return performance_verdict(**args)


# -- performance ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("live", "status"),
    [(0.9, OK), (0.75, OK), (0.7499, FAILED), (0.2, FAILED)],
)
def test_higher_is_better_fails_only_below_the_promise_minus_the_tolerance(live, status) -> None:
    verdict = _pr_auc(live)
    assert verdict.status == status
    assert verdict.metric == "pr_auc"
    assert verdict.value == live
    assert verdict.threshold == pytest.approx(0.75)


def test_a_failed_performance_verdict_says_what_broke_in_a_sentence() -> None:
    verdict = _pr_auc(0.61234)
    assert verdict.reason == (
        "pr_auc 0.6123 is below 0.75, the validated 0.8 minus the tolerance 0.05 "
        "(higher is better; 500 labelled rows)"
    )
    assert _pr_auc(0.8).reason.startswith("pr_auc 0.8 is not below 0.75")


@pytest.mark.parametrize(
    ("live", "relative", "threshold", "status"),
    [
        (10.5, False, 11.0, OK),
        (11.0, False, 11.0, OK),
        (11.01, False, 11.0, FAILED),
        # relative: RMSE 20% worse than the backtest's 10 -> 12
        (11.9, True, 12.0, OK),
        (12.5, True, 12.0, FAILED),
    ],
)
def test_lower_is_better_fails_above_the_promise_plus_the_tolerance(
    live, relative, threshold, status
) -> None:
    verdict = performance_verdict(
        metric="rmse",
        live=live,
        promised=10.0,
        labelled_rows=48,
        min_labelled_rows=24,
        tolerance=0.2 if relative else 1.0,
        higher_is_better=False,
        relative=relative,
    )
    assert verdict.threshold == pytest.approx(threshold)
    assert verdict.status == status
    if status == FAILED:
        assert " is above 12, " in verdict.reason or " is above 11, " in verdict.reason
    if relative:
        assert "plus the tolerance 20%" in verdict.reason


def test_a_relative_tolerance_on_a_higher_is_better_metric_is_a_share_of_the_promise() -> None:
    verdict = _pr_auc(0.71, tolerance=0.1, relative=True)
    assert verdict.threshold == pytest.approx(0.72)
    assert verdict.status == FAILED
    # A negative promise (a bias) still puts the threshold on the worse side.
    bias = performance_verdict(
        metric="bias",
        live=-2.5,
        promised=-2.0,
        labelled_rows=10,
        min_labelled_rows=1,
        tolerance=0.1,
        relative=True,
    )
    assert bias.threshold == pytest.approx(-2.2)
    assert bias.status == FAILED


@pytest.mark.parametrize(
    ("live", "promised", "labelled_rows", "why"),
    [
        # Too few labels: even a terrible value is not judged.
        (0.1, 0.8, 199, "only 199 labelled rows, fewer than the 200 needed"),
        (0.1, 0.8, 0, "only 0 labelled rows"),
        # No traffic, or a single class: the metric is NaN.
        (None, 0.8, 500, "could not be measured"),
        (math.nan, 0.8, 500, "could not be measured"),
        # The champion recorded no such metric.
        (0.1, None, 500, "recorded no pr_auc"),
        (0.1, math.nan, 500, "recorded no pr_auc"),
        (0.1, math.inf, 500, "recorded no pr_auc"),
    ],
)
def test_insufficient_data_is_never_a_failure(live, promised, labelled_rows, why) -> None:
    verdict = _pr_auc(live, promised=promised, labelled_rows=labelled_rows)
    assert verdict.status == INSUFFICIENT_DATA
    assert why in verdict.reason
    assert verdict.trigger(**TRIGGER_ARGS) is None
    result = verdict.check_result("champion_performs_as_validated")
    assert result.passed
    assert result.metadata["status"].value == INSUFFICIENT_DATA
    # NaN is never shown as a value: a missing measure is None.
    assert verdict.value is None or verdict.value == 0.1


def test_a_tolerance_must_be_a_finite_non_negative_number() -> None:
    for tolerance in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="tolerance"):
            _pr_auc(0.8, tolerance=tolerance)
    with pytest.raises(ValueError, match="min_labelled_rows"):
        _pr_auc(0.8, min_labelled_rows=-1)


# -- drift ----------------------------------------------------------------------------------------


def _summary(status: str, reason: str, worst_psi: float | None) -> DriftSummary:
    """A day's drift as ``assess_drift`` sums it up (the verdict reads status, reason, PSI)."""
    return DriftSummary(
        status=status,
        reason=reason,
        table=None,
        reference_rows=5000,
        current_rows=800,
        worst_feature=None if worst_psi is None else "amount",
        worst_psi=worst_psi,
    )


THRESHOLDS = DriftThresholds()


@pytest.mark.parametrize(
    ("drift_status", "fail_on", "status", "threshold"),
    [
        ("ok", "error", OK, 0.25),
        ("warn", "error", WARN, 0.25),
        ("error", "error", FAILED, 0.25),
        ("ok", "warn", OK, 0.1),
        ("warn", "warn", FAILED, 0.1),
        ("error", "warn", FAILED, 0.1),
    ],
)
def test_drift_fails_at_the_level_it_is_told_to(drift_status, fail_on, status, threshold) -> None:
    psi = {"ok": 0.03, "warn": 0.15, "error": 0.41}[drift_status]
    summary = _summary(drift_status, f"worst amount PSI {psi}", psi)
    verdict = drift_verdict(summary, fail_on=fail_on, thresholds=THRESHOLDS)
    assert (verdict.status, verdict.metric, verdict.value, verdict.threshold) == (
        status,
        "psi",
        psi,
        threshold,
    )
    assert verdict.reason == f"worst amount PSI {psi} (the check fails at PSI >= {threshold})"
    assert (verdict.trigger(**TRIGGER_ARGS) is not None) == (status == FAILED)


def test_drift_with_insufficient_data_passes_through_and_never_triggers() -> None:
    few = pd.DataFrame({"amount": [1.0, 2.0, 3.0]})
    many = pd.DataFrame({"amount": [float(i) for i in range(300)]})
    summary = assess_drift(many, few, numeric=["amount"], categorical=[])
    assert summary.status == INSUFFICIENT_DATA
    verdict = drift_verdict(summary, fail_on="warn")
    assert verdict == Verdict(INSUFFICIENT_DATA, summary.reason, "psi", None, None)
    assert verdict.trigger(**TRIGGER_ARGS) is None
    assert verdict.check_result("inputs_have_not_drifted").passed


def test_drift_thresholds_default_to_the_drift_defaults_or_the_summarys_own() -> None:
    summary = _summary("warn", "worst amount PSI 0.3", 0.3)
    assert drift_verdict(summary).threshold == DriftThresholds().psi_error
    assert drift_verdict(summary, fail_on="warn").threshold == DriftThresholds().psi_warn
    custom = DriftThresholds(psi_warn=0.2, psi_error=0.5)
    assert drift_verdict(summary, thresholds=custom).threshold == 0.5

    @dataclass(frozen=True)
    class WithThresholds(DriftSummary):
        thresholds: DriftThresholds = custom

    carried = WithThresholds(**{**vars(summary)})
    assert (drift_verdict(carried).status, drift_verdict(carried).threshold) == (WARN, 0.5)


def test_drift_verdict_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="fail_on"):
        drift_verdict(_summary("ok", "", 0.0), fail_on="critical")
    with pytest.raises(ValueError, match="unknown drift status"):
        drift_verdict(_summary("drifted", "", 0.3))
    with pytest.raises(ValueError, match="worst PSI"):
        drift_verdict(_summary("error", "", math.nan))


# -- check results --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "passed", "severity"),
    [
        (OK, True, dg.AssetCheckSeverity.ERROR),
        (INSUFFICIENT_DATA, True, dg.AssetCheckSeverity.ERROR),
        (WARN, False, dg.AssetCheckSeverity.WARN),
        (FAILED, False, dg.AssetCheckSeverity.ERROR),
    ],
)
def test_check_result_passes_ok_and_insufficient_data_and_grades_the_rest(
    status, passed, severity
) -> None:
    value = None if status == INSUFFICIENT_DATA else 0.3
    threshold = None if status == INSUFFICIENT_DATA else 0.25
    verdict = Verdict(status, f"reason {status}", "psi", value, threshold)
    result = verdict.check_result("inputs_have_not_drifted", metadata={"worst_feature": "amount"})
    assert (result.check_name, result.passed, result.severity) == (
        "inputs_have_not_drifted",
        passed,
        severity,
    )
    assert result.description == f"reason {status}"
    shown = {k: v.value for k, v in result.metadata.items()}
    assert shown == {
        "status": status,
        "reason": f"reason {status}",
        "metric": "psi",
        "value": value,
        "threshold": threshold,
        "worst_feature": "amount",
    }


def test_a_verdict_that_warns_or_fails_must_name_its_figures() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        Verdict("error", "", "psi", 0.3, 0.25)
    for status in (WARN, FAILED):
        with pytest.raises(ValueError, match="needs a value and a threshold"):
            Verdict(status, "", "psi", None, 0.25)


# -- triggers -------------------------------------------------------------------------------------


def test_only_a_failed_verdict_triggers_and_the_trigger_names_the_figures() -> None:
    assert _pr_auc(0.76).trigger(**TRIGGER_ARGS) is None
    trigger = _pr_auc(0.612345).trigger(**TRIGGER_ARGS)
    assert trigger == Trigger(
        check="champion_performs_as_validated",
        asset="fraud/live_performance",
        metric="pr_auc",
        value=0.612345,
        threshold=pytest.approx(0.75),
        model_name="fraud_model",
        model_version="3",
        day="2024-03-05",
        job="fraud_retraining",
        partition="2024-03-05",
    )
    assert trigger.run_key() == "retrain:fraud_model:3:2024-03-05"
    assert trigger.tags() == {
        "mlops/purpose": "retraining",
        "mlops/trigger_check": "champion_performs_as_validated",
        "mlops/trigger_asset": "fraud/live_performance",
        "mlops/trigger_metric": "pr_auc",
        "mlops/trigger_value": "0.6123",
        "mlops/trigger_threshold": "0.75",
        "mlops/trigger_model": "fraud_model",
        "mlops/trigger_model_version": "3",
        "mlops/trigger_day": "2024-03-05",
    }


def test_trigger_tags_are_tags_dagster_accepts_on_a_run() -> None:
    trigger = Trigger(**{**TRIGGER_ARGS, "metric": "rmse", "value": 12345.678, "threshold": 1e-7})
    tags = trigger.tags()
    assert tags["mlops/trigger_value"] == "1.235e+04"
    assert tags["mlops/trigger_threshold"] == "1e-07"
    request = dg.RunRequest(job_name="fraud_retraining", run_key=trigger.run_key(), tags=tags)
    assert request.tags == tags
    # Keys follow Dagster's tag-key rules (a namespace, then [A-Za-z0-9_.-]{1,63}).
    from dagster._utils.tags import is_valid_tag_key

    assert all(is_valid_tag_key(key) for key in tags)


def test_the_run_key_is_one_per_model_version_and_day_whatever_the_check() -> None:
    performance = Trigger(**TRIGGER_ARGS, metric="pr_auc", value=0.6, threshold=0.75)
    drift = Trigger(
        **{**TRIGGER_ARGS, "check": "inputs_have_not_drifted", "asset": "fraud/drift"},
        metric="psi",
        value=0.4,
        threshold=0.25,
    )
    assert performance.run_key() == drift.run_key()
    assert (
        Trigger(
            **{**TRIGGER_ARGS, "day": "2024-03-06"}, metric="psi", value=1, threshold=0
        ).run_key()
        != drift.run_key()
    )
    assert (
        Trigger(
            **{**TRIGGER_ARGS, "model_version": "4"}, metric="psi", value=1, threshold=0
        ).run_key()
        != drift.run_key()
    )


@pytest.mark.parametrize("partition", ["2024-03-05", None])
def test_a_trigger_survives_the_json_of_the_metadata(partition) -> None:
    trigger = Trigger(
        **{**TRIGGER_ARGS, "partition": partition}, metric="pr_auc", value=0.6, threshold=0.75
    )
    data = json.loads(json.dumps(trigger.to_json()))
    assert Trigger.from_json(data) == trigger
    # A newer writer's extra key is ignored; a missing key is an error.
    assert Trigger.from_json({**data, "added_later": 1}) == trigger
    with pytest.raises(KeyError):
        Trigger.from_json({k: v for k, v in data.items() if k != "model_version"})


def test_a_numeric_model_version_is_kept_as_a_string() -> None:
    data = Trigger(**TRIGGER_ARGS, metric="psi", value=0.4, threshold=0.25).to_json()
    assert Trigger.from_json({**data, "model_version": 3}).model_version == "3"
    assert _pr_auc(0.1).trigger(**{**TRIGGER_ARGS, "model_version": 3}).model_version == "3"
