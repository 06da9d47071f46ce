"""The parquet IO manager on local disk and on a real S3 endpoint (moto's server on loopback)."""

import hashlib
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
import pytest

from mlops_assets.core.asset_store import AssetStore, store_resources
from mlops_assets_tests.fixtures.services import S3Server

DAYS = dg.DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-03-04")
REGIONS = dg.StaticPartitionsDefinition(["east", "west"])
DAY_X_REGION = dg.MultiPartitionsDefinition({"day": DAYS, "region": REGIONS})


class Storage:
    """One backend under test: where the IO manager writes, and how to read raw bytes back."""

    def __init__(self, root: str, read, exists) -> None:
        self.root = root
        self.read_bytes = read
        self.exists = exists

    def resources(self) -> dict[str, object]:
        """The asset store and the IO manager over it, as the code location binds them."""
        return store_resources(self.root, getattr(self, "endpoint", ""))

    def store(self) -> AssetStore:
        return AssetStore(root=self.root, s3_endpoint_url=getattr(self, "endpoint", ""))


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path: Path) -> Storage:
    if request.param == "local":
        root = tmp_path / "data"
        return Storage(
            str(root), lambda rel: (root / rel).read_bytes(), lambda rel: (root / rel).exists()
        )
    s3: S3Server = request.getfixturevalue("aws_env")
    client = s3.client()
    prefix = f"io-{tmp_path.name}"

    def read(rel: str) -> bytes:
        return client.get_object(Bucket=s3.bucket, Key=f"{prefix}/{rel}")["Body"].read()

    def exists(rel: str) -> bool:
        listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=f"{prefix}/{rel}")
        return any(o["Key"] == f"{prefix}/{rel}" for o in listed.get("Contents", []))

    storage = Storage(f"s3://{s3.bucket}/{prefix}", read, exists)
    storage.endpoint = s3.endpoint_url
    return storage


def _materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return event.step_materialization_data.materialization


def test_unpartitioned_round_trip_records_metadata_and_content_hash(backend: Storage) -> None:
    frame = pd.DataFrame(
        {
            "tx_id": [3, 1, 2],
            "amount": [9.5, 1.25, None],
            "event_ts": pd.to_datetime(
                ["2024-03-01 10:00", "2024-03-01 11:00", "2024-03-01 12:00"], utc=True
            ),
        }
    )
    seen: dict[str, pd.DataFrame] = {}

    @dg.asset(key_prefix="demo")
    def transactions() -> pd.DataFrame:
        return frame

    @dg.asset(key_prefix="demo", ins={"transactions": dg.AssetIn(key=["demo", "transactions"])})
    def totals(transactions: pd.DataFrame) -> pd.DataFrame:
        seen["tx"] = transactions
        return pd.DataFrame({"total": [transactions["amount"].sum()]})

    result = dg.materialize([transactions, totals], resources=backend.resources())
    assert result.success

    pd.testing.assert_frame_equal(seen["tx"], frame)
    raw = backend.read_bytes("demo/transactions.parquet")
    mat = _materialization(result, dg.AssetKey(["demo", "transactions"]))
    assert mat.metadata["dagster/row_count"].value == 3
    schema = mat.metadata["dagster/column_schema"].schema
    assert [(c.name, c.type) for c in schema.columns] == [
        ("tx_id", "int64"),
        ("amount", "double"),
        ("event_ts", "timestamp[ns, tz=UTC]"),
    ]
    assert "| tx_id | amount | event_ts |" in mat.metadata["preview"].value
    digest = hashlib.sha256(raw).hexdigest()
    assert mat.metadata["data_version"].value == digest
    assert mat.tags["dagster/data_version"] == digest


