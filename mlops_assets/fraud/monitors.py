"""The fraud champion's daily monitors as assets: its live performance on the labels that arrived
since it scored, and the drift of its inputs away from its own training data. A failed check
records the retraining it asks for (``core.monitoring.retraining``); the sensor of
``fraud/definitions.py`` requests it, and the promotion gate decides as for any retraining.

Thin glue over :mod:`mlops_assets.fraud.monitoring` (the pure part) and
:mod:`mlops_assets.core.monitoring` (metrics, drift, verdicts, plots).
"""

# No `from __future__ import annotations`: Dagster reads the annotations of `context`, configs
# and resources.
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.feature_store import FeastFeatureStore
from mlops_assets.core.monitoring.settings import DriftCheckConfig
from mlops_assets.core.policies import NETWORK_RETRY, eager_on_published
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import CHAMPION, MlflowTracking
from mlops_assets.fraud import training_sets
from mlops_assets.fraud.assets import MAX_CHARGEBACK_DAYS, MODEL_NAME, daily_asset
from mlops_assets.fraud.schema import CASE

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

LIVE_PERFORMANCE = CASE.key("live_performance")
INPUT_DRIFT = CASE.key("input_drift")
MONITORS = (LIVE_PERFORMANCE, INPUT_DRIFT)
#: The job a failed monitor asks for (defined in ``fraud/definitions.py``): training set, model,
#: promotion gate, for the monitor's own partition.
RETRAINING_JOB = "fraud_retraining"
PERFORMS_AS_VALIDATED = "champion_performs_as_validated"
NOT_DRIFTED = "inputs_have_not_drifted"
# The API's request log (`serving/predictions_log`): an observable source asset partitioned by the
# UTC day the API answered. Its days start later than fraud's, hence the mapping that tolerates
# days it does not have.
PREDICTIONS_LOG = dg.AssetKey(["serving", "predictions_log"])
# Identity deps (the same day): the lineage the UI draws and what the automation condition waits
# for. The horizon of earlier days is read by the asset itself (like the features' history), so
# that a day whose earlier scores are missing still runs.
_SAME_DAY = dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)


def _monitor_condition() -> dg.AutomationCondition:
    """Evaluate a day as soon as its scores land (and every input passed its blocking checks);
    the API's log does not gate it: a day the API did not serve is still a day to judge."""
    return eager_on_published(
        dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(PREDICTIONS_LOG))
    )


# -- the champion ------------------------------------------------------------------------------


def _champion(mlflow: MlflowTracking) -> dict[str, Any] | None:
    """The serving version, its run's tags and the metrics it was validated with; None before
    the first promotion."""
    version = mlflow.get_version_by_alias(MODEL_NAME, CHAMPION)
    if version is None:
        return None
    run = mlflow.client.get_run(version.run_id) if version.run_id else None
    return {
        "version": str(version.version),
        "run_id": version.run_id,
        "tags": dict(run.data.tags) if run else {},
        "metrics": dict(run.data.metrics) if run else {},
    }


def _close(figure: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


# -- live performance --------------------------------------------------------------------------


@deployment_defaults(CASE.op("live_performance"))
class LivePerformanceConfig(dg.Config):
    """How the champion's live performance is measured and judged."""

    horizon_days: int = Field(
        default=MAX_CHARGEBACK_DAYS,
        ge=0,
        le=90,
        description="Re-evaluate the scored days this far back with the labels known at the end "
        "of the partition's day: a chargeback lands up to the chargeback horizon after the "
        "payment.",
    )
    min_label_coverage: float = Field(
        default=0.99,
        gt=0,
        le=1,
        description="A scored day is judged once this share of its rows is labelled: before, "
        "the known labels are mostly frauds (a genuine payment is confirmed last) and the "
        "metrics are biased.",
    )
    tolerance: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="The check fails when the live PR-AUC is more than this below the PR-AUC "
        "the champion showed on its validation period (absolute). Calibrated on days of a few "
        "hundred frauds, where a day's PR-AUC and the validation's own swing by about 0.1; "
        "with thousands of frauds a day, 0.05-0.1 catches smaller drops.",
    )
    min_labelled_rows: int = Field(
        default=1000, ge=0, description="Fewer labelled rows: insufficient data, no verdict."
    )
    min_positives: int = Field(
        default=200,
        ge=0,
        description="Fewer frauds among them: insufficient data, no verdict (PR-AUC on a "
        "hundred frauds swings by a tenth from one day to the next).",
    )
    precision_target: float = Field(default=0.9, gt=0, lt=1)
    top_k: int = Field(default=100, ge=1, description="Alerts a day an analyst can review.")


