"""The prediction API's monitoring: the hourly table built from a day of the request log, its
Dagster asset and checks, the observed log source and the nightly schedule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from mlops_assets.core.asset_store import store_resources
from mlops_assets.core.tracking import MlflowTracking
from mlops_assets.serving.assets import MONITORING, prediction_monitoring, predictions_log
from mlops_assets.serving.definitions import defs as serving_defs
from mlops_assets.serving.monitoring import MONITORING_COLUMNS, day_summary, monitoring_table
from mlops_assets.serving.request_log import (
    RequestLog,
    day_fingerprints,
    predictions_log_schema,
)
from mlops_assets_tests.fixtures.runs import check_verdicts, failures, metadata

DAY = "2026-03-01"


def at(hour: int, minute: int, second: int = 0, micro: int = 0, day: str = DAY) -> datetime:
    y, m, d = (int(p) for p in day.split("-"))
    return datetime(y, m, d, hour, minute, second, micro, tzinfo=UTC)


def row(
    ts: datetime,
    use_case: str,
    model_name: str | None,
    version: str | None,
    status: int,
    latency_ms: float,
    prediction: float | None = None,
    features_missing: int = 0,
) -> dict[str, Any]:
    return {
        "request_id": f"r-{ts:%H%M%S%f}",
        "ts": ts,
        "use_case": use_case,
        "model_name": model_name,
        "model_version": version,
        "status": status,
        "latency_ms": latency_ms,
        "prediction": prediction,
        "features_missing": features_missing,
        "error": None if status < 400 else f"status {status}",
        "request_json": "{}",
        "response_json": "{}",
        "features_json": None,
    }


FRAUD = ("fraud", "fraud_classifier")
HOUSING = ("housing", "housing_price")
# Listed out of order on purpose: the table sorts, the log's order must not matter.
LOG_ROWS = [
    row(at(11, 16), *HOUSING, "1", 200, 12.0, 350_000.0),
    row(at(10, 30), *FRAUD, "3", 500, 30.0, 0.99, features_missing=1),  # failed after scoring
    row(at(10, 50), *FRAUD, "4", 404, 1.5),
    row(at(10, 5), *FRAUD, "3", 200, 2.0, 0.1),
    row(at(12, 0), *HOUSING, "1", 200, 9.0, 100_000.0),  # 12:00 sharp opens the next hour
    row(at(10, 55), "fraud", None, None, 422, 0.5),  # refused before a model was chosen
    row(at(10, 10), *FRAUD, "3", 200, 4.0, 0.3, features_missing=2),
    row(at(11, 30), "fraud", None, None, 422, 0.9),
    row(at(10, 20), *FRAUD, "3", 422, 1.0),
    row(at(11, 15), *HOUSING, "1", 200, 8.0, 250_000.0),
    row(at(10, 57), "fraud", None, None, 404, 0.7),
    row(at(11, 59, 59, 999_999), *HOUSING, "1", 200, 10.0, 300_000.0),
    row(at(10, 25), *FRAUD, "3", 200, 5.0, 0.8),
    row(at(10, 45), *FRAUD, "4", 200, 6.0, 0.9),
    row(at(9, 0), "nope", None, None, 404, 0.2),  # an unknown use case
    row(at(11, 0), *FRAUD, "3", 200, 3.0, 0.5),
]


def log_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=predictions_log_schema())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q, method="linear"))


def expected_row(
    key: tuple[str, str | None, str | None],
    hour: int,
    statuses: list[int],
    latencies: list[float],
    answered_predictions: list[float],
    with_missing: int,
) -> dict[str, Any]:
    ok = sum(s < 400 for s in statuses)
    client = sum(400 <= s < 500 for s in statuses)
    server = sum(s >= 500 for s in statuses)
    preds = answered_predictions
    return {
        "use_case": key[0],
        "model_name": key[1],
        "model_version": key[2],
        "hour": at(hour, 0),
        "requests": len(statuses),
        "ok": ok,
        "client_errors": client,
        "server_errors": server,
        "error_rate": (client + server) / len(statuses),
        "latency_p50_ms": pct(latencies, 50),
        "latency_p95_ms": pct(latencies, 95),
        "latency_p99_ms": pct(latencies, 99),
        "latency_max_ms": max(latencies),
        "prediction_mean": float(np.mean(preds)) if preds else None,
        "prediction_p50": pct(preds, 50) if preds else None,
        "prediction_p95": pct(preds, 95) if preds else None,
        "requests_with_missing_features": with_missing,
    }


EXPECTED = [
    # fraud v3, 10:00: three answers, a 422 and a 500 (whose score must not count).
    expected_row(
        ("fraud", "fraud_classifier", "3"),
        10,
        [200, 200, 422, 500, 200],
        [2.0, 4.0, 1.0, 30.0, 5.0],
        [0.1, 0.3, 0.8],
        2,
    ),
    expected_row(("fraud", "fraud_classifier", "3"), 11, [200], [3.0], [0.5], 0),
    expected_row(("fraud", "fraud_classifier", "4"), 10, [404, 200], [1.5, 6.0], [0.9], 0),
    expected_row(("fraud", None, None), 10, [422, 404], [0.5, 0.7], [], 0),
    expected_row(("fraud", None, None), 11, [422], [0.9], [], 0),
    expected_row(
        ("housing", "housing_price", "1"),
        11,
        [200, 200, 200],
        [12.0, 8.0, 10.0],
        [350_000.0, 250_000.0, 300_000.0],
        0,
    ),
    expected_row(("housing", "housing_price", "1"), 12, [200], [9.0], [100_000.0], 0),
    expected_row(("nope", None, None), 9, [404], [0.2], [], 0),
]


def assert_rows_equal(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [(r["use_case"], r["model_version"], r["hour"]) for r in actual] == [
        (r["use_case"], r["model_version"], r["hour"]) for r in expected
    ]
    for got, want in zip(actual, expected, strict=True):
        assert got.keys() == want.keys()
        for column, value in want.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-12), (column, want["hour"])
            else:
                assert got[column] == value, (column, want["hour"])


# -- the table ---------------------------------------------------------------------------------


def test_monitoring_table_aggregates_per_use_case_version_and_hour() -> None:
    table = monitoring_table(log_table(LOG_ROWS))

    assert table.columns == list(MONITORING_COLUMNS)
    assert_rows_equal(table.to_dicts(), EXPECTED)


def test_predictions_scored_in_shadow_are_not_traffic() -> None:
    """A rollout logs a second prediction per request, never sent: neither a request, nor a
    latency, nor an error of the version that scored it. Answers sent by a canary candidate,
    and rows logged before roles existed (null), are answers."""
    served = [{**r, "role": "served" if i % 2 else None} for i, r in enumerate(LOG_ROWS)]
    shadow = [
        {
            **row(at(10, 5, 1), *FRAUD, "5", 200, 900.0, 0.7),
            "role": "shadow",
            "alias": "candidate",
            "response_json": None,
        },
        {  # the champion scoring a canary request, after the candidate answered it
            **row(at(10, 6), *FRAUD, "3", 500, 800.0),
            "role": "shadow",
            "alias": "champion",
            "response_json": None,
        },
    ]
    canary = {
        **row(at(10, 40), *FRAUD, "5", 200, 7.0, 0.4),
        "role": "served",
        "alias": "candidate",
    }

    table = monitoring_table(log_table([*served, *shadow, canary]))

    expected_canary = expected_row(("fraud", "fraud_classifier", "5"), 10, [200], [7.0], [0.4], 0)
    assert_rows_equal(table.to_dicts(), sorted_like_the_table([*EXPECTED, expected_canary]))


def sorted_like_the_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(r: dict[str, Any]) -> tuple:
        version = int(r["model_version"]) if r["model_version"] is not None else 10**9
        return (r["use_case"], r["model_name"] or "\uffff", version, r["hour"])

    return sorted(rows, key=key)


def test_monitoring_table_reads_a_polars_frame_as_the_arrow_table() -> None:
    from_arrow = monitoring_table(log_table(LOG_ROWS))
    from_polars = monitoring_table(pl.from_arrow(log_table(LOG_ROWS)))

    assert from_polars.equals(from_arrow)


def test_monitoring_table_types_its_counts_as_integers() -> None:
    table = monitoring_table(log_table(LOG_ROWS))

    for column in ("requests", "ok", "client_errors", "server_errors"):
        assert table.schema[column] == pl.Int64, column
    assert table.schema["requests_with_missing_features"] == pl.Int64
    assert table.schema["hour"] == pl.Datetime("us", "UTC")


def test_an_empty_log_gives_an_empty_table_and_no_summary() -> None:
    table = monitoring_table(predictions_log_schema().empty_table())

    assert table.height == 0
    assert table.columns == list(MONITORING_COLUMNS)
    assert day_summary(table) == {}


def test_day_summary_totals_each_use_case() -> None:
    summary = day_summary(monitoring_table(log_table(LOG_ROWS)))

    assert summary == {
        "fraud": {
            "use_case": "fraud",
            "requests": 5 + 1 + 2 + 2 + 1,
            "server_errors": 1,
            "client_errors": 1 + 1 + 2 + 1,
            "worst_hourly_p99_ms": pytest.approx(pct([2.0, 4.0, 1.0, 30.0, 5.0], 99)),
            "model_versions": ["3", "4"],  # the refused rows' null version is not one
        },
        "housing": {
            "use_case": "housing",
            "requests": 4,
            "server_errors": 0,
            "client_errors": 0,
            "worst_hourly_p99_ms": pytest.approx(pct([12.0, 8.0, 10.0], 99)),
            "model_versions": ["1"],
        },
        "nope": {
            "use_case": "nope",
            "requests": 1,
            "server_errors": 0,
            "client_errors": 1,
            "worst_hourly_p99_ms": pytest.approx(0.2),
            "model_versions": [],
        },
    }


# -- the asset ---------------------------------------------------------------------------------


def log_record(ts: datetime, use_case: str, version: str | None, status: int, latency: float):
    answered = status < 400
    return {
        "request_id": f"{use_case}-{ts.isoformat()}",
        "ts": ts,
        "use_case": use_case,
        "model_name": f"{use_case}_model" if version else None,
        "model_version": version,
        "status": status,
        "latency_ms": latency,
        "prediction": 0.25 if answered else None,
        "features_missing": 0,
        "error": None if answered else f"status {status}",
        "request": {"x": 1},
        "response": {"y": 0.25} if answered else None,
        "features": None,
    }


def write_log(root: Path, records: list[dict[str, Any]], wal: str = "wal") -> None:
    """Log ``records`` through a real request log and ship them to ``root`` (close ships)."""
    log = RequestLog(root / wal, root, ship_interval_s=3600.0, fsync=False)
    log.start()
    try:
        for record in records:
            log.append_blocking(record)
    finally:
        log.close()


def materialize_day(root: Path, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [predictions_log, prediction_monitoring],
        selection=[MONITORING],
        resources=store_resources(str(root)),
        partition_key=day,
        raise_on_error=False,
    )


def check_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == name)
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    return {k: v.value for k, v in evaluation.metadata.items()}


def stored(root: Path, day: str) -> pl.DataFrame:
    return pl.read_parquet(root / "serving" / "prediction_monitoring" / f"{day}.parquet")


def test_prediction_monitoring_stores_the_day_and_warns_on_failures_and_slow_hours(
    tmp_path: Path,
) -> None:
    write_log(
        tmp_path,
        [
            log_record(at(10, 5), "fraud", "3", 200, 2.0),
            log_record(at(10, 40), "fraud", "3", 200, 25.0),
            log_record(at(10, 50), "fraud", "3", 500, 3.0),
            # No budget for housing, and refusals before a model are not the model's latency.
            log_record(at(11, 0), "housing", "1", 200, 40.0),
            log_record(at(12, 0), "fraud", None, 422, 50.0),
            # The next day's record lands in the next day's partition, not in this one.
            log_record(at(0, 1, day="2026-03-02"), "fraud", "3", 200, 1.0),
        ],
    )

    result = materialize_day(tmp_path, DAY)

    assert result.success, failures(result)
    table = stored(tmp_path, DAY)
    assert table.select("use_case", "model_version", "requests", "ok", "server_errors").rows() == [
        ("fraud", "3", 3, 2, 1),
        ("fraud", None, 1, 0, 0),
        ("housing", "1", 1, 1, 0),
    ]
    fraud = table.row(0, named=True)
    assert fraud["hour"] == at(10, 0)
    assert fraud["latency_p99_ms"] == pytest.approx(pct([2.0, 25.0, 3.0], 99))
    assert fraud["prediction_mean"] == pytest.approx(0.25)
    assert fraud["error_rate"] == pytest.approx(1 / 3)

    meta = metadata(result, "serving/prediction_monitoring")
    assert meta["log_rows"] == 5
    assert meta["requests_by_use_case"] == {"fraud": 4, "housing": 1}
    assert meta["dagster/row_count"] == 3
    by_hour = meta["by_hour"].splitlines()
    assert by_hour[0].startswith("| use_case | model_name | model_version | hour | requests |")
    assert len(by_hour) == 2 + 3  # header, rule, one line per row of the table

    assert check_verdicts(result) == {"no_server_errors": False, "latency_within_budget": False}
    assert check_metadata(result, "no_server_errors") == {"server_errors": 1}
    assert check_metadata(result, "latency_within_budget") == {
        "hours_over_budget": f"fraud 10:00 p99 {pct([2.0, 25.0, 3.0], 99):.1f} ms"
    }


def test_prediction_monitoring_passes_its_checks_on_clean_traffic(tmp_path: Path) -> None:
    day = "2026-03-02"
    write_log(
        tmp_path,
        [
            log_record(at(8, 0, day=day), "fraud", "3", 200, 2.0),
            log_record(at(8, 1, day=day), "fraud", "3", 404, 9.5),
            log_record(at(9, 0, day=day), "fraud", "3", 200, 4.0),
        ],
    )

    result = materialize_day(tmp_path, day)

    assert result.success, failures(result)
    assert stored(tmp_path, day).select("hour", "requests", "client_errors").rows() == [
        (at(8, 0, day=day), 2, 1),
        (at(9, 0, day=day), 1, 0),
    ]
    assert check_verdicts(result) == {"no_server_errors": True, "latency_within_budget": True}
    assert check_metadata(result, "latency_within_budget") == {"hours_over_budget": "none"}


def test_prediction_monitoring_of_a_day_without_requests_is_empty_and_passes(
    tmp_path: Path,
) -> None:
    write_log(tmp_path, [log_record(at(10, 0), "fraud", "3", 500, 99.0)])  # another day

    result = materialize_day(tmp_path, "2026-03-03")

    assert result.success, failures(result)
    table = stored(tmp_path, "2026-03-03")
    assert table.height == 0
    assert table.columns == list(MONITORING_COLUMNS)
    meta = metadata(result, "serving/prediction_monitoring")
    assert meta["log_rows"] == 0
    assert meta["requests_by_use_case"] == {}
    assert meta["by_hour"] == "no requests were logged on this day"
    assert check_verdicts(result) == {"no_server_errors": True, "latency_within_budget": True}
    assert check_metadata(result, "no_server_errors") == {"server_errors": 0}


def test_the_latency_budget_is_run_config(tmp_path: Path) -> None:
    write_log(
        tmp_path,
        [
            log_record(at(10, 0), "fraud", "3", 200, 25.0),
            log_record(at(11, 0), "housing", "1", 200, 40.0),
        ],
    )

    result = dg.materialize(
        [predictions_log, prediction_monitoring],
        selection=[MONITORING],
        resources=store_resources(str(tmp_path)),
        partition_key=DAY,
        run_config={
            "ops": {
                "serving__prediction_monitoring": {
                    "config": {"latency_budget_ms": {"fraud": 30.0, "housing": 20.0}}
                }
            }
        },
    )

    assert check_verdicts(result)["latency_within_budget"] is False
    assert check_metadata(result, "latency_within_budget") == {
        "hours_over_budget": "housing 11:00 p99 40.0 ms"
    }


# -- the observed source -----------------------------------------------------------------------


def observe(source: dg.SourceAsset, root: Path) -> dg.ExecuteInProcessResult:
    """Observe ``source`` as the UI does, in a job that selects it (dagster 1.13 has no public
    ``observe``, the counterpart of ``materialize``)."""
    job = dg.define_asset_job("observe", selection=dg.AssetSelection.all(include_sources=True))
    defs = dg.Definitions(assets=[source], jobs=[job], resources=store_resources(str(root)))
    return defs.resolve_job_def("observe").execute_in_process()


def observed_versions(root: Path) -> dict[str, str]:
    result = observe(predictions_log, root)
    assert result.success
    versions = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            observation = event.asset_observation_data.asset_observation
            assert observation.asset_key == predictions_log.key
            versions[observation.partition] = observation.tags["dagster/data_version"]
    return versions


def test_predictions_log_observes_a_data_version_per_day_that_changes_with_each_batch(
    tmp_path: Path,
) -> None:
    assert observed_versions(tmp_path) == {}

    write_log(tmp_path, [log_record(at(10, 0), "fraud", "3", 200, 2.0)], wal="wal-a")
    first = observed_versions(tmp_path)
    assert first == day_fingerprints(tmp_path)
    assert list(first) == [DAY]

    # Another worker's batch lands on the same day, and a batch on the next day.
    write_log(
        tmp_path,
        [
            log_record(at(11, 0), "fraud", "3", 200, 3.0),
            log_record(at(1, 0, day="2026-03-02"), "fraud", "3", 200, 3.0),
        ],
        wal="wal-b",
    )
    second = observed_versions(tmp_path)
    assert second == day_fingerprints(tmp_path)
    assert sorted(second) == [DAY, "2026-03-02"]
    assert second[DAY] != first[DAY]

    # Nothing landed: the versions stay, so nothing downstream looks stale.
    assert observed_versions(tmp_path) == second


# -- the schedule ------------------------------------------------------------------------------


def test_the_nightly_schedule_requests_the_day_that_ended(tmp_path: Path) -> None:
    # With the resources the code location binds: the assets ask for the asset store.
    defs = dg.Definitions.merge(
        serving_defs,
        dg.Definitions(
            resources={
                **store_resources(str(tmp_path)),
                # serving/input_drift loads served versions (not here); the URI is only read then.
                "mlflow": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
            }
        ),
    )
    schedule = defs.resolve_schedule_def("serving_monitoring_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 2, 0, 15, tzinfo=UTC)
    )

    requests = schedule.evaluate_tick(context).run_requests

    assert schedule.cron_schedule == "15 0 * * *"
    assert schedule.execution_timezone == "UTC"
    assert [(r.job_name, r.partition_key) for r in requests or []] == [
        ("serving_monitoring", "2026-03-01")
    ]
    job = defs.resolve_job_def("serving_monitoring")
    assert job.asset_layer.executable_asset_keys == {MONITORING}