def test_same_inputs_give_same_bytes_and_data_version(backend: Storage) -> None:
    @dg.asset(partitions_def=DAYS)
    def daily(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = context.partition_key
        return pl.DataFrame({"day": [day] * 4, "value": [1.0, 2.0, 3.0, 4.0]})

    runs = [
        dg.materialize([daily], partition_key="2024-03-02", resources=backend.resources())
        for _ in range(2)
    ]
    versions = [
        _materialization(r, dg.AssetKey("daily")).tags["dagster/data_version"] for r in runs
    ]
    assert versions[0] == versions[1]
    assert hashlib.sha256(backend.read_bytes("daily/2024-03-02.parquet")).hexdigest() == versions[0]


def test_daily_partitions_load_as_one_frame_or_as_dict(backend: Storage) -> None:
    loaded: dict[str, object] = {}

    @dg.asset(partitions_def=DAYS)
    def readings(context: dg.AssetExecutionContext) -> pd.DataFrame:
        day = context.partition_key
        return pd.DataFrame({"day": [day, day], "reading": [int(day[-2:]), int(day[-2:]) * 10]})

    @dg.asset(ins={"readings": dg.AssetIn()})
    def all_readings(readings: pl.DataFrame) -> pl.DataFrame:
        loaded["frame"] = readings
        return readings

    @dg.asset(ins={"readings": dg.AssetIn()})
    def readings_by_day(readings: dict[str, pd.DataFrame]) -> pd.DataFrame:
        loaded["dict"] = readings
        return pd.concat(readings.values())

    resources = backend.resources()
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        assert dg.materialize([readings], partition_key=day, resources=resources).success
    assert backend.exists("readings/2024-03-02.parquet")

    result = dg.materialize(
        [readings.to_source_asset(), all_readings, readings_by_day], resources=resources
    )
    assert result.success
    frame = loaded["frame"]
    assert isinstance(frame, pl.DataFrame)
    assert frame["reading"].to_list() == [1, 10, 2, 20, 3, 30]
    by_day = loaded["dict"]
    assert sorted(by_day) == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert by_day["2024-03-02"]["reading"].tolist() == [2, 20]


def test_multi_partitioned_round_trip(backend: Storage) -> None:
    loaded: dict[str, pd.DataFrame] = {}

    @dg.asset(partitions_def=DAY_X_REGION)
    def load(context: dg.AssetExecutionContext) -> pd.DataFrame:
        key = context.partition_key.keys_by_dimension
        return pd.DataFrame({"region": [key["region"]], "day": [key["day"]], "mw": [42.0]})

    @dg.asset(partitions_def=DAY_X_REGION)
    def load_doubled(load: pd.DataFrame) -> pd.DataFrame:
        loaded["in"] = load
        return load.assign(mw=load["mw"] * 2)

    key = dg.MultiPartitionKey({"day": "2024-03-02", "region": "west"})
    result = dg.materialize([load, load_doubled], partition_key=key, resources=backend.resources())
    assert result.success
    assert loaded["in"].to_dict("records") == [{"region": "west", "day": "2024-03-02", "mw": 42.0}]
    # Dimensions in name order: day, then region.
    assert backend.exists("load/2024-03-02/west.parquet")
    assert backend.exists("load_doubled/2024-03-02/west.parquet")


def test_failed_write_keeps_previous_partition(backend: Storage, monkeypatch) -> None:
    @dg.asset(partitions_def=DAYS)
    def daily(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"v": [1, 2, 3]})

    resources = backend.resources()
    assert dg.materialize([daily], partition_key="2024-03-01", resources=resources).success
    before = backend.read_bytes("daily/2024-03-01.parquet")

    import pyarrow.parquet as pq

    real_write = pq.write_table

    def write_half_then_die(table, where, **kwargs):
        real_write(table.slice(0, 1), where, **kwargs)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq, "write_table", write_half_then_die)
    result = dg.materialize(
        [daily], partition_key="2024-03-01", resources=resources, raise_on_error=False
    )
    assert not result.success
    assert backend.read_bytes("daily/2024-03-01.parquet") == before


def test_partition_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    parts = dg.StaticPartitionsDefinition(["../../outside"])

    @dg.asset(partitions_def=parts)
    def sneaky() -> pd.DataFrame:
        return pd.DataFrame({"v": [1]})

    root = tmp_path / "root"
    result = dg.materialize(
        [sneaky],
        partition_key="../../outside",
        resources=store_resources(str(root)),
    )
    assert result.success
    written = [p for p in tmp_path.rglob("*.parquet")]
    assert written and all(root in p.parents for p in written)


