"""`serving/rollout_comparison`: champion against candidate on the same requests of a day, for
every use case the API serves, and for fraud both PR-AUCs on the payments whose chargebacks are
known; through `dagster.materialize` on a local store whose request log was written by the real
`RequestLog`."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score

from mlops_assets.core.asset_store import AssetStore, store_resources
from mlops_assets.core.tracking import MlflowTracking
from mlops_assets.fraud.schema import CASE
from mlops_assets.serving.assets import predictions_log
from mlops_assets.serving.comparison import (
    ROLLOUT_COMPARISON,
    TABLE_COLUMNS,
    RolloutComparisonConfig,
    rollout_comparison,
)
from mlops_assets.serving.definitions import defs as serving_defs
from mlops_assets.serving.request_log import RequestLog
from mlops_assets_tests.fixtures.runs import failures, metadata

DAY = "2025-06-02"
BEFORE = "2025-06-01"
AFTER = "2025-06-03"
LONG_AGO = "2025-05-18"  # 15 days before: outside fraud's 14-day chargeback horizon
AS_OF = datetime(2025, 6, 3, tzinfo=UTC)

FRAUD = ("fraud", "fraud_classifier")
HEART = ("heart", "heart_disease")
HOUSING = ("housing", "housing_price")


def _at(day: str, minute: int) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(minutes=minute)


def _record(rid: str, ts: datetime, case: tuple[str, str], version: str,
            prediction: float | None, *, role: str, alias: str, status: int = 200,
            tx_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "request_id": rid,
        "ts": ts,
        "use_case": case[0],
        "model_name": case[1],
        "model_version": version,
        "status": status,
        "latency_ms": 2.0,
        "prediction": prediction,
        "features_missing": 0,
        "error": None if status < 400 else "the candidate raised",
        "request": {"tx_id": tx_id} if tx_id else {"x": 1},
        "response": {"y": prediction} if role == "served" else None,
        "features": None,
        "role": role,
        "alias": alias,
    }


def _pair(rid: str, ts: datetime, case: tuple[str, str], versions: tuple[str, str],
          champion: float | None, candidate: float | None, *, canary: bool = False,
          tx_id: str | None = None, candidate_status: int = 200) -> list[dict]:  # fmt: skip
    """One request scored by both: in shadow the champion answers, in canary the candidate."""
    answer, shadow = ("candidate", "champion") if canary else ("champion", "candidate")
    scores = {"champion": (versions[0], champion, 200), "candidate": (versions[1], candidate,
              candidate_status)}  # fmt: skip
    return [
        _record(rid, ts, case, scores[answer][0], scores[answer][1], role="served",
                alias=answer, status=scores[answer][2], tx_id=tx_id),
        _record(rid, ts + timedelta(milliseconds=2), case, scores[shadow][0], scores[shadow][1],
                role="shadow", alias=shadow, status=scores[shadow][2], tx_id=tx_id),
    ]  # fmt: skip


V12 = ("1", "2")
# Fraud, the day before: shadow mode; f1 is the fraud.
FRAUD_BEFORE = {"f1": (0.2, 0.9, 1), "f2": (0.8, 0.3, 0), "f3": (0.4, 0.1, 0), "f4": (0.6, 0.2, 0)}
# Fraud, the day: g1-g3 in shadow, g4-g5 in canary; g4's chargeback lands after the day.
FRAUD_DAY = {
    "g1": (0.1, 0.2, 0, False),
    "g2": (0.7, 0.9, 1, False),
    "g3": (0.3, 0.95, 0, False),
    "g4": (0.9, 0.8, 1, True),
    "g5": (0.05, 0.1, 0, True),
}


def _traffic() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i, (tx, (champion, candidate, _)) in enumerate(FRAUD_BEFORE.items()):
        records += _pair(f"b{i}", _at(BEFORE, i), FRAUD, V12, champion, candidate, tx_id=tx)
    for i, (tx, (champion, candidate, _, canary)) in enumerate(FRAUD_DAY.items()):
        records += _pair(f"d{i}", _at(DAY, i), FRAUD, V12, champion, candidate, tx_id=tx,
                         canary=canary)  # fmt: skip
    # The candidate raised on g6: a pair, not compared (its fraud label does not count either).
    records += _pair("d9", _at(DAY, 9), FRAUD, V12, 0.4, None, tx_id="g6", candidate_status=500)
    # Answered by the champion alone (outside the shadow share): no pair.
    records.append(_record("d10", _at(DAY, 10), FRAUD, "1", 0.5, role="served",
                           alias="champion", tx_id="g7"))  # fmt: skip
    # heart in canary, housing in shadow.
    records += _pair("h1", _at(DAY, 20), HEART, ("7", "8"), 0.3, 0.4, canary=True)
    records += _pair("h2", _at(DAY, 21), HEART, ("7", "8"), 0.6, 0.4, canary=True)
    records += _pair("p1", _at(DAY, 30), HOUSING, ("3", "4"), 100.0, 103.0)
    records += _pair("p2", _at(DAY, 31), HOUSING, ("3", "4"), 200.0, 230.0)
    # Days the partition must not read.
    records += _pair("n1", _at(AFTER, 1), FRAUD, V12, 0.5, 0.5, tx_id="n1")
    records += _pair("o1", _at(LONG_AGO, 1), FRAUD, V12, 0.5, 0.5, tx_id="o1")
    return records


def _write_log(root: Path, records: list[dict[str, Any]]) -> None:
    """Through the API's own request log: appended, sealed and shipped to the store."""
    log = RequestLog(root / "wal", root, ship_interval_s=3600.0, fsync=False)
    log.start()
    try:
        for record in records:
            log.append_blocking(record)
    finally:
        log.close()


