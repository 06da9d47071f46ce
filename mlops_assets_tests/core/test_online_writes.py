"""The vectorised writers against Feast itself: the same keys, hash fields, rows and bytes.

Each comparison writes the same rows twice, once through Feast (``online_write_batch`` on
``_convert_arrow_to_proto``'s rows, or ``FeatureStore.materialize``) and once through
``core/online_writes.py``, and compares a dump of what is stored. Redis (the tests' database):
every key, each hash field's bytes, and whether the key expires. SQLite (two files): every row of
the view's table, each column's value and storage type.
"""

from __future__ import annotations

import contextlib
import sqlite3
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import redis

from mlops_assets.core import online_writes
from mlops_assets.core.feature_store import (
    FeastFeatureStore,
    clear_caches,
    redis_connection_string,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(autouse=True)
def _fresh_feast_caches() -> Iterator[None]:
    yield
    clear_caches()


def dump(client: redis.Redis) -> dict[bytes, tuple[dict[bytes, bytes], bool]]:
    """Every key: its hash (field -> bytes) and whether it has an expiry."""
    return {key: (client.hgetall(key), client.ttl(key) > 0) for key in sorted(client.scan_iter())}


def both_ways(client: redis.Redis, feast_write, our_write) -> tuple[dict, dict]:
    """Dump of Redis after ``feast_write``, then (from an empty database) after ``our_write``."""
    client.flushdb()
    feast_write()
    theirs = dump(client)
    client.flushdb()
    our_write()
    return theirs, dump(client)


# -- online_write_batch: every dtype, nulls, duplicates, stale rows ----------------------------


def rich_view() -> Any:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Bool, Float32, Float64, Int32, Int64, String

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    return FeatureView(
        name="user_stats",
        entities=[user],
        schema=[
            Field(name="user_id", dtype=Int64),
            Field(name="score", dtype=Float64),
            Field(name="ratio", dtype=Float32),
            Field(name="visits", dtype=Int64),
            Field(name="level", dtype=Int32),
            Field(name="active", dtype=Bool),
            Field(name="city", dtype=String),
        ],
        source=FileSource(path="unused.parquet", timestamp_field="event_ts"),
    )


def pair_view() -> Any:
    """Two join keys (a string and an int32): Feast sorts them by name in the key."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int32, String

    shop = Entity(name="shop", join_keys=["shop"], value_type=ValueType.STRING)
    day = Entity(name="day", join_keys=["day"], value_type=ValueType.INT32)
    return FeatureView(
        name="shop_days",
        entities=[shop, day],
        schema=[
            Field(name="shop", dtype=String),
            Field(name="day", dtype=Int32),
            Field(name="sales", dtype=Float64),
        ],
        source=FileSource(path="unused.parquet", timestamp_field="event_ts"),
    )


def repo_config(tmp_path: Path, redis_url: str, **online: Any) -> Any:
    from feast.repo_config import RepoConfig

    return RepoConfig(
        project="mlops_test",
        provider="local",
        registry={"registry_type": "file", "path": str(tmp_path / "registry.db")},
        online_store={
            "type": "redis",
            "connection_string": redis_connection_string(redis_url),
            **online,
        },
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )


USER_ROWS = pa.table(
    {
        # User 1 twice at the same time (the first row wins, as in Feast's batch), user 2 twice
        # out of order (the later time wins), 7 and -9 with nulls everywhere they can be.
        "user_id": pa.array([1, 2, 2, 1, 7, -9, 2**40], pa.int64()),
        "event_ts": pa.array(
            [at(5), at(1), at(3), at(5), at(0), at(-70 * 365 * 24 * 60), at(0.000017)],
            pa.timestamp("us", tz="UTC"),
        ),
        "score": [0.5, 1.0, -2.25, 9.0, None, float("nan"), 0.0],
        "ratio": pa.array([1.5, None, 3.0, 0.0, -0.0, 2.5, 1e-3], pa.float32()),
        "visits": pa.array([0, 5, 6, 7, None, -1, 2**62], pa.int64()),
        "level": pa.array([3, None, -4, 0, 2**31 - 1, -(2**31), 1], pa.int32()),
        "active": [True, False, None, True, False, None, True],
        "city": ["Lyon", "", "Zürich", None, "Kraków" * 30, None, "x"],
    }
)
SHOP_ROWS = pa.table(
    {
        "shop": ["a", "b", "a", "é" * 50],
        "day": pa.array([1, 1, -3, 2**31 - 1], pa.int32()),
        "event_ts": pa.array([at(1), at(2), at(3), at(4)], pa.timestamp("us", tz="UTC")),
        "sales": [1.0, None, 3.5, 4.0],
    }
)


def feast_write(config: Any, fv: Any, table: pa.Table) -> None:
    """What Feast's materialization does with one batch of rows (compute_engines/local)."""
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.utils import _convert_arrow_to_proto

    join_keys = {c.name: c.dtype.to_value_type() for c in fv.entity_columns}
    rows = _convert_arrow_to_proto(table, fv, join_keys)
    RedisOnlineStore().online_write_batch(config, fv, rows, None)


@pytest.mark.parametrize("key_ttl_seconds", [None, 3600])
def test_arrow_writes_are_feasts_bytes_for_every_key_and_field(
    tmp_path: Path, redis_url: str, key_ttl_seconds: int | None
) -> None:
    config = repo_config(tmp_path, redis_url, key_ttl_seconds=key_ttl_seconds)
    client = redis.Redis.from_url(redis_url)
    # Second write: user 1 older (kept), user 2 at the stored time (kept), 7 newer (replaced).
    update = USER_ROWS.slice(0, 5).set_column(
        1,
        "event_ts",
        pa.array([at(4), at(3), at(2), at(4.5), at(1)], pa.timestamp("us", tz="UTC")),
    )
    views = [(rich_view(), USER_ROWS), (pair_view(), SHOP_ROWS), (rich_view(), update)]

    def feast_writes() -> None:
        for fv, table in views:
            feast_write(config, fv, table)

    def our_writes() -> None:
        written = [online_writes.online_write_arrow(config, fv, t, batch_size=2) for fv, t in views]
        assert written == [5, 4, 1]

    theirs, ours = both_ways(client, feast_writes, our_writes)
    assert len(ours) == 9
    assert ours == theirs
    assert all(expires == bool(key_ttl_seconds) for _, expires in ours.values())


# -- materialize through the resource: Feast's window, registry and online reads ---------------

DRIVERS = """
from datetime import timedelta

from feast import Entity, FeatureView, Field, ValueType
from feast.types import Float64, Int64

from mlops_assets.core.feature_store import offline_file_source

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(days=2),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float64),
        Field(name="trips", dtype=Int64),
    ],
    source=offline_file_source("drivers", "driver_stats", timestamp_field="event_ts"),
)
"""

# Driver 1: two rows, the latest written first. Driver 2: a row exactly at the window's end
# (inclusive). Driver 3: only after the window; driver 4 only before it. (No ties on time here:
# Feast breaks them arbitrarily.)
DRIVER_ROWS = [
    (1, at(300), 0.5, 5),
    (1, at(60), 0.1, 1),
    (2, at(600), None, 2),
    (3, at(2000), 0.7, 7),
    (4, at(-1), 0.4, 4),
]


def drivers_store(tmp_path: Path, redis_url: str = "") -> FeastFeatureStore:
    """The drivers repo on the Redis at ``redis_url``, or (none) on a SQLite online store."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "drivers.py").write_text(textwrap.dedent(DRIVERS))
    data = tmp_path / "data"
    folder = data / "drivers" / "driver_stats"
    folder.mkdir(parents=True)
    frame = pl.DataFrame(
        DRIVER_ROWS,
        schema={
            "driver_id": pl.Int64,
            "event_ts": pl.Datetime("us", "UTC"),
            "conv_rate": pl.Float64,
            "trips": pl.Int64,
        },
        orient="row",
    )
    frame.write_parquet(folder / "part-1.parquet")
    return FeastFeatureStore(
        repo_path=str(repo),
        registry=str(tmp_path / "registry.db"),
        online_store="redis" if redis_url else "sqlite",
        redis_url=redis_url,
        online_store_path=str(tmp_path / "online.db"),
        data_root=str(data),
    )


def test_materialize_writes_what_feast_materialize_writes(tmp_path: Path, redis_url: str) -> None:
    store = drivers_store(tmp_path, redis_url)
    store.apply()
    feast = store.get_store()
    client = redis.Redis.from_url(redis_url)
    window = (at(0), at(600))

    theirs, ours = both_ways(
        client,
        lambda: feast.materialize(*window, feature_views=["driver_stats"]),
        lambda: store.materialize(*window),
    )
    assert ours == theirs
    assert len(ours) == 2
    assert store.get_online_features(
        ["driver_stats:conv_rate", "driver_stats:trips"],
        [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}],
    ) == {"driver_id": [1, 2, 3], "conv_rate": [0.5, None, None], "trips": [5, 2, None]}

    # Both recorded their interval as Feast does: the incremental run starts at its end.
    feast.refresh_registry()
    intervals = feast.get_feature_view("driver_stats").materialization_intervals
    assert intervals == [window, window]
    store.materialize_incremental(at(2000))
    feast.refresh_registry()
    assert feast.get_feature_view("driver_stats").materialization_intervals[-1] == (
        at(600),
        at(2000),
    )
    assert store.get_online_features(["driver_stats:trips"], [{"driver_id": 3}])["trips"] == [7]


def test_materialize_keeps_newer_online_values_and_reads_back(
    tmp_path: Path, redis_url: str
) -> None:
    store = drivers_store(tmp_path, redis_url)
    store.apply()
    feast = store.get_store()
    client = redis.Redis.from_url(redis_url)

    def later_then_earlier(materialize) -> None:
        materialize(at(200), at(2000))  # driver 1 at 05:00, 2 and 3
        materialize(at(0), at(100))  # driver 1 at 01:00: older than the stored value, skipped

    theirs, ours = both_ways(
        client,
        lambda: later_then_earlier(
            lambda s, e: feast.materialize(s, e, feature_views=["driver_stats"])
        ),
        lambda: later_then_earlier(store.materialize),
    )
    assert ours == theirs
    assert store.get_online_features(["driver_stats:trips"], [{"driver_id": 1}])["trips"] == [5]


def test_views_the_writer_cannot_handle_are_refused_for_feast_to_write(tmp_path: Path) -> None:
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Array, Int64

    config = repo_config(tmp_path, "redis://127.0.0.1:6379/13")
    fv = FeatureView(
        name="lists",
        entities=[Entity(name="e", join_keys=["e"])],
        schema=[Field(name="e", dtype=Int64), Field(name="xs", dtype=Array(Int64))],
        source=FileSource(path="unused.parquet", timestamp_field="event_ts"),
    )
    with pytest.raises(online_writes.UnsupportedViewError, match="xs"):
        online_writes.RedisViewLayout.from_feast(config, fv)


def test_rows_tied_on_time_resolve_by_created_time_then_source_order(
    tmp_path: Path, redis_url: str
) -> None:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.types import Float64, Int64

    fv = FeatureView(
        name="scores",
        entities=[Entity(name="k", join_keys=["k"], value_type=ValueType.INT64)],
        schema=[Field(name="k", dtype=Int64), Field(name="x", dtype=Float64)],
        source=FileSource(path="unused", timestamp_field="ts", created_timestamp_column="at"),
    )
    frame = pl.LazyFrame(
        {
            "k": [1, 1, 1, 1, 2, 2],
            "ts": [at(5), at(5), at(5), at(4), at(1), at(1)],
            "at": [at(2), None, at(2), at(9), None, None],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "at": pl.Datetime("us", "UTC")},
    )
    config = repo_config(tmp_path, redis_url)
    result = online_writes.materialize_view(config, fv, at(0), at(10), frame=frame)
    assert result == online_writes.ViewMaterialization("scores", 6, 2, 2)

    client = redis.Redis.from_url(redis_url)
    field = _mmh3("scores:x")

    def stored(k: int) -> bytes:
        key = EntityKey(join_keys=["k"], entity_values=[Value(int64_val=k)])
        return client.hget(_redis_key("mlops_test", key, 3), field)

    # Key 1: latest time, then latest created time (a null loses), then the last such row.
    assert stored(1) == Value(double_val=3.0).SerializeToString()
    assert stored(2) == Value(double_val=6.0).SerializeToString()


@pytest.mark.parametrize("skip_dedup", [False, True])
def test_a_redis_error_is_raised_and_the_connection_dropped(
    tmp_path: Path, redis_url: str, skip_dedup: bool
) -> None:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    config = repo_config(tmp_path, redis_url, skip_dedup=skip_dedup)
    client = redis.Redis.from_url(redis_url)
    # User 2's key holds a string: HMGET (the staleness check) or HSET fails with WRONGTYPE.
    key = EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=2)])
    client.set(_redis_key("mlops_test", key, 3), b"not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        online_writes.online_write_arrow(config, rich_view(), USER_ROWS)
    # The next write starts on a clean connection.
    client.delete(_redis_key("mlops_test", key, 3))
    assert online_writes.online_write_arrow(config, rich_view(), USER_ROWS) == 5


# -- SQLite: Feast's rows, row for row ---------------------------------------------------------


def sqlite_config(tmp_path: Path, name: str, **online: Any) -> Any:
    from feast.repo_config import RepoConfig

    return RepoConfig(
        project="mlops_test",
        provider="local",
        registry={"registry_type": "file", "path": str(tmp_path / "registry.db")},
        online_store={"type": "sqlite", "path": str(tmp_path / name), **online},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )


def sqlite_dump(path: Path, table: str, order: str = "rowid") -> list[tuple]:
    """Every row of ``table``: rowid, each column, and each column's storage class."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        typed = ", ".join(f"{c}, typeof({c})" for c in columns)
        return conn.execute(f'SELECT rowid, {typed} FROM "{table}" ORDER BY {order}').fetchall()


@pytest.fixture
def local_time_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """The process's local time zone for one test: Feast's SQLite times depend on it."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("local_time_zone", ["UTC", "America/New_York"], indirect=True)
def test_sqlite_writes_are_feasts_rows_for_every_key_and_feature(
    tmp_path: Path, local_time_zone: str
) -> None:
    from feast import FileSource
    from feast.infra.online_stores.sqlite import SqliteOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.utils import _convert_arrow_to_proto

    # Shops carry a created time, one before 1970 with a fraction of a second (int() rounds it
    # toward zero) and one in the hour New York skips to daylight-saving time.
    shops = pair_view()
    shops.batch_source = FileSource(
        path="unused.parquet", timestamp_field="event_ts", created_timestamp_column="created"
    )
    shop_rows = SHOP_ROWS.append_column(
        "created",
        pa.array(
            [
                datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
                datetime(2024, 3, 10, 2, 30, 0, 1, tzinfo=UTC),
                at(3),
                at(-1),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
    )
    # Second write: older rows for users 1, 2 and 7: SQLite keeps no time, they overwrite.
    update = USER_ROWS.slice(0, 5).set_column(
        1,
        "event_ts",
        pa.array([at(4), at(3), at(2), at(4.5), at(1)], pa.timestamp("us", tz="UTC")),
    )
    views = [(rich_view(), USER_ROWS), (shops, shop_rows), (rich_view(), update)]
    dumps = {}
    for name in ("feast.db", "ours.db"):
        config = sqlite_config(tmp_path, name)
        store = SqliteOnlineStore()
        store.update(config, [], [fv for fv, _ in views[:2]], [], [], partial=False)
        for fv, table in views:
            if name == "feast.db":
                join_keys = {c.name: c.dtype.to_value_type() for c in fv.entity_columns}
                rows = _convert_arrow_to_proto(table, fv, join_keys)
                store.online_write_batch(config, fv, rows, None)
            else:
                written = online_writes.online_write_arrow(
                    config, fv, table, batch_size=2, online_store=store
                )
                assert written == table.num_rows
        dumps[name] = {
            t: sqlite_dump(tmp_path / name, t)
            for t in ("mlops_test_user_stats", "mlops_test_shop_days")
        }
        if name == "ours.db":
            key = EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=2)])
            [(ts, values)] = store.online_read(config, rich_view(), [key])
            # The last of user 2's rows, its time in whole seconds (Feast reads local time back).
            assert ts == at(2)
            assert values["visits"] == Value(int64_val=6)
            assert values["city"] == Value(string_val="Zürich")
        store._conn.close()
    assert dumps["ours.db"] == dumps["feast.db"]
    assert len(dumps["ours.db"]["mlops_test_user_stats"]) == 5 * 6
    assert len(dumps["ours.db"]["mlops_test_shop_days"]) == 4


def test_sqlite_materialize_writes_what_feast_materialize_writes(tmp_path: Path) -> None:
    store = drivers_store(tmp_path)
    store.apply()
    feast = store.get_store()
    online = tmp_path / "online.db"

    def later_then_earlier(materialize) -> list[tuple]:
        materialize(at(200), at(2000))  # driver 1 at 05:00, 2 and 3
        # Driver 1 at 01:00: older than the stored value, written all the same (SQLite, as Feast).
        materialize(at(0), at(100))
        dump = sqlite_dump(online, "mlops_assets_driver_stats", "entity_key, feature_name")
        with contextlib.closing(sqlite3.connect(online)) as conn, conn:
            conn.execute('DELETE FROM "mlops_assets_driver_stats"')
        return [row[1:] for row in dump]  # the rowids follow each writer's order of keys

    theirs = later_then_earlier(
        lambda s, e: feast.materialize(s, e, feature_views=["driver_stats"])
    )
    ours = later_then_earlier(store.materialize)
    assert ours == theirs
    assert len(ours) == 3 * 2

    store.materialize(at(0), at(600))
    assert store.get_online_features(
        ["driver_stats:conv_rate", "driver_stats:trips"],
        [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}],
    ) == {"driver_id": [1, 2, 3], "conv_rate": [0.5, None, None], "trips": [5, 2, None]}


def test_sqlite_views_the_writer_cannot_reproduce_are_left_to_feast(tmp_path: Path) -> None:
    for online in ({"vector_enabled": True}, {"enable_openai_compatible_store": True}):
        config = sqlite_config(tmp_path, "online.db", **online)
        with pytest.raises(online_writes.UnsupportedViewError, match="vector_enabled"):
            online_writes.SqliteViewLayout.from_feast(config, rich_view())
    layout = online_writes.SqliteViewLayout.from_feast(
        sqlite_config(tmp_path, "online.db"), pair_view()
    )
    assert layout.table == "mlops_test_shop_days"
    assert layout.join_keys == (("day", "Int32"), ("shop", "String"))