def test_returning_an_unsupported_object_fails_with_a_clear_message(tmp_path: Path) -> None:
    @dg.asset
    def not_a_frame() -> list:
        return [1, 2, 3]

    result = dg.materialize(
        [not_a_frame],
        resources=store_resources(str(tmp_path)),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert "return a pandas or Polars DataFrame" in error.cause.message
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.stack
def test_local_and_s3_profiles_give_the_same_data_version(tmp_path: Path, aws_env) -> None:
    @dg.asset(partitions_def=DAYS)
    def daily(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"day": [context.partition_key] * 3, "v": [0.1, 0.2, 0.3]})

    profiles = {
        "local": store_resources(str(tmp_path / "local")),
        "s3": store_resources(f"s3://{aws_env.bucket}/same-{tmp_path.name}", aws_env.endpoint_url),
    }
    versions = {
        name: _materialization(
            dg.materialize([daily], partition_key="2024-03-03", resources=resources),
            dg.AssetKey("daily"),
        ).tags["dagster/data_version"]
        for name, resources in profiles.items()
    }
    assert versions["local"] == versions["s3"]


def test_single_run_range_writes_each_partition_where_inputs_read_it(backend: Storage) -> None:
    loaded: dict[str, pd.DataFrame] = {}

    @dg.asset(
        partitions_def=DAYS,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def ranged(context: dg.AssetExecutionContext, asset_store: AssetStore) -> dg.MaterializeResult:
        frames = {
            day: pd.DataFrame({"day": [day], "v": [i]})
            for i, day in enumerate(context.partition_keys)
        }
        return asset_store.write_partitions(context.asset_key, frames)

    @dg.asset(partitions_def=DAYS, deps=[ranged], ins={"ranged": dg.AssetIn()})
    def downstream(ranged: pd.DataFrame) -> pd.DataFrame:
        loaded["day"] = ranged
        return ranged

    resources = backend.resources()
    result = dg.materialize(
        [ranged],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": "2024-03-01",
            "dagster/asset_partition_range_end": "2024-03-03",
        },
    )
    assert result.success
    mats = result.get_asset_materialization_events()
    assert sorted(m.partition for m in mats) == ["2024-03-01", "2024-03-02", "2024-03-03"]
    metadata = mats[0].step_materialization_data.materialization.metadata
    assert metadata["dagster/row_count"].value == 3
    assert "| 2024-03-02 | 1 |" in metadata["partitions"].value

    assert dg.materialize(
        [ranged.to_source_asset(), downstream], partition_key="2024-03-02", resources=resources
    ).success
    assert loaded["day"].to_dict("records") == [{"day": "2024-03-02", "v": 1}]

    store = backend.store()
    table, versions = store.read_partitions(dg.AssetKey("ranged"), ["2024-03-01", "2024-03-03"])
    assert table.column("v").to_pylist() == [0, 2]
    raw = backend.read_bytes("ranged/2024-03-03.parquet")
    assert versions["2024-03-03"] == hashlib.sha256(raw).hexdigest()
    with pytest.raises(FileNotFoundError, match="2024-03-04"):
        store.read_partitions(dg.AssetKey("ranged"), ["2024-03-03", "2024-03-04"])


def test_frame_input_loads_the_requested_frame_type_without_an_annotation(tmp_path: Path) -> None:
    from mlops_assets.core.io_managers import frame_input

    seen: dict[str, object] = {}

    @dg.asset
    def source() -> pd.DataFrame:
        return pd.DataFrame({"v": [1, 2]})

    @dg.asset(ins={"source": frame_input(dg.AssetKey("source"))})
    def as_polars(source) -> None:
        seen["polars"] = source

    @dg.asset(ins={"source": frame_input(dg.AssetKey("source"), load_as="arrow")})
    def as_arrow(source) -> None:
        seen["arrow"] = source

    resources = store_resources(str(tmp_path))
    assert dg.materialize([source, as_polars, as_arrow], resources=resources).success
    assert isinstance(seen["polars"], pl.DataFrame) and seen["polars"]["v"].to_list() == [1, 2]
    assert type(seen["arrow"]).__name__ == "Table" and seen["arrow"].num_rows == 2
