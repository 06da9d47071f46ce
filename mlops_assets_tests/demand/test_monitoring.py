"""The demand loop through Dagster on tiny data: forecasts published by a champion, the actuals
of the next day, `demand/forecast_accuracy` and its check, and the sensor that turns a failed
check into one `demand_retraining` run. Without the level shift nothing fires; with it, the
check fails and exactly one retraining is requested, with the trigger in its tags."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.monitoring.retraining import RETRAINING_TRIGGER
from mlops_assets.core.profiles import load_settings
from mlops_assets.definitions import resources_for
from mlops_assets.demand.definitions import ASSETS, demand_retrain_on_monitors
from mlops_assets.demand.definitions import defs as demand_defs
from mlops_assets.demand.monitors import CHECK
from mlops_assets.demand.schema import model_name
from mlops_assets_tests.fixtures.runs import failures, metadata

FIRST, TRAINED, EVALUATED, NEXT_DAY = "2024-05-01", "2024-05-28", "2024-05-29", "2024-05-30"
RESPONDENTS = ["CISO", "NYIS"]
# The two cheapest models: Holt-Winters wins on both respondents (a champion with a promise).
BACKTEST = {"models": ["seasonal_naive", "holt_winters"], "n_windows": 2, "history_days": 28}
FORECASTS = {"demand__forecasts": {"config": {"history_days": 28}}}
# A large new load connects on the evaluated day: demand 40% higher from its first hour.
SHIFT = {"level_shift_from": EVALUATED, "level_shift": 0.4}


def _run(instance, resources, keys, *, partition=None, tags=None, ops=None):
    result = dg.materialize(
        ASSETS,
        selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys]),
        resources=resources,
        instance=instance,
        partition_key=partition,
        tags=tags,
        run_config={"ops": ops or {}},
        raise_on_error=False,
    )
    assert result.success, failures(result)
    return result


def _ingest(instance, resources, first, last, **raw):
    return _run(
        instance,
        resources,
        ["demand/raw", "demand/clean"],
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        ops={"demand__raw": {"config": {"respondents": RESPONDENTS, **raw}}},
    )


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK
    return evaluation


@pytest.fixture
def resources(local_home: Path) -> dict:
    return resources_for(load_settings())


def test_a_level_shift_fails_the_check_and_requests_one_retraining(
    resources: dict, local_home: Path
) -> None:
    defs = dg.Definitions.merge(demand_defs, dg.Definitions(resources=resources))
    with dg.instance_for_test() as instance:
        # Four weeks of actuals and the evaluated day; champions and forecasts as of the day before.
        _ingest(instance, resources, FIRST, EVALUATED)
        # Actuals but no champion and no forecast yet: nothing to judge, no alarm.
        early = _check(_run(instance, resources, ["demand/forecast_accuracy"], partition=EVALUATED))
        assert early.passed and early.metadata["status"].value == "insufficient data"
        assert "demand_forecaster_ciso has no champion yet" in early.metadata["reason"].value
        _run(
            instance,
            resources,
            ["demand/cv_results", "demand/leaderboard", "demand/champion", "demand/forecasts"],
            partition=TRAINED,
            ops={"demand__cv_results": {"config": BACKTEST}, **FORECASTS},
        )
        tracking = resources["mlflow"]
        champions = {r: tracking.champion(model_name(r)) for r in RESPONDENTS}
        promised = {
            r: tracking.client.get_run(v.run_id).data.metrics["rmse_mean"]
            for r, v in champions.items()
        }

        # No shift: the forecasts of the 28th hold their promise on the 29th. The check passes,
        # nothing is asked for.
        quiet = _run(instance, resources, ["demand/forecast_accuracy"], partition=EVALUATED)
        check = _check(quiet)
        assert check.passed and check.metadata["status"].value == "ok"
        recorded = metadata(quiet, "demand/forecast_accuracy")
        assert RETRAINING_TRIGGER not in recorded
        table = pd.read_parquet(
            local_home / ".data" / "demand" / "forecast_accuracy" / f"{EVALUATED}.parquet"
        )
        assert len(table) == len(RESPONDENTS) * 24
        assert sorted(table["lead_hour"].unique()) == list(range(1, 25))
        assert (table["forecasts"] == 1).all() and (table["actuals"] == 1).all()
        for respondent, version in champions.items():
            rows = table[table["unique_id"] == respondent]
            assert set(rows["model_version"]) == {str(version.version)}
            assert rows["promised_rmse"].unique().tolist() == [promised[respondent]]
        assert recorded["forecast_partitions"] == [TRAINED]
        quiet_ratio = _realized_over_promised(table, promised)
        assert max(quiet_ratio.values()) < 3.0

        sensor = defs.resolve_sensor_def(demand_retrain_on_monitors.name)
        first_tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs)
        )
        assert first_tick.run_requests == []

        # The same day again, now with the level shift: the forecasts (made before it) miss it.
        _ingest(instance, resources, EVALUATED, EVALUATED, **SHIFT)
        alarm = _run(instance, resources, ["demand/forecast_accuracy"], partition=EVALUATED)
        check = _check(alarm)
        assert not check.passed
        assert check.severity == dg.AssetCheckSeverity.ERROR
        assert check.metadata["status"].value == "failed"
        table = pd.read_parquet(
            local_home / ".data" / "demand" / "forecast_accuracy" / f"{EVALUATED}.parquet"
        )
        shifted_ratio = _realized_over_promised(table, promised)
        assert min(shifted_ratio.values()) > 3.0
        recorded = metadata(alarm, "demand/forecast_accuracy")
        [trigger] = recorded[RETRAINING_TRIGGER]
        worst = max(shifted_ratio, key=shifted_ratio.get)
        other = next(r for r in RESPONDENTS if r != worst)
        assert trigger["model_name"] == model_name(worst)
        assert trigger["model_version"] == str(champions[worst].version)
        assert (trigger["job"], trigger["partition"], trigger["day"]) == (
            "demand_retraining",
            EVALUATED,
            EVALUATED,
        )
        assert trigger["value"] == pytest.approx(shifted_ratio[worst] * promised[worst])
        assert trigger["threshold"] == pytest.approx(3.0 * promised[worst])
        assert f"also failing: {other}" in recorded["retraining"]
        assert f"{other} v{champions[other].version}: rmse" in check.metadata["reason"].value
        assert recorded["plot"].startswith("![")

        tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, cursor=first_tick.cursor)
        )
        [request] = tick.run_requests
        assert request.job_name == "demand_retraining"
        assert request.partition_key == EVALUATED
        assert request.run_key == (
            f"retrain:{model_name(worst)}:{champions[worst].version}:{EVALUATED}"
        )
        assert request.tags["mlops/purpose"] == "retraining"
        assert request.tags["mlops/trigger_check"] == CHECK
        assert request.tags["mlops/trigger_asset"] == "demand/forecast_accuracy"
        assert request.tags["mlops/trigger_metric"] == "rmse"
        assert request.tags["mlops/trigger_model_version"] == str(champions[worst].version)
        # A later tick has nothing new to act on.
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor)
        )
        assert again.run_requests == []

        # The requested run: backtest and gate on the history ending with the shifted day, then
        # forecasts of the next one, which the check judges in turn, with the shift still on.
        retraining = defs.resolve_job_def(request.job_name).execute_in_process(
            partition_key=request.partition_key,
            tags=request.tags,
            instance=instance,
            run_config={"ops": {"demand__cv_results": {"config": BACKTEST}, **FORECASTS}},
        )
        assert retraining.success, failures(retraining)
        run = instance.get_run_by_id(retraining.run_id)
        assert run.tags["mlops/trigger_check"] == CHECK
        assert {
            e.asset_key.to_user_string() for e in retraining.get_asset_materialization_events()
        } == {
            "demand/cv_results",
            "demand/leaderboard",
            "demand/champion",
            "demand/forecasts",
        }
        _ingest(instance, resources, NEXT_DAY, NEXT_DAY, **SHIFT)
        recovered = _run(instance, resources, ["demand/forecast_accuracy"], partition=NEXT_DAY)
        check = _check(recovered)
        assert check.passed and check.metadata["status"].value == "ok", check.metadata["reason"]
        recorded = metadata(recovered, "demand/forecast_accuracy")
        assert RETRAINING_TRIGGER not in recorded
        assert recorded["plot_by_day"].startswith("![")  # the 29th and the 30th
    print(f"realized / promised RMSE on {EVALUATED}: {quiet_ratio} -> {shifted_ratio}")


def _realized_over_promised(table: pd.DataFrame, promised: dict[str, float]) -> dict[str, float]:
    """Each respondent's realized RMSE of the day (all 24 lead hours) over its promise."""
    out = {}
    for respondent, rows in table.groupby("unique_id"):
        realized = ((rows["rmse"] ** 2 * rows["actuals"]).sum() / rows["actuals"].sum()) ** 0.5
        out[respondent] = float(realized / promised[respondent])
    return out