@daily_asset(
    "live_performance",
    deps=[
        dg.AssetDep(CASE.key("scores"), partition_mapping=_SAME_DAY),
        dg.AssetDep(CASE.key("labels"), partition_mapping=_SAME_DAY),
        dg.AssetDep(PREDICTIONS_LOG, partition_mapping=_SAME_DAY),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            PERFORMS_AS_VALIDATED,
            asset=LIVE_PERFORMANCE,
            description="The champion's PR-AUC on its batch-scored days with mature labels is "
            "not below its validation PR-AUC minus the tolerance; too few labels is "
            "insufficient data and passes.",
        )
    ],
    # The IO manager stores one partition per output: one run per day.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # It reads the champion from MLflow.
    retry_policy=NETWORK_RETRY,
    automation_condition=_monitor_condition(),
    kinds={"polars", "mlflow"},
)
def live_performance(
    context: dg.AssetExecutionContext,
    config: LivePerformanceConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
):
    """One row per scored day of the horizon, source (`batch`: fraud/scores, `api`: the
    prediction API's log) and model version: the rows scored, the share whose label is known at
    the end of the partition's day (`as_of`), and on those PR-AUC, ROC-AUC, recall at 90%
    precision, precision of the top alerts and Brier score. Each partition re-evaluates the
    horizon with the labels known by then."""
    import polars as pl

    from mlops_assets.core.monitoring.retraining import trigger_metadata
    from mlops_assets.fraud import monitoring
    from mlops_assets.serving.request_log import read_day

    day = context.partition_key
    evaluated_at = monitoring.as_of(day)
    days = monitoring.evaluation_days(day, config.horizon_days)
    scores = asset_store.available_partitions(CASE.key("scores"), days)
    labels = asset_store.available_partitions(CASE.key("labels"), days)
    log = {d: read_day(asset_store.base, d) for d in days}
    scored = monitoring.scored_rows(monitoring.batch_rows(scores), monitoring.api_rows(log))
    label_frame = pl.concat([pl.from_arrow(t) for t in labels.values()]) if labels else None
    labelled = monitoring.with_labels(scored, label_frame, evaluated_at)
    table = monitoring.performance_table(
        labelled, evaluated_at, precision_target=config.precision_target, top_k=config.top_k
    )

    champion = _champion(mlflow)
    pooled, validated = None, None
    if champion is not None:
        validated = champion["metrics"].get(monitoring.JUDGED_METRIC)
        pooled = monitoring.pooled_champion_performance(
            labelled,
            table,
            model_version=champion["version"],
            min_label_coverage=config.min_label_coverage,
            precision_target=config.precision_target,
            top_k=config.top_k,
        )
    verdict = monitoring.champion_verdict(
        pooled,
        validated_pr_auc=validated,
        tolerance=config.tolerance,
        min_labelled_rows=config.min_labelled_rows,
        min_positives=config.min_positives,
    )
    trigger = (
        verdict.trigger(
            check=PERFORMS_AS_VALIDATED,
            asset=LIVE_PERFORMANCE.to_user_string(),
            model_name=MODEL_NAME,
            model_version=champion["version"],
            day=day,
            job=RETRAINING_JOB,
            partition=day,
        )
        if champion is not None
        else None
    )
    yield dg.Output(
        table,
        metadata={
            "as_of": evaluated_at.isoformat(),
            "days": f"{days[0]} .. {days[-1]}",
            "scored_days": dg.MetadataValue.json(
                {"batch": sorted(scores), "labels": sorted(labels), "api_rows": _api_rows(scored)}
            ),
            "champion": champion["version"] if champion else dg.MetadataValue.null(),
            "validated_pr_auc": _number(validated),
            "pooled": dg.MetadataValue.json(_pooled_json(pooled)),
            "verdict": verdict.reason,
            **_performance_metadata(table, validated, day),
            **trigger_metadata([trigger] if trigger else []),
        },
    )
    yield verdict.check_result(
        PERFORMS_AS_VALIDATED, metadata={"pooled": dg.MetadataValue.json(_pooled_json(pooled))}
    )


