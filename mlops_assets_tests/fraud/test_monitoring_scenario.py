"""The monitoring loop end to end on tiny data, local profile: a champion trained before the drift
scenario scores the days after it, both monitors fail and ask for a retraining, the sensor requests
exactly one, the promotion gate promotes the retrained model, and its live PR-AUC recovers."""

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.monitoring.retraining import RETRAINING_TRIGGER
from mlops_assets.core.profiles import load_settings
from mlops_assets.definitions import resources_for
from mlops_assets.fraud.assets import MODEL_NAME
from mlops_assets.fraud.definitions import ASSETS, fraud_retrain_on_monitors, fraud_retraining
from mlops_assets.fraud.monitors import LivePerformanceConfig

FIRST, LAST = "2024-01-01", "2024-01-18"
DRIFT_FROM = "2024-01-11"
TRAINED = "2024-01-10"  # window 01-03 .. 01-08: before the drift
SCORED = ["2024-01-11", "2024-01-12", "2024-01-13", "2024-01-15"]
EVALUATED = "2024-01-15"  # mature (2-day chargebacks): 01-11 .. 01-13
LATER, RE_EVALUATED = "2024-01-16", "2024-01-18"
# Small, but not the tinier days of test_pipeline: with 40 merchants and 30 frauds a day the
# champion's own validation PR-AUC swings by 0.2 and no tolerance separates drift from noise.
BRONZE = {
    "n_cards": 1_000,
    "n_merchants": 200,
    "tx_per_day": 1_500,
    "fraud_rate": 0.05,
    "max_chargeback_days": 2,
    "drift_from": DRIFT_FROM,
}
TOLERANCE = LivePerformanceConfig.model_fields["tolerance"].default
OPS = {
    "bronze": {"config": BRONZE},
    "fraud__training_set": {"config": {"window_days": 6, "maturity_days": 2}},
    "fraud__model": {"config": {"kinds": ["logreg"]}},
    # The new champion is judged on its one mature day (~150 frauds), below the default 200.
    "fraud__live_performance": {"config": {"min_positives": 100}},
}


