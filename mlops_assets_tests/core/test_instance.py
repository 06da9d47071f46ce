"""The stack's Dagster instance: docker/dagster.yaml with the stack env vars stores runs in PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from mlops_assets.core.asset_store import store_resources
from mlops_assets_tests.fixtures.services import S3Server

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.stack
def test_materialization_is_recorded_in_postgres_through_dagster_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_database, aws_env: S3Server
) -> None:
    url = postgres_database("dagster")
    # As documented in docker/dagster.yaml: the psycopg2 driver, named explicitly.
    monkeypatch.setenv(
        "DAGSTER_POSTGRES_URL", url.replace("postgresql://", "postgresql+psycopg2://")
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "docker" / "dagster.yaml", home / "dagster.yaml")

    @dg.asset(key_prefix="demo", partitions_def=dg.DailyPartitionsDefinition("2024-01-01"))
    def readings(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"day": [context.partition_key], "mw": [100.0]})

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        resources = store_resources(f"s3://{aws_env.bucket}/instance-test", aws_env.endpoint_url)
        result = dg.materialize(
            [readings], instance=instance, partition_key="2024-01-02", resources=resources
        )
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey(["demo", "readings"]))
        assert event is not None and event.run_id == result.run_id
        assert event.asset_materialization.partition == "2024-01-02"

    # Read it back with plain SQL: the event really is in PostgreSQL.
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT run_id, partition FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key LIKE %s",
            ("%readings%",),
        ).fetchall()
        runs = conn.execute(
            "SELECT status FROM runs WHERE run_id = %s", (result.run_id,)
        ).fetchall()
    assert rows == [(result.run_id, "2024-01-02")]
    assert runs == [("SUCCESS",)]
    listed = aws_env.client().list_objects_v2(Bucket=aws_env.bucket, Prefix="instance-test/")
    assert [o["Key"] for o in listed["Contents"]] == [
        "instance-test/demo/readings/2024-01-02.parquet"
    ]