def _number(value: float | None) -> Any:
    return dg.MetadataValue.null() if value is None else float(value)


def _api_rows(scored: "pl.DataFrame") -> int:
    import polars as pl

    return int(scored.filter(pl.col("source") == "api").height)


def _pooled_json(pooled: Any) -> dict[str, Any]:
    if pooled is None:
        return {}
    return {
        "model_version": pooled.model_version,
        "days": list(pooled.days),
        "immature_days": list(pooled.immature_days),
        "rows": pooled.rows,
        "labelled": pooled.labelled,
        "positives": pooled.positives,
        "metrics": {k: None if v != v else round(v, 4) for k, v in pooled.metrics.items()},
    }


# Rows of the table shown in the metadata (the stored table has them all).
_SHOWN_ROWS = 40


def _performance_metadata(table: "pd.DataFrame", validated: float | None, day: str) -> dict:
    """The table by day, and PR-AUC per day and model version (the champion's validation PR-AUC
    as the reference line)."""
    from mlops_assets.core import reporting

    if table.empty:
        return {"by_day": "nothing was scored in the horizon"}
    shown = table.drop(columns=["model_name", "as_of"]).head(_SHOWN_ROWS)
    rows = [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        for row in shown.to_dict("records")
    ]
    metadata: dict[str, Any] = {
        "by_day": dg.MetadataValue.md(reporting.markdown_table(rows, list(shown.columns)))
    }
    plotted = table.dropna(subset=["pr_auc"])
    if plotted.empty:
        return metadata
    from mlops_assets.core.monitoring.plots import metric_by_day_figure

    plotted = plotted.assign(series="v" + plotted["model_version"] + " " + plotted["source"])
    figure = metric_by_day_figure(
        plotted,
        day="day",
        metric="pr_auc",
        series="series",
        title=f"fraud PR-AUC per scored day, labels as of the end of {day}",
        reference=validated,
    )
    try:
        metadata["pr_auc_by_day"] = reporting.figure_markdown(
            figure, alt="PR-AUC per day and model version"
        )
    finally:
        _close(figure)
    return metadata


# -- input drift -------------------------------------------------------------------------------


@deployment_defaults(CASE.op("input_drift"))
class InputDriftConfig(DriftCheckConfig):
    """When the champion's inputs count as drifted from its training set."""