def _run(keys: list[str], resources: dict, instance: dg.DagsterInstance, **kwargs):
    selection = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    result = dg.materialize(
        ASSETS,
        selection=selection,
        resources=resources,
        instance=instance,
        run_config={"ops": _ops(keys)},
        raise_on_error=False,
        **kwargs,
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def _ops(keys: list[str]) -> dict:
    wanted = {"fraud/transactions": "bronze", "fraud/labels": "bronze"}
    ops = {wanted.get(k, k.replace("/", "__")) for k in keys}
    return {op: config for op, config in OPS.items() if op in ops}


def _materialization(result, key: str):
    [event] = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey.from_user_string(key)
    ]
    return event


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.mark.timeout(600)
def test_drift_fails_the_monitors_retrains_once_and_the_new_champion_recovers(local_home) -> None:
    resources = resources_for(load_settings())
    tracking = resources["mlflow"]
    data = local_home / ".data" / "fraud"
    with dg.instance_for_test() as instance:
        _run(
            ["fraud/transactions", "fraud/labels", "fraud/card_features",
             "fraud/merchant_features", "fraud/feature_store"],
            resources,
            instance,
            tags={
                "dagster/asset_partition_range_start": FIRST,
                "dagster/asset_partition_range_end": LAST,
            },
        )  # fmt: skip
        _run(["fraud/training_set", "fraud/model", "fraud/champion"], resources, instance,
             partition_key=TRAINED)  # fmt: skip
        first = str(tracking.get_version_by_alias(MODEL_NAME, "champion").version)
        for day in SCORED:
            _run(["fraud/scores"], resources, instance, partition_key=day)

        monitors = _run(
            ["fraud/live_performance", "fraud/input_drift"],
            resources,
            instance,
            partition_key=EVALUATED,
        )
        checks = _checks(monitors)
        performance = checks["champion_performs_as_validated"]
        assert performance.passed is False
        assert performance.metadata["status"].value == "failed"
        validated = performance.metadata["threshold"].value + TOLERANCE
        pooled = performance.metadata["pooled"].value
        assert pooled["days"] == ["2024-01-11", "2024-01-12", "2024-01-13"]
        assert pooled["metrics"]["pr_auc"] < validated - TOLERANCE
        drift = checks["inputs_have_not_drifted"]
        assert drift.passed is False and drift.metadata["status"].value == "failed"

        table = pl.read_parquet(data / "live_performance" / f"{EVALUATED}.parquet")
        assert table["day"].to_list() == SCORED  # 01-14 was never scored: no row, no error
        assert set(table["source"]) == {"batch"} and set(table["model_version"]) == {first}
        assert table["label_coverage"].to_list()[:3] == [1.0, 1.0, 1.0]
        assert table["label_coverage"][3] < 0.99  # the evaluation day itself is young

        for key in ("fraud/live_performance", "fraud/input_drift"):
            [trigger] = _materialization(monitors, key).metadata[RETRAINING_TRIGGER].value
            assert (trigger["model_version"], trigger["day"], trigger["partition"]) == (
                first,
                EVALUATED,
                EVALUATED,
            )
        performance_meta = _materialization(monitors, "fraud/live_performance").metadata
        assert performance_meta["pr_auc_by_day"].value.startswith("![PR-AUC per day")
        assert performance_meta["verdict"].value == performance.metadata["reason"].value
        drift_meta = _materialization(monitors, "fraud/input_drift").metadata
        assert drift_meta["psi_by_feature"].value.startswith("![PSI per feature")
        report = data / "input_drift" / f"{EVALUATED}.html"
        assert drift_meta["report"].value == str(report)
        assert report.read_bytes().lstrip().lower().startswith(b"<!doctype html")
        assert "| feature | psi | test | statistic | p_value | drifted |" in (
            drift_meta["drift"].value
        )

        # The sensor sees both failures and asks for one retraining of that day.
        definitions = dg.Definitions(
            assets=ASSETS,
            jobs=[fraud_retraining],
            sensors=[fraud_retrain_on_monitors],
            resources=resources,
        )
        tick = fraud_retrain_on_monitors.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=definitions)
        )
        [request] = tick.run_requests
        assert request.job_name == "fraud_retraining"
        assert request.partition_key == EVALUATED
        assert request.run_key == f"retrain:{MODEL_NAME}:{first}:{EVALUATED}"
        assert request.tags["mlops/purpose"] == "retraining"
        assert request.tags["mlops/trigger_model_version"] == first
        assert request.tags["mlops/trigger_check"] in (
            "champion_performs_as_validated",
            "inputs_have_not_drifted",
        )

        retrained = _run(
            ["fraud/training_set", "fraud/model", "fraud/champion"],
            resources,
            instance,
            partition_key=request.partition_key,
            tags=request.tags,
        )
        decision = _materialization(retrained, "fraud/champion").metadata
        assert decision["promotion/decision"].value == "promoted", decision[
            "promotion/reason"
        ].value
        second = str(tracking.get_version_by_alias(MODEL_NAME, "champion").version)
        assert int(second) > int(first)
        assert (
            retrained.dagster_run.tags["mlops/trigger_check"] == request.tags["mlops/trigger_check"]
        )

        _run(["fraud/scores"], resources, instance, partition_key=LATER)
        later = _run(["fraud/live_performance"], resources, instance, partition_key=RE_EVALUATED)
        recovered = _checks(later)["champion_performs_as_validated"]
        assert recovered.passed is True and recovered.metadata["status"].value == "ok"
        assert recovered.metadata["pooled"].value["days"] == [LATER]
        new_pr_auc = recovered.metadata["value"].value
        assert new_pr_auc > pooled["metrics"]["pr_auc"] + 0.15
        assert RETRAINING_TRIGGER not in _materialization(later, "fraud/live_performance").metadata
        rows = pl.read_parquet(data / "live_performance" / f"{RE_EVALUATED}.parquet")
        by_day = dict(zip(rows["day"], rows["model_version"], strict=True))
        assert by_day == {**dict.fromkeys(SCORED, first), LATER: second}
        [new_row] = rows.filter(pl.col("model_version") == second).to_dicts()
        assert new_row["pr_auc"] == pytest.approx(new_pr_auc)
        assert new_row["label_coverage"] == 1.0