def _write_labels(root: Path) -> None:
    rows = {
        BEFORE: [(tx, label, AS_OF - timedelta(hours=5)) for tx, (_, _, label) in
                 FRAUD_BEFORE.items()],
        DAY: [(tx, label, AS_OF + timedelta(days=1) if tx == "g4" else AS_OF) for tx,
              (_, _, label, _) in FRAUD_DAY.items()] + [("g6", 1, AS_OF), ("g7", 0, AS_OF)],
    }  # fmt: skip
    schema = {
        "tx_id": pl.String,
        "is_fraud": pl.Int8,
        "label_available_ts": pl.Datetime("us", "UTC"),
    }
    AssetStore(root=str(root)).write_partitions(
        CASE.key("labels"),
        {day: pl.DataFrame(r, schema=schema, orient="row") for day, r in rows.items()},
    )


def _materialize(root: Path, day: str = DAY) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [predictions_log, rollout_comparison],
        selection=[ROLLOUT_COMPARISON],
        resources=store_resources(str(root)),
        partition_key=day,
        raise_on_error=False,
    )
    assert result.success, failures(result)
    return result


def _stored(root: Path, day: str = DAY) -> Path:
    return root / "serving" / "rollout_comparison" / f"{day}.parquet"


def test_the_day_compares_every_rolled_out_use_case_and_fraud_on_its_labels(
    tmp_path: Path,
) -> None:
    _write_log(tmp_path, _traffic())
    _write_labels(tmp_path)

    result = _materialize(tmp_path)

    table = pl.read_parquet(_stored(tmp_path))
    assert table.columns == list(TABLE_COLUMNS)
    assert table.select("day", "use_case", "champion_version", "candidate_version").rows() == [
        (BEFORE, "fraud", "1", "2"),  # fraud's horizon: re-measured with the labels known now
        (DAY, "fraud", "1", "2"),
        (DAY, "heart", "7", "8"),
        (DAY, "housing", "3", "4"),
    ]
    before, fraud, heart, housing = table.to_dicts()
    assert set(table["as_of"]) == {AS_OF}

    # Fraud, the day: 6 pairs, 5 compared (the candidate raised once), 2 answered in canary.
    assert (fraud["requests"], fraud["scored"], fraud["answered_by_candidate"]) == (6, 5, 2)
    assert (fraud["champion_failures"], fraud["candidate_failures"]) == (0, 1)
    # At 0.5 only g3 is decided apart (0.3 against 0.95).
    assert (fraud["agreement"], fraud["agreement_rule"]) == (0.8, "same decision at 0.5")
    champion = [v[0] for v in FRAUD_DAY.values()]
    candidate = [v[1] for v in FRAUD_DAY.values()]
    assert fraud["pearson"] == pytest.approx(np.corrcoef(champion, candidate)[0, 1])
    assert fraud["mean_abs_diff"] == pytest.approx((0.1 + 0.2 + 0.65 + 0.1 + 0.05) / 5)
    # Labelled: g1, g2, g3, g5 (g4's chargeback is not known yet, g6 was not compared). The
    # champion ranks the fraud g2 first; the candidate ranks g3 above it.
    assert (fraud["metric"], fraud["labelled"]) == ("pr_auc", 4)
    assert (fraud["champion_value"], fraud["candidate_value"]) == (1.0, 0.5)
    # The day before: the candidate ranks f1 first, the champion last of four.
    assert (before["requests"], before["agreement"], before["labelled"]) == (4, 0.25, 4)
    assert (before["champion_value"], before["candidate_value"]) == (0.25, 1.0)

    assert (heart["requests"], heart["answered_by_candidate"], heart["agreement"]) == (2, 2, 0.5)
    assert math.isnan(heart["pearson"])  # the candidate scored both 0.4: no correlation
    assert heart["metric"] is None and heart["labelled"] is None
    # 103 is within 5% of 100; 230 is 30 from 200, more than 5% of 230.
    assert (housing["agreement"], housing["agreement_rule"]) == (0.5, "within 5%")
    assert housing["mean_abs_diff"] == pytest.approx(16.5)
    assert housing["pearson"] == pytest.approx(1.0)

    meta = metadata(result, "serving/rollout_comparison")
    assert meta["as_of"] == AS_OF.isoformat()
    assert meta["paired_requests"] == 6 + 2 + 2
    assert meta["fraud/versions"] == "champion v1, candidate v2"
    assert (meta["fraud/paired_requests"], meta["fraud/agreement"]) == (6, 0.8)
    # Pooled over the horizon: the 8 labelled payments of both days, as the gate weighs them.
    labels = [1, 0, 0, 0, 0, 1, 0, 0]
    pooled = {
        side: average_precision_score(
            labels,
            [v[i] for v in FRAUD_BEFORE.values()]
            + [v[i] for k, v in FRAUD_DAY.items() if k != "g4"],
        )
        for i, side in enumerate(("champion", "candidate"))
    }
    assert meta["fraud/labelled"] == 8
    assert meta["fraud/champion_pr_auc"] == pytest.approx(pooled["champion"])
    assert meta["fraud/candidate_pr_auc"] == pytest.approx(pooled["candidate"])
    assert meta["fraud/labelled_days"] == "2025-05-19 .. 2025-06-02"
    assert meta["heart/spearman"] is None and meta["housing/agreement"] == 0.5
    assert "heart/labelled" not in meta
    versions = meta["versions"].splitlines()
    assert versions[0].startswith("| use_case | champion_version | candidate_version | requests |")
    assert len(versions) == 2 + 3
    assert "| fraud | 1 | 2 | 6 | 5 | 2 | 1 | same decision at 0.5 | 0.8 |" in meta["versions"]
    assert len(meta["labelled_by_day"].splitlines()) == 2 + 2


