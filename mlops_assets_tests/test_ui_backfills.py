"""Partition backfills launched from the Dagster UI, as a user launches them: in a group, select
assets, "Materialize", pick a range of partitions, "Launch backfill". The webserver receives
GraphQL `launchPartitionBackfill` with the asset selection and the partition names, and the
running daemon (`mlops dev`) plans and launches the runs.

Each backfill must end COMPLETED_SUCCESS and materialize the partitions asked for, and only
those (a window that an asset reads is history, not a reason to claim the following days); the
blocking checks audited inside a ranged step must show a result per partition, never
"skipped". The deployment's `mlops.yaml` holds tiny settings, which every run launched from the
UI starts from.
"""

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mlops_assets_tests.fixtures.dagster_ui import Ui

# One deployment's settings: small data, a short training window, a small grid.
TINY = {
    "bronze": {
        "config": {
            "n_cards": 200,
            "n_merchants": 30,
            "tx_per_day": 400,
            "fraud_rate": 0.08,
            "max_chargeback_days": 1,
        }
    },
    "fraud__training_set": {"config": {"window_days": 2, "maturity_days": 1}},
    "fraud__model": {"config": {"kinds": ["logreg"]}},
    "demand__raw": {"config": {"respondents": ["CISO"]}},
    "demand__cv_results": {
        "config": {
            "models": ["seasonal_naive"],
            "n_windows": 1,
            "history_days": 7,
            "input_hours": 96,
        }
    },
    "demand__champion": {"config": {"example_days": 7}},
    "demand__forecasts": {"config": {"history_days": 7}},
    "athletes__raw": {"config": {"n_athletes": 300}},
    "athletes__models": {
        "ops": {"grid_points": {"config": {"n_estimators": [10], "max_depths": [4]}}}
    },
}

FRAUD_INGESTION = ["transactions", "labels", "card_features", "merchant_features", "feature_store"]
FRAUD_GROUP = [*FRAUD_INGESTION, "training_set", "model", "champion", "scores"]
DEMAND_GROUP = ["raw", "clean", "cv_results", "leaderboard", "champion", "forecasts"]


# What an asset's page asks for its code version and its latest materialization's metadata.
LINEAGE = """
query AssetLineage($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    opVersion
    assetMaterializations(limit: 1) {
      metadataEntries {
        label
        ... on TextMetadataEntry { text }
        ... on MarkdownMetadataEntry { mdStr }
      }
    }
  }
}
"""


def _keys(use_case: str, names: list[str]) -> list[list[str]]:
    return [[use_case, name] for name in names]


def _materialized(ui: Ui, key: list[str]) -> dict[str, int]:
    """The partitions of ``key`` the test materialized, with their counts. The daemon of
    `mlops dev` also runs the schedules that are on by default (`fraud_daily_ingestion` at 01:00
    UTC, the monitoring ones after midnight): one that fires during the test materializes the day
    that just ended, by the wall clock, which is none of the test's days; left out here."""
    recent = datetime.now(UTC).date() - timedelta(days=2)
    return {
        partition: count
        for partition, count in ui.materialized_partitions(key).items()
        if not _is_date(partition) or date.fromisoformat(partition) < recent
    }


def _is_date(partition: str) -> bool:
    try:
        date.fromisoformat(partition)
    except ValueError:
        return False
    return True


def _succeeded(backfill: dict) -> None:
    failed = [r for r in backfill["runs"] if r["status"] != "SUCCESS"]
    assert backfill["status"] == "COMPLETED_SUCCESS" and not failed, backfill


def _only(ui: Ui, use_case: str, names: list[str], partitions: set[str]) -> None:
    """Each asset was materialized for each of ``partitions`` and never for another. (Some more
    than once, rightly: the running automation sensor rebuilds the athletes features after
    `clean`, and the rescoring sensor scores a fraud day again when a later champion moves.)"""
    for name in names:
        counts = _materialized(ui, [use_case, name])
        assert set(counts) == partitions, (name, counts)


