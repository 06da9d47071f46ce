"""The monitoring table of the prediction API, built from a day of its request log.

One row per use case, model version and UTC hour: traffic, refusals and failures, latency
percentiles, the distribution of the headline prediction, and how often the online store had no
value for a feature the model needed. It is what a team watches for a silent failure: a new model
version whose scores drift, an online store that stopped being materialized, latency creeping up.

Pure code on Polars frames (imported inside the functions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

MONITORING_COLUMNS = (
    "use_case",
    "model_name",
    "model_version",
    "hour",
    "requests",
    "ok",
    "client_errors",
    "server_errors",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "prediction_mean",
    "prediction_p50",
    "prediction_p95",
    "requests_with_missing_features",
)


def monitoring_table(log: pa.Table | pl.DataFrame) -> pl.DataFrame:
    """Aggregate request-log rows (``request_log.PREDICTIONS_LOG_COLUMNS``) per use case, model
    version and hour, sorted by those keys. Requests refused before a model was chosen (an
    unknown use case, an oversized body) are counted under ``model_version`` null.

    Only answers count (``role`` null or ``served``): a prediction scored in shadow during a
    rollout was never sent, so it is no request, and its latency is no client's. A canary's
    answers are counted under the candidate's version, which answered them."""
    import polars as pl

    from mlops_assets.core.rollout import SERVED_ROLE

    frame = log if isinstance(log, pl.DataFrame) else pl.from_arrow(log)
    if "role" in frame.columns:
        frame = frame.filter(pl.col("role").is_null() | (pl.col("role") == SERVED_ROLE))
    ok = pl.col("status") < 400
    answered = pl.col("prediction").filter(ok)
    out = (
        frame.with_columns(pl.col("ts").dt.truncate("1h").alias("hour"))
        .group_by(["use_case", "model_name", "model_version", "hour"])
        .agg(
            pl.len().cast(pl.Int64).alias("requests"),
            ok.sum().cast(pl.Int64).alias("ok"),
            pl.col("status").is_between(400, 499).sum().cast(pl.Int64).alias("client_errors"),
            (pl.col("status") >= 500).sum().cast(pl.Int64).alias("server_errors"),
            pl.col("latency_ms").quantile(0.5, "linear").alias("latency_p50_ms"),
            pl.col("latency_ms").quantile(0.95, "linear").alias("latency_p95_ms"),
            pl.col("latency_ms").quantile(0.99, "linear").alias("latency_p99_ms"),
            pl.col("latency_ms").max().alias("latency_max_ms"),
            answered.mean().alias("prediction_mean"),
            answered.quantile(0.5, "linear").alias("prediction_p50"),
            answered.quantile(0.95, "linear").alias("prediction_p95"),
            (pl.col("features_missing") > 0)
            .sum()
            .cast(pl.Int64)
            .alias("requests_with_missing_features"),
        )
        .with_columns(
            ((pl.col("client_errors") + pl.col("server_errors")) / pl.col("requests")).alias(
                "error_rate"
            )
        )
        # Versions are numbers in text: "10" after "9".
        .sort(
            [
                "use_case",
                "model_name",
                pl.col("model_version").cast(pl.Int64, strict=False),
                "hour",
            ],
            nulls_last=True,
        )
    )
    return out.select(MONITORING_COLUMNS)


def day_summary(table: pl.DataFrame) -> dict[str, Any]:
    """Per use case totals of a day (for the materialization's metadata)."""
    import polars as pl

    if table.is_empty():
        return {}
    totals = (
        table.group_by("use_case")
        .agg(
            pl.col("requests").sum(),
            pl.col("server_errors").sum(),
            pl.col("client_errors").sum(),
            pl.col("latency_p99_ms").max().alias("worst_hourly_p99_ms"),
            pl.col("model_version").drop_nulls().unique().sort().alias("model_versions"),
        )
        .sort("use_case")
    )
    return {row["use_case"]: row for row in totals.to_dicts()}
