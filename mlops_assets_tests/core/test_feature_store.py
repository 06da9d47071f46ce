"""The Feast resource against real stores: SQLite + file registry locally; Redis + a PostgreSQL SQL
registry + parquet on (moto) S3 in the stack flavour.

Each test writes a tiny feature repo of its own (a ``drivers`` use case: one entity, one feature
view with a 6 h TTL over a folder of daily parquet files) and points the resource at it.
"""

from __future__ import annotations

import io
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_assets.core import feature_store as feature_store_module
from mlops_assets.core.feature_store import (
    FeastFeatureStore,
    FeatureStoreUnavailableError,
    FeatureViewMetadata,
    build_repo_config,
    clear_caches,
    offline_source_path,
    redis_connection_string,
)
from mlops_assets.core.profiles import load_settings
from mlops_assets_tests.fixtures.services import S3Server, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

DRIVERS_MODULE = """
from datetime import timedelta

from feast import Entity, FeatureView, Field, ValueType
from feast.types import Float64, Int64

from mlops_assets.core.feature_store import offline_file_source

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(hours=6),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float64),
        Field(name="trips", dtype=Int64),
    ],
    source=offline_file_source("drivers", "driver_stats", timestamp_field="event_ts"),
    tags={"use_case": "drivers"},
)
"""

RIDERS_MODULE = """
from datetime import timedelta

from feast import Entity, FeatureView, Field, ValueType
from feast.types import Int64

from mlops_assets.core.feature_store import offline_file_source

rider = Entity(name="rider", join_keys=["rider_id"], value_type=ValueType.INT64)

rider_stats = FeatureView(
    name="rider_stats",
    entities=[rider],
    ttl=timedelta(days=1),
    schema=[Field(name="rider_id", dtype=Int64), Field(name="rides", dtype=Int64)],
    source=offline_file_source("riders", "rider_stats"),
)
"""

SCHEMA = pa.schema(
    [
        ("driver_id", pa.int64()),
        ("event_ts", pa.timestamp("us", tz="UTC")),
        ("conv_rate", pa.float64()),
        ("trips", pa.int64()),
    ]
)


def at(day: int, hour: int) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


# Two daily partitions. Driver 1 has three rows on day 1, the latest (05:00) written first, so that
# "latest" must come from the timestamps and not from the file order; driver 3 only has a day-2 row.
PARTITIONS: dict[str, list[tuple[int, datetime, float, int]]] = {
    "2024-01-01": [
        (1, at(1, 5), 0.5, 5),
        (1, at(1, 1), 0.1, 1),
        (2, at(1, 2), 0.2, 2),
        (1, at(1, 3), 0.3, 3),
    ],
    "2024-01-02": [
        (1, at(2, 3), 0.9, 9),
        (3, at(2, 4), 0.7, 7),
    ],
}
FEATURES = ["driver_stats:conv_rate", "driver_stats:trips"]
ENTITY_ROWS = [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}, {"driver_id": 4}]


def parquet_bytes(rows: list[tuple[int, datetime, float, int]]) -> bytes:
    table = pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_repo(folder: Path, modules: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


@dataclass
class Flavour:
    """A resource for one profile plus a way to put parquet files where its sources point."""

    name: str
    resource: FeastFeatureStore
    write: Callable[[str, bytes], None]  # (relative key under data_root, bytes)

    def write_partitions(self) -> None:
        for day, rows in PARTITIONS.items():
            self.write(f"drivers/driver_stats/{day}.parquet", parquet_bytes(rows))


@pytest.fixture(autouse=True)
def _fresh_feast_caches() -> Iterator[None]:
    yield
    clear_caches()


@pytest.fixture
def feature_repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "feature_repo", {"drivers": DRIVERS_MODULE})