@pytest.mark.timeout(1500)
def test_range_backfills_from_the_ui_materialize_what_was_asked(
    start_ui: Callable[..., Ui], local_home: Path
) -> None:
    ui = start_ui(TINY)
    data = local_home / ".data"
    # Independent backfills are launched together, as a user may: the daemon plans them all at
    # each of its iterations (every 30 s), and the queue runs their runs one after the other.

    # 1. Sources: two days of fraud ingestion (before, the 30- and 44-day windows of the
    # features were partition mappings, and Dagster widened this to 32 and 46 days of features,
    # which failed for want of bronze), a week of demand, two days of serving monitoring (an
    # empty request log: no API ran), and the athletes' unpartitioned sources.
    days = ["2024-01-01", "2024-01-02"]
    week = [f"2024-05-0{d}" for d in range(1, 8)]
    # (`serving/predictions_log` is an observable source: the UI observes it, never materializes)
    monitoring = ["prediction_monitoring"]
    launched = [
        ui.launch_backfill(_keys("fraud", FRAUD_INGESTION), days),
        ui.launch_backfill(_keys("demand", ["raw", "clean"]), week),
        ui.launch_backfill(_keys("serving", monitoring), ["2025-06-01", "2025-06-02"]),
    ]
    athletes = ui.launch(_keys("athletes", ["raw", "clean"]))
    for state in ui.wait_backfills(launched):
        _succeeded(state)
    assert ui.wait_run(athletes)["status"] == "SUCCESS"
    _only(ui, "fraud", FRAUD_INGESTION, set(days))
    _only(ui, "demand", ["raw", "clean"], set(week))
    _only(ui, "serving", monitoring, {"2025-06-01", "2025-06-02"})
    # The deployment's settings, not the code's defaults (20,000 payments a day).
    assert pl.read_parquet(data / "fraud" / "transactions" / "2024-01-01.parquet").height == 400
    # The blocking checks judged inside the ranged step show a result on each day.
    for key, check in (
        (["fraud", "transactions"], "tx_id_is_unique"),
        (["fraud", "transactions"], "transactions_meet_expectations"),
        (["fraud", "labels"], "labels_cover_transactions"),
        (["fraud", "merchant_features"], "merchant_fraud_counts_use_only_available_labels"),
        (["demand", "clean"], "no_missing_hours"),
    ):
        executions = ui.check_executions(key, check)
        expected = week if key[0] == "demand" else days
        assert {e["partition"]: e["status"] for e in executions} == dict.fromkeys(
            expected, "SUCCEEDED"
        ), (key, check, executions)

    # 2. Whole groups on the days after: fraud (ingestion, then per day the training set of the
    # days before it, the model, the champion decided, and the scores by that champion) and
    # demand (backtest, leaderboard, champion, forecasts); both athletes feature versions and
    # their grids; and each member of the bronze multi-asset alone (before: "does not support
    # subsetting").
    later, after = ["2024-01-03", "2024-01-04"], ["2024-05-08", "2024-05-09"]
    launched = [
        ui.launch_backfill(_keys("fraud", FRAUD_GROUP), later),
        ui.launch_backfill(_keys("demand", DEMAND_GROUP), after),
        ui.launch_backfill(_keys("athletes", ["features", "models"]), ["v1", "v2"]),
        ui.launch_backfill([["fraud", "transactions"]], ["2024-01-05"]),
        ui.launch_backfill([["fraud", "labels"]], ["2024-01-06"]),
    ]
    for state in ui.wait_backfills(launched):
        _succeeded(state)

    _only(ui, "fraud", FRAUD_GROUP[5:], set(later))
    for name in ("card_features", "merchant_features", "feature_store"):
        assert _materialized(ui, ["fraud", name]) == dict.fromkeys(days + later, 1)
    scores = pl.read_parquet(data / "fraud" / "scores" / "2024-01-04.parquet")
    assert scores.height == 400 and scores["model_version"].is_not_null().all()

    transactions = _materialized(ui, ["fraud", "transactions"])
    labels = _materialized(ui, ["fraud", "labels"])
    assert transactions == dict.fromkeys([*days, *later, "2024-01-05"], 1)
    assert labels == dict.fromkeys([*days, *later, "2024-01-06"], 1)
    assert not (data / "fraud" / "labels" / "2024-01-05.parquet").exists()
    assert not (data / "fraud" / "transactions" / "2024-01-06.parquet").exists()
    coverage = ui.check_executions(["fraud", "labels"], "labels_cover_transactions")
    assert {e["partition"]: e["status"] for e in coverage} == dict.fromkeys(
        [*days, *later, "2024-01-06"], "SUCCEEDED"
    )

    _only(ui, "demand", DEMAND_GROUP[2:], set(after))
    forecasts = pl.read_parquet(data / "demand" / "forecasts" / "2024-05-09.parquet")
    assert forecasts["unique_id"].unique().to_list() == ["CISO"]

    _only(ui, "athletes", ["features", "models"], {"v1", "v2"})

    # 3. Lineage as the asset pages show it: every fraud asset's derived code version, and on
    # the model's latest materialization the data and code it came from, with the CLI call that
    # walks the rest of the chain.
    nodes = ui.query(LINEAGE, keys=[{"path": k} for k in _keys("fraud", FRAUD_GROUP)])
    versions = {"/".join(n["assetKey"]["path"]): n["opVersion"] for n in nodes["assetNodes"]}
    assert set(versions) == {f"fraud/{name}" for name in FRAUD_GROUP}
    assert all(re.fullmatch(r"[0-9a-f]{20}", v or "") for v in versions.values()), versions
    model = next(n for n in nodes["assetNodes"] if n["assetKey"]["path"] == ["fraud", "model"])
    [latest] = model["assetMaterializations"]
    entries = {e["label"]: e.get("text") or e.get("mdStr") for e in latest["metadataEntries"]}
    assert entries["code_version"] == versions["fraud/model"]
    assert entries["lineage_command"].startswith("mlops lineage model fraud_classifier@")
    # (the model of whichever of the two days ran last)
    assert re.search(r"fraud/training_set/dt=2024-01-0[34]/run_id=", entries["training_data"])
    # The grid's intermediate outputs stay in Dagster's step storage, not in the data root.
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith("_")) == [
        "athletes",
        "demand",
        "feast",
        "fraud",
        "serving",
    ]