@daily_asset(
    "input_drift",
    deps=[
        dg.AssetDep(CASE.key(name), partition_mapping=_SAME_DAY)
        for name in ("scores", "transactions", *training_sets.SNAPSHOT_VIEWS)
    ],
    check_specs=[
        dg.AssetCheckSpec(
            NOT_DRIFTED,
            asset=INPUT_DRIFT,
            description="No model input of the day (nor the predicted probability) moved away "
            "from the champion's training set beyond the PSI thresholds; a day with too few "
            "rows, or a champion without a training set to compare with, is insufficient data "
            "and passes.",
        )
    ],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # MLflow (the champion) and Feast's registry (the join) are across the network.
    retry_policy=NETWORK_RETRY,
    automation_condition=_monitor_condition(),
    kinds={"evidently", "mlflow", "pandas"},
)
def input_drift(
    context: dg.AssetExecutionContext,
    config: InputDriftConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
    feature_store: FeastFeatureStore,
):
    """One row per model input (and the predicted probability): how far the day's transactions,
    joined with their card and merchant snapshots as for scoring, moved away from the champion's
    own training set (the exact version its MLflow run names): PSI on the training quantiles, a
    two-sample test (KS or chi-square), drifted or not. Evidently's HTML report of the day is
    stored beside the table (`<data root>/fraud/input_drift/<day>.html`)."""
    from mlops_assets.core.monitoring.drift import assess_drift
    from mlops_assets.core.monitoring.retraining import trigger_metadata
    from mlops_assets.core.monitoring.verdicts import drift_verdict
    from mlops_assets.fraud import monitoring

    day = context.partition_key
    thresholds = config.thresholds()
    sides, notes = _drift_sides(day, asset_store, mlflow, feature_store)
    champion = sides.get("champion")
    if "reference" in sides and "current" in sides:
        summary = assess_drift(
            sides["reference"],
            sides["current"],
            numeric=monitoring.DRIFT_NUMERIC,
            categorical=monitoring.DRIFT_CATEGORICAL,
            thresholds=thresholds,
            sample_rows=config.sample_rows,
        )
        verdict = drift_verdict(summary, fail_on=config.fail_on, thresholds=thresholds)
    else:
        summary = None
        verdict = _insufficient("; ".join(notes))
    if summary is not None and summary.table is None:
        notes.append(summary.reason)

    report = None
    if summary is not None and summary.table is not None:
        report = _write_report(asset_store, day, sides, summary, config.sample_rows, thresholds)
    trigger = (
        verdict.trigger(
            check=NOT_DRIFTED,
            asset=INPUT_DRIFT.to_user_string(),
            model_name=MODEL_NAME,
            model_version=champion,
            day=day,
            job=RETRAINING_JOB,
            partition=day,
        )
        if champion is not None
        else None
    )
    table = _drift_rows(summary, day, champion, sides.get("reference_version"))
    yield dg.Output(
        table,
        metadata={
            "champion": champion or dg.MetadataValue.null(),
            "reference": sides.get("reference_version") or dg.MetadataValue.null(),
            "reference_rows": summary.reference_rows if summary else 0,
            "current_rows": summary.current_rows if summary else 0,
            "verdict": verdict.reason,
            "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes) or "none"),
            **_drift_metadata(summary, thresholds, report, day),
            **trigger_metadata([trigger] if trigger else []),
        },
    )
    yield verdict.check_result(NOT_DRIFTED)


def _insufficient(reason: str) -> Any:
    from mlops_assets.core.monitoring.verdicts import INSUFFICIENT_DATA, Verdict

    return Verdict(INSUFFICIENT_DATA, reason or "insufficient data", "psi", None, None)


def _drift_sides(
    day: str, asset_store: AssetStore, mlflow: MlflowTracking, feature_store: FeastFeatureStore
) -> tuple[dict[str, Any], list[str]]:
    """The reference (the champion's training set and its probabilities on it) and the current
    side (the day's transactions joined with their snapshots, and their probabilities), as
    drift frames; and notes saying what was missing or recomputed."""
    import polars as pl

    from mlops_assets.fraud import monitoring, training

    notes: list[str] = []
    champion = _champion(mlflow)
    if champion is None:
        return {}, [f"{MODEL_NAME} has no champion yet: nothing to compare with"]
    sides: dict[str, Any] = {"champion": champion["version"]}
    loaded = monitoring.load_training_set(
        asset_store.versioned(CASE.key("training_set")), champion["tags"]
    )
    if isinstance(loaded, str):
        return sides, [loaded]
    reference_table, reference_version = loaded
    sides["reference_version"] = reference_version.relative_dir

    names = ("transactions", *training_sets.SNAPSHOT_VIEWS)
    inputs = {
        name: asset_store.available_partitions(CASE.key(name), [day]).get(day) for name in names
    }
    absent = [name for name, table in inputs.items() if table is None]
    if absent:
        return sides, [f"no published {', '.join(absent)} for {day}: nothing to compare"]
    model = mlflow.load_model_version(MODEL_NAME, champion["version"])
    reference = reference_table.to_pandas()
    sides["reference"] = monitoring.drift_frame(reference, training.score(model, reference))

    frames = {name: pl.from_arrow(table) for name, table in inputs.items()}
    joined, _ = training_sets.join_snapshots(
        feature_store, frames["transactions"], {v: frames[v] for v in training_sets.SNAPSHOT_VIEWS}
    )
    scores = asset_store.available_partitions(CASE.key("scores"), [day]).get(day)
    probability = monitoring.current_probabilities(
        joined, pl.from_arrow(scores) if scores is not None else None, champion["version"]
    )
    if probability is None:
        # The day was not scored, or by another version (the champion changed since): the
        # prediction drift must be the champion's own, so it is scored here.
        notes.append(
            f"fraud/scores of {day} are not the champion v{champion['version']}'s: its "
            "probabilities were computed for this comparison"
        )
        probability = training.score(model, joined)
    sides["current"] = monitoring.drift_frame(joined.to_pandas(), probability)
    return sides, notes


