"""The API's request log as Dagster assets: the log itself (a source the API writes) and the
monitoring table built from it, one UTC day per partition."""

import dagster as dg
from pydantic import Field

from mlops_assets.core.asset_store import AssetStore
from mlops_assets.core.policies import daily_freshness
from mlops_assets.core.run_config import deployment_defaults

GROUP = "serving"
# Log days are wall-clock days of the API; the first one the platform could have served.
DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")
PREDICTIONS_LOG = dg.AssetKey(["serving", "predictions_log"])
MONITORING = dg.AssetKey(["serving", "prediction_monitoring"])


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
