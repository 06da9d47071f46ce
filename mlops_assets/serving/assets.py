"""The API's request log as Dagster assets: the log itself (a source the API writes), the
monitoring table built from it and the drift of the inputs the models saw, one UTC day per
partition."""

import dagster as dg
from pydantic import Field

from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.monitoring.settings import DriftCheckConfig
from mlops_assets.core.policies import NETWORK_RETRY, daily_freshness
from mlops_assets.core.run_config import deployment_defaults
from mlops_assets.core.tracking import MlflowTracking

GROUP = "serving"
# Log days are wall-clock days of the API; the first one the platform could have served.
DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")
PREDICTIONS_LOG = dg.AssetKey(["serving", "predictions_log"])
MONITORING = dg.AssetKey(["serving", "prediction_monitoring"])
INPUT_DRIFT = dg.AssetKey(["serving", "input_drift"])
INPUTS_HAVE_NOT_DRIFTED = "inputs_have_not_drifted"
# The job that retrains each use case whose API inputs `serving/input_drift` watches: the names
# `weekly_retraining` gives them in each use case's definitions.py (athletes' job re-reads the
# table; its features, grids and champion follow by automation). None is partitioned.
RETRAINING_JOBS = {
    "heart": "heart_training",
    "housing": "housing_training",
    "athletes": "athletes_refresh",
}


@dg.observable_source_asset(
    key=PREDICTIONS_LOG,
    partitions_def=DAILY,
    group_name=GROUP,
    description="Every request the prediction API answered or refused, with the model version, "
    "the features the model saw and the latency. Written by the API (`mlops serve`): appended to "
    "a local write-ahead log before each response, then shipped in batches to "
    "`<data root>/serving/predictions_log/<day>/<segment>.parquet`.",
)
def predictions_log(asset_store: AssetStore) -> dg.DataVersionsByPartition:
    """Observe which days have log batches; a day's data version is a hash of its batch files
    (names and sizes), so it changes whenever a batch lands."""
    from mlops_assets.serving.request_log import day_fingerprints

    versions = day_fingerprints(asset_store.base)
    return dg.DataVersionsByPartition(
        {day: dg.DataVersion(version) for day, version in versions.items()}
    )


@deployment_defaults("serving__prediction_monitoring")
class MonitoringConfig(dg.Config):
    latency_budget_ms: dict[str, float] = Field(
        default_factory=lambda: {"fraud": 10.0},
        description="p99 latency budget per use case (DESIGN section 7); use cases not named "
        "are not checked.",
    )


@dg.asset(
    key=MONITORING,
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[PREDICTIONS_LOG],
    # One run per day: the IO manager stores one partition per output.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # The 00:15 schedule fills yesterday's table; a missed night shows here.
    freshness_policy=daily_freshness(),
    kinds={"polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_server_errors",
            asset=MONITORING,
            description="No request of the day failed with a 5xx.",
        ),
        dg.AssetCheckSpec(
            "latency_within_budget",
            asset=MONITORING,
            description="Every hour's p99 latency is within its use case's budget.",
        ),
    ],
)
def prediction_monitoring(
    context: dg.AssetExecutionContext, config: MonitoringConfig, asset_store: AssetStore
):
    """Per use case, model version and hour of the day: requests, refusals, failures, latency
    percentiles, the distribution of the predictions and how often an online feature was missing."""
    from mlops_assets.core import reporting
    from mlops_assets.serving.monitoring import day_summary, monitoring_table
    from mlops_assets.serving.request_log import read_day

    log = read_day(asset_store.base, context.partition_key)
    table = monitoring_table(log)
    summary = day_summary(table)
    failures = int(table["server_errors"].sum()) if table.height else 0
    over_budget = [
        f"{row['use_case']} {row['hour']:%H}:00 p99 {row['latency_p99_ms']:.1f} ms"
        for row in table.iter_rows(named=True)
        if row["use_case"] in config.latency_budget_ms
        and row["model_version"] is not None
        and row["latency_p99_ms"] > config.latency_budget_ms[row["use_case"]]
    ]
    yield dg.Output(
        table,
        metadata={
            "log_rows": log.num_rows,
            "requests_by_use_case": {u: int(s["requests"]) for u, s in summary.items()},
            # Not "preview": the IO manager writes that key after the asset and would replace it.
            "by_hour": dg.MetadataValue.md(
                reporting.markdown_table(table.head(24).to_dicts(), list(table.columns))
            )
            if table.height
            else "no requests were logged on this day",
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_server_errors",
        passed=failures == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"server_errors": failures},
    )
    yield dg.AssetCheckResult(
        check_name="latency_within_budget",
        passed=not over_budget,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"hours_over_budget": "; ".join(over_budget) or "none"},
    )


@deployment_defaults("serving__input_drift")
class InputDriftConfig(DriftCheckConfig):
    """When the inputs of a served model count as drifted (PSI per feature, against the version's
    own training rows); `min_rows` counts the answered requests of a model version in the day."""