def _write_report(asset_store, day, sides, summary, sample_rows, thresholds) -> Any:
    """Evidently's HTML report of the day, beside the asset's data; written then renamed, so a
    reader never opens half a page."""
    from mlops_assets.core import storage
    from mlops_assets.core.monitoring.drift import drift_report_html
    from mlops_assets.fraud import monitoring

    page = drift_report_html(
        sides["reference"],
        sides["current"],
        numeric=monitoring.DRIFT_NUMERIC,
        categorical=monitoring.DRIFT_CATEGORICAL,
        title=f"fraud_classifier v{sides['champion']}: {day} against training set "
        f"{sides['reference_version']}",
        thresholds=thresholds,
        sample_rows=sample_rows,
    )
    path = asset_store.folder(INPUT_DRIFT) / f"{day}.html"
    storage.atomic_write_bytes(path, page, tmp_dir=asset_store.publisher.tmp_dir)
    return path


def _drift_rows(summary: Any, day: str, champion: str | None, reference: str | None):
    """The stored table: the day, the champion and its reference on every row, then the drift
    table (no row when there was nothing to compare)."""
    import pandas as pd

    from mlops_assets.core.monitoring.drift import TABLE_COLUMNS

    columns = ["day", "model_version", "reference", *TABLE_COLUMNS]
    if summary is None or summary.table is None:
        empty = pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
        return empty.astype(
            {"psi": "float64", "statistic": "float64", "p_value": "float64", "drifted": "bool"}
        )
    table = summary.table.copy()
    table.insert(0, "reference", reference)
    table.insert(0, "model_version", champion)
    table.insert(0, "day", day)
    return table[columns]


# Features shown in the metadata's table (the stored table has them all).
_SHOWN_FEATURES = 15


def _drift_metadata(summary: Any, thresholds: Any, report: Any, day: str) -> dict:
    from mlops_assets.core import reporting, storage

    metadata: dict[str, Any] = {
        "thresholds": dg.MetadataValue.json(
            {"psi_warn": thresholds.psi_warn, "psi_error": thresholds.psi_error}
        )
    }
    if summary is None or summary.table is None:
        return metadata
    from mlops_assets.core.monitoring.plots import drift_figure

    shown = [
        {
            k: (round(row[k], 4) if isinstance(row[k], float) else row[k])
            for k in ("feature", "psi", "test", "statistic", "p_value", "drifted")
        }
        for row in summary.table.head(_SHOWN_FEATURES).to_dict("records")
    ]
    metadata["drift"] = dg.MetadataValue.md(reporting.markdown_table(shown, list(shown[0])))
    figure = drift_figure(summary.table, thresholds, title=f"fraud inputs on {day}: PSI")
    try:
        metadata["psi_by_feature"] = reporting.figure_markdown(figure, alt="PSI per feature")
    finally:
        _close(figure)
    if report is not None:
        metadata["report"] = (
            dg.MetadataValue.path(str(report))
            if storage.is_local(report)
            else dg.MetadataValue.url(str(report))
        )
    return metadata


ASSETS = [live_performance, input_drift]
__all__ = ["ASSETS", "INPUT_DRIFT", "LIVE_PERFORMANCE", "MONITORS", "RETRAINING_JOB"]
