"""The point-in-time join: hand-made cases with the expected values written out, a hypothesis test
against a brute-force reference, and a comparison with Feast's DuckDB offline store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.core.feature_store import FeatureViewMetadata
from mlops_assets.core.pit import (
    FeatureSource,
    leaking_rows,
    point_in_time_join,
    snapshot_column,
)

UTC_US = pl.Datetime("us", "UTC")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(d: float) -> datetime:
    """A time ``d`` days after 2025-01-01 00:00 UTC (hand-made cases read as day numbers)."""
    return T0 + timedelta(days=d)


def frame(data: dict[str, list[Any]], **time_columns: str) -> pl.DataFrame:
    """A frame whose time columns (default ``event_ts``) are tz-aware UTC microseconds."""
    schema = dict.fromkeys(time_columns or {"event_ts": ""}, UTC_US)
    return pl.DataFrame(data, schema_overrides=schema)


def cards(**kwargs: Any) -> FeatureSource:
    """Card snapshots: card 1 on days 1, 3 and 5; card 2 on day 2; card 3 has no history."""
    snapshots = frame(
        {
            "card_id": [1, 1, 1, 2],
            "event_ts": [day(1), day(3), day(5), day(2)],
            "tx_count": [10, 30, 50, 20],
            "amount_mean": [1.0, 3.0, 5.0, 2.0],
        }
    )
    return FeatureSource(
        name="card_features",
        frame=snapshots,
        join_keys=("card_id",),
        timestamp_field="event_ts",
        features=("tx_count", "amount_mean"),
        **kwargs,
    )


# --------------------------------------------------------------------------------------------
# Hand-made cases.
# --------------------------------------------------------------------------------------------


def test_each_event_gets_the_latest_snapshot_at_or_before_it() -> None:
    events = frame({"card_id": [1, 1, 1, 1], "event_ts": [day(0.5), day(1), day(2.9), day(9)]})
    out = point_in_time_join(events, [cards()])
    assert out["tx_count"].to_list() == [None, 10, 10, 50]  # day 1 exactly: included
    assert out["amount_mean"].to_list() == [None, 1.0, 1.0, 5.0]
    assert out["card_features__snapshot_ts"].to_list() == [None, day(1), day(1), day(5)]
    assert out.columns == [
        "card_id",
        "event_ts",
        "tx_count",
        "amount_mean",
        "card_features__snapshot_ts",
    ]


def test_snapshot_stamped_exactly_at_the_event_is_used() -> None:
    events = frame({"card_id": [1, 2], "event_ts": [day(3), day(2)]})
    out = point_in_time_join(events, [cards()])
    assert out["tx_count"].to_list() == [30, 20]


def test_a_snapshot_one_microsecond_after_the_event_is_not_used() -> None:
    events = frame({"card_id": [1], "event_ts": [day(3) - timedelta(microseconds=1)]})
    out = point_in_time_join(events, [cards()])
    assert out["tx_count"].to_list() == [10]


def test_ties_on_key_and_time_go_to_the_latest_created_timestamp() -> None:
    snapshots = frame(
        {
            "card_id": [1, 1, 1, 2, 2],
            "event_ts": [day(1), day(1), day(1), day(1), day(1)],
            "created_ts": [day(1.2), day(1.5), day(1.1), None, day(1)],
            "tx_count": [12, 15, 11, 99, 20],
        },
        event_ts="",
        created_ts="",
    )
    source = FeatureSource(
        "card_features",
        snapshots,
        ("card_id",),
        features=("tx_count",),
        created_timestamp_column="created_ts",
    )
    out = point_in_time_join(frame({"card_id": [1, 2], "event_ts": [day(2), day(2)]}), [source])
    # Card 2: a null created timestamp loses to any value, as in Feast.
    assert out["tx_count"].to_list() == [15, 20]


def test_full_ties_go_to_the_last_row_of_the_source() -> None:
    snapshots = frame(
        {"card_id": [1, 1, 1], "event_ts": [day(1)] * 3, "tx_count": [7, 8, 9]},
    )
    source = FeatureSource("card_features", snapshots, ("card_id",), features=("tx_count",))
    out = point_in_time_join(frame({"card_id": [1], "event_ts": [day(1)]}), [source])
    assert out["tx_count"].to_list() == [9]


def test_ttl_keeps_a_snapshot_exactly_ttl_old_and_expires_older_ones() -> None:
    ttl = timedelta(days=1)
    events = frame(
        {
            "card_id": [1, 1, 1],
            "event_ts": [day(4), day(4) + timedelta(microseconds=1), day(5.5)],
        }
    )
    out = point_in_time_join(events, [cards(ttl=ttl)])
    # Day 4 - day 3 = exactly the TTL: kept (Feast: timestamp >= event - ttl). One µs later: expired.
    assert out["tx_count"].to_list() == [30, None, 50]
    assert out["card_features__snapshot_ts"].to_list() == [day(3), None, day(5)]


def test_expiry_uses_the_latest_snapshot_not_an_older_one() -> None:
    # The latest snapshot before day 4.5 is day 3 (1.5 days old, expired with a 1-day TTL); the
    # older day-1 snapshot must not come back in its place.
    out = point_in_time_join(
        frame({"card_id": [1], "event_ts": [day(4.5)]}), [cards(ttl=timedelta(days=1))]
    )
    assert out["tx_count"].to_list() == [None]


def test_zero_ttl_means_no_expiry_as_in_feast() -> None:
    out = point_in_time_join(
        frame({"card_id": [1], "event_ts": [day(400)]}), [cards(ttl=timedelta(0))]
    )
    assert out["tx_count"].to_list() == [50]


def test_entities_without_history_keep_their_row_with_nulls() -> None:
    events = frame(
        {
            "tx_id": ["a", "b", "c", "d"],
            "card_id": [3, 1, None, 2],
            "event_ts": [day(9), day(0), day(9), None],
        }
    )
    out = point_in_time_join(events, [cards()])
    assert out["tx_id"].to_list() == ["a", "b", "c", "d"]
    # No history / only later history / null key / null event time: all null, none dropped.
    assert out["tx_count"].to_list() == [None, None, None, None]
    assert out["card_features__snapshot_ts"].null_count() == 4


def test_duplicate_entity_rows_are_all_kept() -> None:
    events = frame({"tx_id": ["a", "b", "c"], "card_id": [1, 1, 1], "event_ts": [day(4)] * 3})
    out = point_in_time_join(events, [cards()])
    assert out["tx_id"].to_list() == ["a", "b", "c"]
    assert out["tx_count"].to_list() == [30, 30, 30]


def test_entity_order_and_columns_are_preserved() -> None:
    events = frame(
        {
            "tx_id": ["late", "early", "mid", "none"],
            "card_id": [1, 1, 2, 3],
            "event_ts": [day(6), day(1.5), day(2.5), day(0)],
            "label": [1, 0, 0, 1],
        }
    )
    out = point_in_time_join(events, [cards()])
    assert out.select(events.columns).equals(events)
    assert out["tx_count"].to_list() == [50, 10, 20, None]


def test_multiple_join_keys_match_on_all_of_them() -> None:
    pairs = frame(
        {
            "card_id": [1, 1, 2],
            "merchant_id": [7, 8, 7],
            "event_ts": [day(1), day(2), day(3)],
            "pair_tx_count": [1, 2, 3],
        }
    )
    source = FeatureSource("card_merchant", pairs, ("card_id", "merchant_id"))
    events = frame(
        {
            "card_id": [1, 1, 2, 2, 1],
            "merchant_id": [7, 8, 7, 8, None],
            "event_ts": [day(5), day(5), day(5), day(5), day(5)],
        }
    )
    out = point_in_time_join(events, [source])
    assert out["pair_tx_count"].to_list() == [1, 2, 3, None, None]


def test_two_sources_are_joined_independently() -> None:
    merchants = frame(
        {
            "merchant_id": [7, 7],
            "event_ts": [day(2), day(4)],
            "merchant_tx_count": [100, 200],
        }
    )
    merchant_source = FeatureSource(
        "merchant_features", merchants, ("merchant_id",), ttl=timedelta(days=1)
    )
    events = frame(
        {
            "card_id": [1, 2, 1],
            "merchant_id": [7, 7, 8],
            "event_ts": [day(4.5), day(2.5), day(3)],
        }
    )
    out = point_in_time_join(events, [cards(), merchant_source])
    assert out.columns == [
        "card_id",
        "merchant_id",
        "event_ts",
        "tx_count",
        "amount_mean",
        "card_features__snapshot_ts",
        "merchant_tx_count",
        "merchant_features__snapshot_ts",
    ]
    assert out["tx_count"].to_list() == [30, 20, 30]
    assert out["merchant_tx_count"].to_list() == [200, 100, None]
    assert leaking_rows(out, [cards(), merchant_source]) == 0


def test_lazy_inputs_give_the_same_result() -> None:
    events = frame({"card_id": [2, 1, 1], "event_ts": [day(3), day(4), day(0)]})
    source = cards()
    lazy_source = FeatureSource(
        source.name, source.frame.lazy(), source.join_keys, features=source.features
    )
    eager = point_in_time_join(events, [source])
    lazy = point_in_time_join(events.lazy(), [lazy_source])
    assert lazy.equals(eager)


def test_no_snapshot_column_without_a_suffix_and_empty_features_means_all_columns() -> None:
    source = FeatureSource("card_features", cards().frame, ("card_id",))
    out = point_in_time_join(
        frame({"card_id": [1], "event_ts": [day(1)]}), [source], snapshot_ts_suffix=None
    )
    assert out.columns == ["card_id", "event_ts", "tx_count", "amount_mean"]


def test_colliding_feature_names_are_refused_or_prefixed() -> None:
    other = FeatureSource(
        "card_features_v2",
        cards().frame,
        ("card_id",),
        features=("tx_count",),
    )
    events = frame({"card_id": [1], "event_ts": [day(3)]})
    with pytest.raises(ValueError, match="'tx_count' of feature source 'card_features_v2'"):
        point_in_time_join(events, [cards(), other])
    out = point_in_time_join(events, [cards(), other], full_feature_names=True)
    assert out.columns[2:] == [
        "card_features__tx_count",
        "card_features__amount_mean",
        "card_features__snapshot_ts",
        "card_features_v2__tx_count",
        "card_features_v2__snapshot_ts",
    ]
    assert out["card_features_v2__tx_count"].to_list() == [30]


def test_a_feature_named_like_an_entity_column_is_refused() -> None:
    events = frame({"card_id": [1], "event_ts": [day(3)], "tx_count": [0]})
    with pytest.raises(ValueError, match="collides with the entities"):
        point_in_time_join(events, [cards()])


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match=r"lack the join keys \['card_id'\]"):
        point_in_time_join(frame({"event_ts": [day(1)]}), [cards()])
    with pytest.raises(ValueError, match="no event timestamp column 'ts'"):
        point_in_time_join(
            frame({"card_id": [1], "event_ts": [day(1)]}), [cards()], event_timestamp="ts"
        )
    bad = FeatureSource("card_features", cards().frame, ("card_id",), features=("nope",))
    with pytest.raises(ValueError, match=r"has no columns \['nope'\]"):
        point_in_time_join(frame({"card_id": [1], "event_ts": [day(1)]}), [bad])


def test_naive_against_tz_aware_time_is_refused() -> None:
    events = pl.DataFrame({"card_id": [1], "event_ts": [datetime(2025, 1, 4)]})
    with pytest.raises(ValueError, match="one is tz-aware, the other naive"):
        point_in_time_join(events, [cards()])


def test_time_units_and_zones_are_reconciled() -> None:
    # Events in ms, Paris time; snapshots in µs UTC: same instants, compared exactly.
    events = frame({"card_id": [1, 1], "event_ts": [day(3), day(3) - timedelta(milliseconds=1)]})
    events = events.with_columns(
        pl.col("event_ts").cast(pl.Datetime("ms")).dt.convert_time_zone("Europe/Paris")
    )
    source = cards()
    ns_source = FeatureSource(
        source.name,
        source.frame.with_columns(pl.col("event_ts").cast(pl.Datetime("ns", "UTC"))),
        source.join_keys,
        features=source.features,
    )
    out = point_in_time_join(events, [ns_source])
    assert out["tx_count"].to_list() == [30, 10]
    assert out["event_ts"].dtype == pl.Datetime("ms", "Europe/Paris")  # entity column unchanged
    assert out["card_features__snapshot_ts"].dtype == pl.Datetime("ns", "Europe/Paris")


def test_integer_keys_of_different_widths_match_and_text_against_int_is_refused() -> None:
    events = frame({"card_id": [1], "event_ts": [day(3)]}).with_columns(
        pl.col("card_id").cast(pl.Int32)
    )
    assert point_in_time_join(events, [cards()])["tx_count"].to_list() == [30]
    as_text = events.with_columns(pl.col("card_id").cast(pl.String))
    with pytest.raises(ValueError, match="join key 'card_id'"):
        point_in_time_join(as_text, [cards()])


def test_leaking_rows_counts_rows_whose_snapshot_is_after_the_event() -> None:
    joined = frame(
        {
            "event_ts": [day(2), day(2), day(2), day(2)],
            "a__snapshot_ts": [day(1), day(2), day(3), None],
            "b__snapshot_ts": [day(3), None, day(3), None],
        },
        event_ts="",
        a__snapshot_ts="",
        b__snapshot_ts="",
    )
    assert leaking_rows(joined, ["a"]) == 1
    assert leaking_rows(joined, ["a", "b"]) == 2
    with pytest.raises(ValueError, match="no snapshot column 'c__snapshot_ts'"):
        leaking_rows(joined, ["c"])


def test_from_metadata_reads_the_feast_definition_and_the_source_folder(tmp_path: Path) -> None:
    folder = tmp_path / "card_features"
    folder.mkdir()
    snapshots = cards().frame.rename({"tx_count": "n_tx"})
    snapshots.head(2).write_parquet(folder / "2025-01-01.parquet")
    snapshots.tail(2).write_parquet(folder / "2025-01-02.parquet")
    # A write in progress (or killed) must not be read as data.
    snapshots.with_columns(pl.lit(-1).alias("n_tx")).write_parquet(folder / ".tmp-x.parquet")
    meta = FeatureViewMetadata(
        name="card_features",
        use_case="fraud",
        entities=("card",),
        join_keys=("card_id",),
        timestamp_field="event_ts",
        created_timestamp_column=None,
        source_path=f"{folder}/",
        s3_endpoint_url=None,
        ttl=timedelta(days=1),
        features=(("tx_count", "Int64"),),
        field_mapping=(("n_tx", "tx_count"),),
    )
    source = FeatureSource.from_metadata(meta)
    assert (source.join_keys, source.ttl, source.features) == (
        ("card_id",),
        timedelta(days=1),
        ("tx_count",),
    )
    out = point_in_time_join(
        frame({"card_id": [1, 1, 2], "event_ts": [day(4), day(4.5), day(2)]}), [source]
    )
    assert out["tx_count"].to_list() == [30, None, 20]


# --------------------------------------------------------------------------------------------
# Hypothesis: the engine against a brute-force reference.
# --------------------------------------------------------------------------------------------


def brute_force(
    entities: pl.DataFrame, sources: Sequence[FeatureSource], event_timestamp: str = "event_ts"
) -> list[dict[str, Any]]:
    """The definition, row by row: latest snapshot with the same keys, at or before the event,
    not older than event - ttl; ties by created timestamp (null lowest), then source position."""
    rows = []
    for entity in entities.iter_rows(named=True):
        row = dict(entity)
        t = entity[event_timestamp]
        for source in sources:
            assert isinstance(source.frame, pl.DataFrame)
            best: tuple[Any, ...] | None = None
            for pos, snap in enumerate(source.frame.iter_rows(named=True)):
                ts = snap[source.timestamp_field]
                keys_match = all(
                    entity[k] is not None and snap[k] == entity[k] for k in source.join_keys
                )
                if t is None or ts is None or not keys_match or ts > t:
                    continue
                if source.ttl and ts < t - source.ttl:
                    continue
                created = snap.get(source.created_timestamp_column or "")
                rank = (ts, created is not None, created or ts, pos)
                if best is None or rank > best[0]:
                    best = (rank, snap)
            for feature in source.features:
                row[feature] = best[1][feature] if best else None
            row[snapshot_column(source)] = best[1][source.timestamp_field] if best else None
        rows.append(row)
    return rows


@st.composite
def join_cases(draw: st.DrawFn) -> tuple[pl.DataFrame, list[FeatureSource]]:
    keys = st.one_of(st.none(), st.integers(0, 3))
    times = st.integers(0, 12).map(lambda s: T0 + timedelta(seconds=s))
    maybe_times = st.one_of(st.none(), times)
    ttl = draw(st.one_of(st.none(), st.integers(0, 6).map(lambda s: timedelta(seconds=s))))
    n_cards = draw(st.integers(0, 25))
    card_rows = {
        "card_id": draw(st.lists(keys, min_size=n_cards, max_size=n_cards)),
        "event_ts": draw(st.lists(maybe_times, min_size=n_cards, max_size=n_cards)),
        "created_ts": draw(st.lists(maybe_times, min_size=n_cards, max_size=n_cards)),
        "card_value": list(range(n_cards)),
        # Nullable and non-numeric features take another gather path than clean numbers.
        "card_score": draw(
            st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=n_cards, max_size=n_cards)
        ),
        "card_label": [f"c{i}" for i in range(n_cards)],
    }
    n_pairs = draw(st.integers(0, 25))
    pair_rows = {
        "card_id": draw(st.lists(keys, min_size=n_pairs, max_size=n_pairs)),
        "merchant_id": draw(st.lists(keys, min_size=n_pairs, max_size=n_pairs)),
        "ts": draw(st.lists(times, min_size=n_pairs, max_size=n_pairs)),
        "pair_value": [float(i) / 2 for i in range(n_pairs)],
    }
    n_events = draw(st.integers(0, 30))
    entity_rows = {
        "row": list(range(n_events)),
        "card_id": draw(st.lists(keys, min_size=n_events, max_size=n_events)),
        "merchant_id": draw(st.lists(keys, min_size=n_events, max_size=n_events)),
        "event_ts": draw(st.lists(maybe_times, min_size=n_events, max_size=n_events)),
    }
    card_schema = {
        "card_id": pl.Int64,
        "event_ts": UTC_US,
        "created_ts": UTC_US,
        "card_score": pl.Float64,
        "card_label": pl.String,
    }
    pair_schema = {"card_id": pl.Int64, "merchant_id": pl.Int64, "ts": UTC_US}
    sources = [
        FeatureSource(
            "cards",
            pl.DataFrame(card_rows, schema_overrides=card_schema),
            ("card_id",),
            features=("card_value", "card_score", "card_label"),
            ttl=ttl,
            created_timestamp_column="created_ts",
        ),
        FeatureSource(
            "pairs",
            pl.DataFrame(pair_rows, schema_overrides=pair_schema),
            ("card_id", "merchant_id"),
            timestamp_field="ts",
            features=("pair_value",),
        ),
    ]
    entity_schema = {"card_id": pl.Int64, "merchant_id": pl.Int64, "event_ts": UTC_US}
    return pl.DataFrame(entity_rows, schema_overrides=entity_schema), sources


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(join_cases())
def test_join_equals_a_brute_force_reference(
    case: tuple[pl.DataFrame, list[FeatureSource]],
) -> None:
    entities, sources = case
    out = point_in_time_join(entities, sources)
    assert out.height == entities.height
    assert out.to_dicts() == brute_force(entities, sources)
    assert leaking_rows(out, sources) == 0


# --------------------------------------------------------------------------------------------
# Against Feast's DuckDB offline store (DESIGN §5): same definitions, same parquet, same values.
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_feast_comparison_pit_join_equals_feast_duckdb_offline_store(tmp_path: Path) -> None:
    """A sample built so that Feast behaves (unique key+time+created triples, no null keys);
    it still covers exact-time matches, TTL edges, created-timestamp ties, entities without
    history or with only later history, duplicate entity rows and a two-key view."""
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    rng = np.random.default_rng(7)
    seconds = lambda n: pd.to_datetime(T0) + pd.to_timedelta(rng.integers(0, 40, n), unit="s")  # noqa: E731

    n = 400
    card_df = pd.DataFrame(
        {
            "card_id": rng.integers(0, 12, n),
            "event_ts": seconds(n),
            "created_ts": seconds(n),
            "card_tx_count": rng.integers(0, 1000, n),
            "card_amount_mean": rng.random(n),
        }
    ).drop_duplicates(["card_id", "event_ts", "created_ts"])
    pair_df = pd.DataFrame(
        {
            "card_id": rng.integers(0, 12, n),
            "merchant_id": rng.integers(0, 4, n),
            "event_ts": seconds(n),
            "pair_amount_sum": rng.random(n) * 100,
        }
    ).drop_duplicates(["card_id", "merchant_id", "event_ts"])
    card_df.to_parquet(tmp_path / "card_features.parquet")
    pair_df.to_parquet(tmp_path / "card_merchant_features.parquet")

    card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.INT64)
    merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
    card_view = FeatureView(
        name="card_features",
        entities=[card],
        ttl=timedelta(seconds=5),
        schema=[
            Field(name="card_id", dtype=Int64),
            Field(name="card_tx_count", dtype=Int64),
            Field(name="card_amount_mean", dtype=Float64),
        ],
        source=FileSource(
            path=str(tmp_path / "card_features.parquet"),
            timestamp_field="event_ts",
            created_timestamp_column="created_ts",
        ),
    )
    pair_view = FeatureView(
        name="card_merchant_features",
        entities=[card, merchant],
        ttl=timedelta(0),  # no expiry
        schema=[
            Field(name="card_id", dtype=Int64),
            Field(name="merchant_id", dtype=Int64),
            Field(name="pair_amount_sum", dtype=Float64),
        ],
        source=FileSource(
            path=str(tmp_path / "card_merchant_features.parquet"), timestamp_field="event_ts"
        ),
    )
    config = RepoConfig(
        project="pit_test",
        provider="local",
        registry={"registry_type": "file", "path": str(tmp_path / "registry.db")},
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )
    store = FeatureStore(config=config, repo_path=str(tmp_path))
    store.apply([card, merchant, card_view, pair_view])

    m = 600
    entity_df = pd.DataFrame(
        {
            "row_id": np.arange(m),
            "card_id": rng.integers(0, 14, m),  # cards 12 and 13 have no history
            "merchant_id": rng.integers(0, 5, m),  # merchant 4 has no history
            "event_timestamp": pd.to_datetime(T0)
            + pd.to_timedelta(rng.integers(-2, 45, m), unit="s"),
        }
    )
    entity_df = pd.concat([entity_df, entity_df.head(20).assign(row_id=np.arange(m, m + 20))])
    features = [
        "card_features:card_tx_count",
        "card_features:card_amount_mean",
        "card_merchant_features:pair_amount_sum",
    ]
    theirs = (
        store.get_historical_features(entity_df=entity_df, features=features)
        .to_df()
        .sort_values("row_id")
        .reset_index(drop=True)
    )

    def metadata(view: Any) -> FeatureViewMetadata:
        return FeatureViewMetadata(
            name=view.name,
            use_case=None,
            entities=tuple(view.entities),
            join_keys=tuple(c.name for c in view.entity_columns),
            timestamp_field=view.batch_source.timestamp_field,
            created_timestamp_column=view.batch_source.created_timestamp_column or None,
            source_path=view.batch_source.path,
            s3_endpoint_url=None,
            ttl=view.ttl or None,
            features=tuple((f.name, str(f.dtype)) for f in view.features),
        )

    sources = [FeatureSource.from_metadata(metadata(v)) for v in (card_view, pair_view)]
    ours = point_in_time_join(pl.from_pandas(entity_df), sources, event_timestamp="event_timestamp")

    # DuckDB's store keeps every entity row (the file store would not); compare row by row.
    assert len(theirs) == ours.height == len(entity_df)
    assert theirs["row_id"].tolist() == ours["row_id"].to_list()
    feature_names = [f.split(":")[1] for f in features]
    for name in feature_names:
        expected = theirs[name].astype("float64").to_numpy()
        got = ours[name].cast(pl.Float64).to_numpy()
        np.testing.assert_array_equal(got, expected, err_msg=name)
    # The sample exercises what it claims to.
    card_snap = ours["card_features__snapshot_ts"]
    assert card_snap.null_count() > 0 and (card_snap == ours["event_timestamp"]).sum() > 0
    ages = ours["event_timestamp"] - card_snap
    assert (ages == timedelta(seconds=5)).sum() > 0  # exactly TTL old: kept by both
    assert ours["pair_amount_sum"].null_count() > 0
    assert leaking_rows(ours, sources, event_timestamp="event_timestamp") == 0