def local_flavour(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Flavour:
    monkeypatch.setenv("MLOPS_FEAST_REPO", str(repo))
    settings = load_settings()
    assert settings.profile == "local" and settings.feast_online_store == "sqlite"

    def write(rel: str, data: bytes) -> None:
        path = Path(settings.data_root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return Flavour("local", FeastFeatureStore.from_settings(settings), write)


def stack_flavour(
    repo: Path,
    home: Path,
    s3: S3Server,
    registry_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Flavour:
    prefix = f"feast-{uuid.uuid4().hex[:8]}"  # the bucket is shared by the whole session
    env = {
        "MLOPS_PROFILE": "stack",
        "MLOPS_HOME": str(home),
        "MLOPS_FEAST_REPO": str(repo),
        "MLOPS_S3_BUCKET": s3.bucket,
        "MLOPS_DATA_ROOT": f"s3://{s3.bucket}/{prefix}",
        "MLOPS_FEAST_REGISTRY": registry_url.replace("postgresql://", "postgresql+psycopg://", 1),
        "MLOPS_REDIS_URL": redis_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.feast_online_store == "redis" and settings.data_on_s3
    assert settings.feast_registry.startswith("postgresql+psycopg://")

    def write(rel: str, data: bytes) -> None:
        s3.client().put_object(Bucket=s3.bucket, Key=f"{prefix}/{rel}", Body=data)

    return Flavour("stack", FeastFeatureStore.from_settings(settings), write)


@pytest.fixture(params=["local", pytest.param("stack", marks=pytest.mark.stack)])
def flavour(request: pytest.FixtureRequest, feature_repo: Path, tmp_path: Path) -> Flavour:
    monkeypatch = request.getfixturevalue("monkeypatch")
    if request.param == "local":
        request.getfixturevalue("local_home")
        return local_flavour(feature_repo, monkeypatch)
    return stack_flavour(
        feature_repo,
        tmp_path,
        request.getfixturevalue("aws_env"),
        request.getfixturevalue("postgres_database")("feast"),
        request.getfixturevalue("redis_url"),
        monkeypatch,
    )


def online(resource: FeastFeatureStore) -> dict[str, list]:
    return resource.get_online_features(FEATURES, ENTITY_ROWS)


def test_materialize_serves_the_latest_value_of_the_window_per_driver(flavour: Flavour) -> None:
    flavour.write_partitions()
    store = flavour.resource
    assert store.apply() == ["driver", "driver_stats"]

    assert store.materialize(at(1, 0), at(1, 23)) == ["driver_stats"]
    assert online(store) == {
        "driver_id": [1, 2, 3, 4],
        "conv_rate": [0.5, 0.2, None, None],  # driver 3's only row is on day 2; 4 has none
        "trips": [5, 2, None, None],
    }

    # Day 2: newer rows replace the online values; a driver with no row in it keeps its value.
    store.materialize(at(2, 0), at(2, 23), feature_views=["driver_stats"])
    assert online(store) == {
        "driver_id": [1, 2, 3, 4],
        "conv_rate": [0.9, 0.2, 0.7, None],
        "trips": [9, 2, 7, None],
    }


def test_apply_twice_keeps_definitions_online_values_and_history(flavour: Flavour) -> None:
    flavour.write_partitions()
    store = flavour.resource
    store.apply()
    store.materialize(at(1, 0), at(1, 23))
    feast_store = store.get_store()
    before = feast_store.get_feature_view("driver_stats")

    store.apply()

    feast_store.refresh_registry()
    assert [fv.name for fv in feast_store.list_feature_views()] == ["driver_stats"]
    assert [e.name for e in feast_store.list_entities()] == ["driver"]
    after = feast_store.get_feature_view("driver_stats")
    assert after.materialization_intervals == before.materialization_intervals
    assert after.current_version_number == before.current_version_number
    assert online(store)["conv_rate"] == [0.5, 0.2, None, None]


def test_feature_view_metadata_follows_the_profile(flavour: Flavour) -> None:
    data_root = flavour.resource.data_root
    meta = flavour.resource.feature_view_metadata("driver_stats")
    assert meta == FeatureViewMetadata(
        name="driver_stats",
        use_case="drivers",
        entities=("driver",),
        join_keys=("driver_id",),
        timestamp_field="event_ts",
        created_timestamp_column=None,
        source_path=f"{data_root}/drivers/driver_stats/",
        s3_endpoint_url=flavour.resource.s3_endpoint_url or None,
        ttl=timedelta(hours=6),
        features=(("conv_rate", "Float64"), ("trips", "Int64")),
        tags=(("use_case", "drivers"),),
    )
    assert meta.source_path.startswith("s3://" if flavour.name == "stack" else "/")
    # The registry reports the same once applied (the PIT engine may read either).
    flavour.resource.apply()
    assert flavour.resource.feature_view_metadata("driver_stats", from_registry=True) == meta


def test_feature_view_metadata_needs_no_reachable_store(
    feature_repo: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_FEAST_REPO", str(feature_repo))
    monkeypatch.setenv("MLOPS_FEAST_ONLINE_STORE", "redis")
    monkeypatch.setenv("MLOPS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("MLOPS_FEAST_REGISTRY", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    resource = FeastFeatureStore.from_settings(load_settings())

    meta = resource.feature_view_metadata("driver_stats")

    assert meta.join_keys == ("driver_id",)
    assert meta.source_path == f"{local_home}/.data/drivers/driver_stats/"


def test_a_name_defined_in_two_use_cases_is_refused(
    tmp_path: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clash = DRIVERS_MODULE.replace('name="driver_stats"', 'name="rider_stats"')
    repo = write_repo(tmp_path / "repo3", {"drivers": clash, "riders": RIDERS_MODULE})
    resource = local_flavour(repo, monkeypatch).resource

    with pytest.raises(
        ValueError, match=r"'rider_stats' is defined twice .*drivers.py and riders.py"
    ):
        resource.repo_contents()


def test_apply_of_one_use_case_registers_only_its_module(
    tmp_path: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_repo(tmp_path / "repo2", {"drivers": DRIVERS_MODULE, "riders": RIDERS_MODULE})
    resource = local_flavour(repo, monkeypatch).resource
    assert resource.repo_contents().use_cases == ["drivers", "riders"]

    assert resource.apply(use_case="riders") == ["rider", "rider_stats"]

    assert [fv.name for fv in resource.get_store().list_feature_views()] == ["rider_stats"]
    assert resource.feature_view_names("drivers") == ["driver_stats"]
    with pytest.raises(KeyError, match="no use case 'fraud'"):
        resource.apply(use_case="fraud")


def test_unreachable_redis_names_the_setting_to_fix(
    feature_repo: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_FEAST_REPO", str(feature_repo))
    monkeypatch.setenv("MLOPS_FEAST_ONLINE_STORE", "redis")
    monkeypatch.setenv("MLOPS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    settings = load_settings()
    Path(settings.data_root, "drivers", "driver_stats").mkdir(parents=True)
    Path(settings.data_root, "drivers/driver_stats/2024-01-01.parquet").write_bytes(
        parquet_bytes(PARTITIONS["2024-01-01"])
    )
    resource = FeastFeatureStore.from_settings(settings)
    resource.apply()  # the file registry is fine; Redis is first needed to write values

    with pytest.raises(FeatureStoreUnavailableError, match="MLOPS_REDIS_URL"):
        resource.materialize(at(1, 0), at(1, 23))
    with pytest.raises(FeatureStoreUnavailableError, match="MLOPS_REDIS_URL"):
        online(resource)


def test_unreachable_registry_database_names_the_setting_to_fix(
    feature_repo: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_FEAST_REPO", str(feature_repo))
    monkeypatch.setenv(
        "MLOPS_FEAST_REGISTRY", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/feast"
    )
    resource = FeastFeatureStore.from_settings(load_settings())

    with pytest.raises(FeatureStoreUnavailableError, match="MLOPS_FEAST_REGISTRY"):
        resource.apply()


def test_committed_feature_store_yaml_is_the_local_profile() -> None:
    from feast.repo_config import load_repo_config

    repo = REPO_ROOT / "feature_repo"
    committed = load_repo_config(repo, repo / "feature_store.yaml")
    settings = load_settings("local", environ={"MLOPS_HOME": str(REPO_ROOT)})
    built = build_repo_config(FeastFeatureStore.from_settings(settings).store_config)

    def resolved(path: str) -> Path:
        return (repo / path).resolve()

    assert committed.project == built.project
    assert committed.provider == built.provider
    assert resolved(committed.registry.path) == resolved(built.registry.path)
    assert committed.registry.registry_type == built.registry.registry_type == "file"
    assert committed.online_store.type == built.online_store.type == "sqlite"
    assert resolved(committed.online_store.path) == resolved(built.online_store.path)
    assert committed.offline_store.type == built.offline_store.type
    assert committed.entity_key_serialization_version == built.entity_key_serialization_version
    assert committed.materialization_config == built.materialization_config


@pytest.mark.parametrize("profile", ["local", "stack"])
def test_committed_feature_repo_loads_with_sources_under_the_data_root(profile: str) -> None:
    # No service is touched: definitions are code. Guards every use case's module as it is added.
    settings = load_settings(
        profile,  # type: ignore[arg-type]
        environ={"MLOPS_HOME": str(REPO_ROOT), "MLOPS_S3_BUCKET": "features"},
    )
    resource = FeastFeatureStore.from_settings(settings)

    for name in resource.feature_view_names():
        meta = resource.feature_view_metadata(name)
        assert meta.source_path.startswith(f"{settings.data_root}/{meta.use_case}/"), meta
        assert meta.join_keys and meta.features, meta


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/13", "127.0.0.1:6379,db=13,socket_connect_timeout=5"),
        ("redis://cache", "cache:6379,db=0,socket_connect_timeout=5"),
        (
            "rediss://user:s%40cret@redis.internal:6380/2",
            'redis.internal:6380,db=2,username="user",password="s@cret",ssl=true,'
            "socket_connect_timeout=5",
        ),
        ("redis://h:1/0?socket_timeout=1", "h:1,db=0,socket_connect_timeout=5,socket_timeout=1"),
    ],
)
def test_redis_url_becomes_a_feast_connection_string(url: str, expected: str) -> None:
    assert redis_connection_string(url) == expected


def test_offline_source_path_follows_the_environment_outside_the_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "stack")
    monkeypatch.setenv("MLOPS_DATA_ROOT", "s3://features-bucket/prod")
    assert offline_source_path("fraud", "card_features") == (
        "s3://features-bucket/prod/fraud/card_features/"
    )


def test_apply_keeps_what_another_process_registered_meanwhile(
    tmp_path: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast import FeatureStore

    repo = write_repo(tmp_path / "repo2", {"drivers": DRIVERS_MODULE, "riders": RIDERS_MODULE})
    resource = local_flavour(repo, monkeypatch).resource
    resource.apply(use_case="riders")  # our store now holds the registry in memory
    # Another process (its own FeatureStore on the same file) registers the drivers view.
    other = FeatureStore(repo_path=str(repo), config=build_repo_config(resource.store_config))
    other.apply(resource.repo_contents().of_use_case("drivers"))

    resource.apply(use_case="riders")

    names = [
        fv.name
        for fv in FeatureStore(config=build_repo_config(resource.store_config)).list_feature_views()
    ]
    assert sorted(names) == ["driver_stats", "rider_stats"]


def test_each_step_of_a_long_lived_process_rereads_the_registry(
    feature_repo: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Celery worker keeps its FeatureStore from step to step, and Feast serves features from a
    registry it re-reads only after its TTL: the resource's setup, at each step, re-reads it (what
    another process applied meanwhile is then seen). A fresh process builds nothing for it."""
    import dagster as dg

    resource = local_flavour(feature_repo, monkeypatch).resource
    context = dg.build_init_resource_context()
    resource.setup_for_execution(context)
    assert resource.store_config not in feature_store_module._STORES

    held = resource.get_store()
    refreshed = []
    monkeypatch.setattr(held, "refresh_registry", lambda: refreshed.append(held))
    resource.setup_for_execution(context)
    resource.setup_for_execution(context)
    assert refreshed == [held, held]
    assert resource.get_store() is held


def test_apply_waits_for_the_registry_lock_of_another_writer(
    feature_repo: Path, local_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import threading

    resource = local_flavour(feature_repo, monkeypatch).resource
    resource.get_store()  # build outside the timed part
    done = threading.Event()
    with open(f"{resource.store_config.registry}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        writer = threading.Thread(target=lambda: (resource.apply(), done.set()))
        writer.start()
        assert not done.wait(0.5), "apply wrote the registry while another writer held the lock"
        fcntl.flock(lock, fcntl.LOCK_UN)
    writer.join(timeout=30)
    assert done.is_set()