@dg.asset(
    key=INPUT_DRIFT,
    partitions_def=DAILY,
    group_name=GROUP,
    deps=[PREDICTIONS_LOG],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # It loads the served versions from MLflow.
    retry_policy=NETWORK_RETRY,
    freshness_policy=daily_freshness(),
    kinds={"evidently", "mlflow", "pandas"},
    check_specs=[
        dg.AssetCheckSpec(
            INPUTS_HAVE_NOT_DRIFTED,
            asset=INPUT_DRIFT,
            description="No feature the API's models saw (nor their predictions) moved away "
            "from the served version's training data beyond the PSI thresholds; a day with too "
            "few requests is insufficient data and passes.",
        )
    ],
)
def input_drift(
    context: dg.AssetExecutionContext,
    config: InputDriftConfig,
    asset_store: AssetStore,
    mlflow: MlflowTracking,
):
    """Per use case served only through the API (heart, housing, athletes), model version and
    feature: how far the inputs the model saw that day, and its predictions, moved away from the
    version's own training rows and its predictions on them: PSI on the training quantiles, a
    two-sample test, drifted or not. One Evidently HTML report per use case and day under
    `<data root>/serving/input_drift/<day>/`. A failing use case requests its retraining."""
    from mlops_assets.core.monitoring.retraining import trigger_metadata
    from mlops_assets.serving import drift
    from mlops_assets.serving.request_log import read_day
    from mlops_assets.use_cases import USE_CASES

    day = context.partition_key
    thresholds = config.thresholds()
    log = read_day(asset_store.base, day)
    judged, unreadable = {}, {}
    for use_case, endpoint in drift.drift_endpoints(USE_CASES).items():
        logged = drift.logged_requests(log, use_case, endpoint.drift.current)
        unreadable[use_case] = (logged.unreadable, logged.unreadable_reason)
        judged[use_case] = drift.judge_use_case(
            logged,
            endpoint,
            tracking=mlflow,
            store=asset_store,
            thresholds=thresholds,
            fail_on=config.fail_on,
            sample_rows=config.sample_rows,
        )
    outcome = drift.day_outcome(
        judged,
        unreadable,
        day=day,
        jobs=RETRAINING_JOBS,
        check=INPUTS_HAVE_NOT_DRIFTED,
        asset=INPUT_DRIFT.to_user_string(),
    )
    reports = drift.write_reports(
        asset_store.folder(INPUT_DRIFT) / day,
        judged,
        day=day,
        tmp_dir=asset_store.publisher.tmp_dir,
        thresholds=thresholds,
        sample_rows=config.sample_rows,
    )
    versions = [v for judged_versions in judged.values() for v in judged_versions]
    yield dg.Output(
        drift.drift_rows(versions),
        metadata={
            "log_rows": log.num_rows,
            **_drift_metadata(judged, outcome, reports, thresholds),
            **trigger_metadata(outcome.triggers),
        },
    )
    yield outcome.verdict.check_result(
        INPUTS_HAVE_NOT_DRIFTED,
        metadata={
            "by_use_case": dg.MetadataValue.json(
                {
                    u: {"status": v.status, "reason": v.reason}
                    for u, v in outcome.by_use_case.items()
                }
            )
        },
    )


# Features shown per version in the metadata's table (the stored table has them all).
_SHOWN_FEATURES = 10


def _drift_metadata(judged, outcome, reports, thresholds) -> dict:
    """What the UI shows of a day's drift: the verdict per version, the worst features, a PSI
    figure and a link to the HTML report per use case, and every reason in words."""
    from mlops_assets.core import reporting, storage
    from mlops_assets.core.monitoring.plots import drift_figure
    from mlops_assets.serving.drift import report_version

    versions = [v for judged_versions in judged.values() for v in judged_versions]
    summary = [
        {
            "use_case": v.use_case,
            "model_version": v.model_version,
            "requests": v.current_rows,
            "reference_rows": v.summary.reference_rows if v.summary else None,
            "reference": ("exact" if v.reference.exact else "approximate") if v.reference else None,
            "status": v.verdict.status,
            "worst_feature": v.summary.worst_feature if v.summary else None,
            "worst_psi": round(v.summary.worst_psi, 4)
            if v.summary and v.summary.worst_psi is not None
            else None,
        }
        for v in versions
    ]
    features = [
        {
            "use_case": v.use_case,
            "model_version": v.model_version,
            **{
                k: (round(row[k], 4) if isinstance(row[k], float) else row[k])
                for k in ("feature", "psi", "test", "statistic", "p_value", "drifted")
            },
        }
        for v in versions
        if v.summary is not None and v.summary.table is not None
        for row in v.summary.table.head(_SHOWN_FEATURES).to_dict("records")
    ]
    reasons = [f"- {verdict.reason}" for verdict in outcome.by_use_case.values()]
    reasons += [f"- {v.label} {note}" for v in versions for note in v.notes]
    metadata = {
        "thresholds": dg.MetadataValue.json(
            {
                "psi_warn": thresholds.psi_warn,
                "psi_error": thresholds.psi_error,
                "min_rows": thresholds.min_rows,
            }
        ),
        "versions": dg.MetadataValue.md(
            reporting.markdown_table(summary, list(summary[0]))
            if summary
            else "no answered request of a watched use case on this day"
        ),
        "reasons": dg.MetadataValue.md("\n".join(reasons)),
    }
    if features:
        metadata["features_by_psi"] = dg.MetadataValue.md(
            reporting.markdown_table(features, list(features[0]))
        )
    for use_case, path in reports.items():
        # A file on this machine, or an object in the bucket (s3://...).
        metadata[f"report_{use_case}"] = (
            dg.MetadataValue.path(str(path))
            if storage.is_local(path)
            else dg.MetadataValue.url(str(path))
        )
        v = report_version(judged[use_case])
        figure = drift_figure(v.summary.table, thresholds, title=f"{v.label}: PSI per feature")
        metadata[f"drift_{use_case}"] = reporting.figure_markdown(
            figure, alt=f"PSI per feature of {v.label}"
        )
    return metadata