def test_rematerializing_a_day_writes_the_same_bytes(tmp_path: Path) -> None:
    _write_log(tmp_path, _traffic())
    _write_labels(tmp_path)
    _materialize(tmp_path)
    first = _stored(tmp_path).read_bytes()
    _materialize(tmp_path)
    assert _stored(tmp_path).read_bytes() == first


def test_a_day_without_rollout_stores_the_columns_and_says_so(tmp_path: Path) -> None:
    # Only the champion answered (rollout off); an old batch would read the same.
    _write_log(
        tmp_path,
        [_record("x", _at(DAY, 1), FRAUD, "1", 0.3, role="served", alias="champion", tx_id="t")],
    )
    result = _materialize(tmp_path)
    table = pl.read_parquet(_stored(tmp_path))
    assert table.is_empty() and table.columns == list(TABLE_COLUMNS)
    meta = metadata(result, "serving/rollout_comparison")
    assert meta["paired_requests"] == 0
    assert meta["versions"].startswith("no request was scored by both a champion and a candidate")


def test_agreement_rules_come_from_the_config() -> None:
    config = RolloutComparisonConfig(decision_thresholds={"fraud": 0.3}, relative_tolerance=0.1)
    assert config.agreement("fraud").describe() == "same decision at 0.3"
    assert config.agreement("demand").describe() == "within 10%"


def test_the_comparison_runs_nightly_after_the_drift(tmp_path: Path) -> None:
    # With the resources the code location binds: the assets ask for the asset store.
    defs = dg.Definitions.merge(
        serving_defs,
        dg.Definitions(
            resources={
                **store_resources(str(tmp_path)),
                "mlflow": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
            }
        ),
    )
    schedule = defs.resolve_schedule_def("serving_rollout_comparison_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2025, 6, 3, 0, 45, tzinfo=UTC)
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert schedule.cron_schedule == "45 0 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert [(r.job_name, r.partition_key) for r in requests or []] == [
        ("serving_rollout_comparison", DAY)
    ]
    job = defs.resolve_job_def("serving_rollout_comparison")
    assert job.asset_layer.executable_asset_keys == {ROLLOUT_COMPARISON}
