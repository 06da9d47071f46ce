"""Online feature statuses, the same on Feast's SQLite and Redis stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets_tests.fixtures.fraud_online import SNAPSHOT_TS, online_rows, write_online_features
from mlops_assets_tests.fixtures.paths import REPO_ROOT

DAY = 86400.0
WRITTEN = SNAPSHOT_TS.timestamp()  # when cards 0, 2 and 3 were written (card 1: 40 days before)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.stack)])
def reader(request: pytest.FixtureRequest, tmp_path: Path):
    from mlops_assets.core.feature_store import FeastFeatureStore, clear_caches
    from mlops_assets.serving.online import FeastOnlineReader

    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    store = FeastFeatureStore(
        repo_path=str(REPO_ROOT / "feature_repo"),
        registry=str(tmp_path / "registry.db"),
        online_store=request.param,
        online_store_path=str(tmp_path / "online.db"),
        redis_url=redis_url,
        data_root=str(tmp_path / "data"),
    )
    cards, merchants = online_rows(4, 4)
    # Card 1's snapshot is 40 days old (the views' TTL is 30 days); card 2 never had a 1-day
    # mean (an empty window): null.
    cards.loc[cards.card_id == 1, "event_ts"] = cards.event_ts.iloc[0] - pd.Timedelta(days=40)
    cards["card_amount_mean_1d"] = cards["card_amount_mean_1d"].astype("float64")
    cards.loc[cards.card_id == 2, "card_amount_mean_1d"] = np.nan
    write_online_features(store, cards, merchants)
    reader = FeastOnlineReader(store)
    reader.warm_up()
    yield reader, cards
    clear_caches()


REFS = ["card_features:card_tx_count_1d", "card_features:card_amount_mean_1d"]


def test_a_present_row_gives_its_values(reader) -> None:
    online, cards = reader
    row = online.read(REFS, {"card_id": 0}, as_of=WRITTEN + DAY)
    expected = cards.loc[cards.card_id == 0].iloc[0]
    assert row.status == {"card_tx_count_1d": "PRESENT", "card_amount_mean_1d": "PRESENT"}
    assert row.values["card_tx_count_1d"] == expected["card_tx_count_1d"]
    assert row.values["card_amount_mean_1d"] == pytest.approx(expected["card_amount_mean_1d"])
    assert row.missing() == []


def test_a_key_never_written_is_not_found(reader) -> None:
    online, _ = reader
    row = online.read(REFS, {"card_id": 12345}, as_of=WRITTEN + DAY)
    assert set(row.status.values()) == {"NOT_FOUND"}
    assert set(row.values.values()) == {None}


def test_a_snapshot_older_than_the_ttl_is_outside_max_age(reader) -> None:
    online, _ = reader
    row = online.read(REFS, {"card_id": 1}, as_of=WRITTEN + DAY)
    assert set(row.status.values()) == {"OUTSIDE_MAX_AGE"}
    assert set(row.values.values()) == {None}
    # Measured from a time when the snapshot was fresh, it is present.
    then = WRITTEN - 39 * DAY
    assert set(online.read(REFS, {"card_id": 1}, as_of=then).status.values()) == {"PRESENT"}


def test_the_ttl_is_measured_from_the_request_time_not_the_clock(reader) -> None:
    online, _ = reader
    # Card 0 was written at WRITTEN; the views' TTL is 30 days.
    statuses = {
        days: set(online.read(REFS, {"card_id": 0}, as_of=WRITTEN + days * DAY).status.values())
        for days in (0, 29.9, 30.1)
    }
    assert statuses == {0: {"PRESENT"}, 29.9: {"PRESENT"}, 30.1: {"OUTSIDE_MAX_AGE"}}


def test_a_snapshot_written_after_the_request_time_is_not_used(reader) -> None:
    online, _ = reader
    row = online.read(REFS, {"card_id": 0}, as_of=WRITTEN - 1)
    # Using it would leak the future into the prediction.
    assert set(row.status.values()) == {"AFTER_AS_OF"}
    assert set(row.values.values()) == {None}
    assert row.missing() == ["card_tx_count_1d", "card_amount_mean_1d"]


def test_a_null_feature_is_null_value(reader) -> None:
    online, _ = reader
    row = online.read(REFS, {"card_id": 2}, as_of=WRITTEN + DAY)
    assert row.status["card_tx_count_1d"] == "PRESENT"
    assert row.status["card_amount_mean_1d"] == "NULL_VALUE"
    assert row.values["card_amount_mean_1d"] is None
    assert row.missing() == ["card_amount_mean_1d"]


@pytest.mark.stack
def test_hmgets_sent_directly_answer_as_feasts_pipeline_and_survive_an_error_reply(
    redis_url: str, tmp_path: Path
) -> None:
    import redis

    from mlops_assets.core.feature_store import FeastFeatureStore, clear_caches
    from mlops_assets.serving.online import FeastOnlineReader, _hmget_all

    store = FeastFeatureStore(
        repo_path=str(REPO_ROOT / "feature_repo"),
        registry=str(tmp_path / "registry.db"),
        online_store="redis",
        redis_url=redis_url,
        data_root=str(tmp_path / "data"),
    )
    cards, merchants = online_rows(4, 4)
    write_online_features(store, cards, merchants)
    try:
        online = FeastOnlineReader(store)
        online.warm_up()
        client = online._redis_client
        assert type(client) is redis.Redis  # the reads below go the direct way
        config = store.get_store().config
        feast_store = online._redis
        view = online._view("card_features")
        _, fields = feast_store._generate_hset_keys_for_features(view, ["card_tx_count_1d"])
        keys = [
            feast_store._generate_redis_keys_for_entities(config, [online_key(view, card)])[0]
            for card in (0, 3, 999)  # 999: never written
        ]
        commands = [(key, fields) for key in keys]
        direct = _hmget_all(client, commands)
        assert direct == feast_store._read_hash_fields(config, commands)
        assert direct[0][0] is not None and direct[2] == [None] * len(fields)

        # An error reply in the middle: raised, and the next read is not handed its leftovers.
        client.set(b"not-a-hash", b"x")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            _hmget_all(client, [commands[0], (b"not-a-hash", fields), commands[1]])
        assert _hmget_all(client, commands) == direct
        row = online.read(REFS, {"card_id": 0}, as_of=WRITTEN + DAY)
        assert set(row.status.values()) == {"PRESENT"}
    finally:
        clear_caches()


def test_hmgets_go_directly_only_through_a_plain_redis_py_client_feast_reads_with() -> None:
    from types import SimpleNamespace

    import redis
    from feast.infra.online_stores.redis import RedisClient

    from mlops_assets.serving.online import _direct_redis_client

    def config(client: RedisClient | None) -> SimpleNamespace:
        store = SimpleNamespace(type="redis") if client is None else SimpleNamespace(client=client)
        return SimpleNamespace(online_store=store)

    plain = redis.Redis(host="127.0.0.1", port=1)  # never connects
    assert _direct_redis_client(plain, config(RedisClient.redis)) is plain
    assert _direct_redis_client(plain, config(None)) is plain  # a Feast without the setting
    # GLIDE: Feast reads through its own client, not this one.
    assert _direct_redis_client(plain, config(RedisClient.glide)) is None

    class Routed(redis.Redis):  # stands for any client that is not the plain one
        pass

    assert _direct_redis_client(Routed(host="127.0.0.1", port=1), config(RedisClient.redis)) is None
    assert _direct_redis_client(None, config(RedisClient.redis)) is None


def online_key(view, card_id: int):
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    from mlops_assets.serving.online import _entity_key

    return _entity_key(EntityKey, view, {"card_id": card_id})
