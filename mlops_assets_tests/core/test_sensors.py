"""The rescoring sensor: stale partitions are found from each partition's own record, against a
real MLflow registry (SQLite), through Dagster's sensor test helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.sensors import (
    CHAMPION_VERSIONS,
    champion_versions_metadata,
    rescore_on_champion_change,
    stale_partitions,
)
from mlops_assets.core.tracking import CHAMPION, MlflowTracking

SCORES = dg.AssetKey(["uc", "scores"])
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
MODEL = "uc_model"


def test_a_partition_is_stale_when_a_model_it_used_is_no_longer_champion() -> None:
    recorded = {
        "2024-01-01": {"a": "1", "b": "3"},
        "2024-01-02": {"a": "2", "b": "3"},
        "2024-01-03": {"b": "3"},
    }
    assert stale_partitions(recorded, {"a": "2", "b": "3"}) == {"2024-01-01": {"a": "2"}}
    # A model without a champion (alias deleted) cannot rescore anything.
    assert stale_partitions(recorded, {"a": None, "b": "4"}) == {
        day: {"b": "4"} for day in recorded
    }
    assert stale_partitions({}, {"a": "1"}) == {}


versions = st.dictionaries(st.sampled_from("abc"), st.sampled_from(["1", "2", "3"]), min_size=1)


@given(
    recorded=st.dictionaries(st.sampled_from(["d1", "d2", "d3", "d4"]), versions),
    champions=st.dictionaries(st.sampled_from("abcd"), st.none() | st.sampled_from(["1", "2"])),
)
def test_stale_means_some_recorded_model_has_another_champion(recorded, champions) -> None:
    stale = stale_partitions(recorded, champions)
    for partition, used in recorded.items():
        moved = {m for m, v in used.items() if champions.get(m) not in (None, v)}
        assert (partition in stale) == bool(moved)
        if moved:
            assert stale[partition] == {m: champions[m] for m in moved}


@pytest.fixture
def tracking(tmp_path: Path) -> MlflowTracking:
    tracking = MlflowTracking(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "artifacts")
    )
    client = tracking.client
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=str(tmp_path / "model"))
    return tracking


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def _record(instance: dg.DagsterInstance, day: str, version: str) -> None:
    """A materialization of ``day`` made with ``version``, as the batch asset would record it."""

    @dg.asset(key=SCORES, partitions_def=DAILY)
    def scores() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=champion_versions_metadata({MODEL: version}))

    assert dg.materialize([scores], instance=instance, partition_key=day).success


@dg.asset(key=SCORES, partitions_def=DAILY)
def _scores_in_the_code_location() -> None:
    """The target as the code location declares it (partitioned requests are resolved on it)."""


def _tick(sensor: dg.SensorDefinition, instance, tracking) -> list[dg.RunRequest] | str:
    defs = dg.Definitions(assets=[_scores_in_the_code_location], sensors=[sensor])
    context = dg.build_sensor_context(
        instance=instance, resources={"mlflow": tracking}, definitions=defs
    )
    result = sensor.evaluate_tick(context)
    if result.skip_message:
        return result.skip_message
    return sorted(result.run_requests, key=lambda r: r.partition_key)


def test_sensor_requests_each_stale_partition_once_per_stale_record(instance, tracking) -> None:
    sensor = rescore_on_champion_change(name="rescore", target=SCORES, recent_partitions=3)
    assert "no materialization" in _tick(sensor, instance, tracking)
    for day in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"):
        _record(instance, day, "1")

    tracking.client.set_registered_model_alias(MODEL, CHAMPION, "1")
    assert "made by the current champions (uc_model v1)" in _tick(sensor, instance, tracking)

    # Promotion: the three latest days (not the oldest) are stale.
    tracking.client.set_registered_model_alias(MODEL, CHAMPION, "2")
    requests = _tick(sensor, instance, tracking)
    assert [r.partition_key for r in requests] == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert all(r.tags["mlops/champions"] == "uc_model=v2" for r in requests)
    assert all(r.tags["mlops/purpose"] == "rescore" for r in requests)
    first_keys = [r.run_key for r in requests]
    assert len(set(first_keys)) == 3
    # While the runs are queued the same keys come back, so Dagster starts each run once.
    assert [r.run_key for r in _tick(sensor, instance, tracking)] == first_keys

    # One day rescored by v2: it is no longer asked for.
    _record(instance, "2024-01-03", "2")
    assert [r.partition_key for r in _tick(sensor, instance, tracking)] == [
        "2024-01-02",
        "2024-01-04",
    ]

    # Rollback to v1: only the day made by v2 is stale, under a new key (a new record).
    tracking.client.set_registered_model_alias(MODEL, CHAMPION, "1")
    [rollback] = _tick(sensor, instance, tracking)
    assert rollback.partition_key == "2024-01-03"
    assert rollback.run_key not in first_keys
    assert rollback.tags["mlops/champions"] == "uc_model=v1"

    # Alias deleted: nothing can be rescored, nothing is asked for.
    tracking.client.delete_registered_model_alias(MODEL, CHAMPION)
    assert isinstance(_tick(sensor, instance, tracking), str)


def test_outputs_without_the_record_are_left_alone(instance, tracking) -> None:
    @dg.asset(key=SCORES, partitions_def=DAILY)
    def scores() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 3})

    assert dg.materialize([scores], instance=instance, partition_key="2024-01-01").success
    tracking.client.set_registered_model_alias(MODEL, CHAMPION, "1")
    sensor = rescore_on_champion_change(name="rescore", target=SCORES)
    assert "current champions (none yet)" in _tick(sensor, instance, tracking)
    assert CHAMPION_VERSIONS == "champion_versions"
