"""The point-in-time join streamed in pieces (:func:`iter_point_in_time_join`) and to parquet
(:func:`write_point_in_time_join`): the same rows, order, dtypes and values as the in-memory
join, whatever the piece size, the entity order and whether the sources are stored in time order
(streamed) or not (read whole)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.core.pit import (
    FeatureSource,
    iter_point_in_time_join,
    point_in_time_join,
    write_point_in_time_join,
)
from mlops_assets_tests.core.test_pit import cards, day, frame, join_cases


def written(
    tmp_path: Path, entities: pl.DataFrame, sources: list[FeatureSource], **kw
) -> pl.DataFrame:
    path = tmp_path / "out" / "training_set.parquet"
    assert write_point_in_time_join(entities, sources, path, **kw) == entities.height
    # Written under a temporary name, then renamed: nothing else is left next to it.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    return pl.read_parquet(path)


def time_ordered(source: FeatureSource) -> FeatureSource:
    """The same source stored in time order (stable, nulls first), as the silver assets are."""
    assert isinstance(source.frame, pl.DataFrame)
    frame = source.frame.sort(source.timestamp_field, nulls_last=False, maintain_order=True)
    return FeatureSource(
        source.name,
        frame,
        source.join_keys,
        timestamp_field=source.timestamp_field,
        features=source.features,
        ttl=source.ttl,
        created_timestamp_column=source.created_timestamp_column,
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    join_cases(),
    st.sampled_from([1, 2, 7, 1000]),
    st.booleans(),
    st.booleans(),
)
def test_streamed_join_and_its_pieces_equal_the_in_memory_join(
    tmp_path: Path,
    case: tuple[pl.DataFrame, list[FeatureSource]],
    chunk_rows: int,
    sorted_sources: bool,
    shuffled: bool,
) -> None:
    entities, sources = case
    if sorted_sources:
        sources = [time_ordered(s) for s in sources]
    if shuffled:
        entities = entities.sample(fraction=1.0, shuffle=True, seed=len(entities))
    expected = point_in_time_join(entities, sources)
    got = written(tmp_path, entities, sources, chunk_rows=chunk_rows)
    assert got.schema == expected.schema
    assert got.to_dicts() == expected.to_dicts()
    # The same in pieces, none longer than asked, and no spill left behind.
    spill = tmp_path / "spill"
    spill.mkdir(exist_ok=True)
    pieces = list(
        iter_point_in_time_join(entities, sources, chunk_rows=chunk_rows, spill_dir=spill)
    )
    assert all(piece.height <= chunk_rows for piece in pieces)
    assert pl.concat(pieces).to_dicts() == expected.to_dicts()
    assert list(spill.iterdir()) == []


def test_a_snapshot_older_than_the_piece_is_carried_over_and_expires_with_the_ttl(
    tmp_path: Path,
) -> None:
    """Card 2's only snapshot (day 2) is read with the first piece; the events of day 4 and 6
    come in later pieces and still see it, until the TTL (3 days, inclusive) expires it."""
    events = frame(
        {
            "card_id": [1, 2, 1, 2, 2, 3],
            "event_ts": [day(1), day(2), day(3), day(4), day(6), day(6)],
        }
    )
    source = time_ordered(cards(ttl=timedelta(days=3)))
    out = written(tmp_path, events, [source], chunk_rows=2)
    assert out["tx_count"].to_list() == [10, 20, 30, 20, None, None]
    assert out.equals(point_in_time_join(events, [source]))


def test_a_tie_split_over_source_batches_goes_to_the_latest_created_then_last_row(
    tmp_path: Path,
) -> None:
    snapshots = frame(
        {
            "card_id": [1, 1, 1, 1],
            "event_ts": [day(1), day(1), day(1), day(1)],
            "created_ts": [day(1.5), day(1.2), day(1.5), None],
            "tx_count": [1, 2, 3, 4],
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
    events = frame({"card_id": [1, 1], "event_ts": [day(1), day(2)]})
    # chunk_rows=1 also reads the source one row at a time: the tie spans four batches.
    out = written(tmp_path, events, [source], chunk_rows=1)
    assert out["tx_count"].to_list() == [3, 3]


def test_no_entities_give_an_empty_file_with_the_joined_columns(tmp_path: Path) -> None:
    events = frame({"card_id": [], "event_ts": []}).cast({"card_id": pl.Int64})
    out = written(tmp_path, events, [cards()])
    assert out.schema == point_in_time_join(events, [cards()]).schema
    assert out.height == 0


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "training_set.parquet"
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        write_point_in_time_join(
            frame({"card_id": [1], "event_ts": [day(1)]}), [cards()], path, chunk_rows=0
        )
    with pytest.raises(ValueError, match="entities lack the join keys"):
        write_point_in_time_join(frame({"event_ts": [day(1)]}), [cards()], path)
    assert list(tmp_path.iterdir()) == []


def test_a_parquet_source_is_read_in_slices_with_the_same_result(tmp_path: Path) -> None:
    """A lazy scan (how the views are read) of a file of small row groups, read 2 rows at a
    time."""
    source = time_ordered(cards(ttl=timedelta(days=3)))
    assert isinstance(source.frame, pl.DataFrame)
    source.frame.write_parquet(tmp_path / "cards.parquet", row_group_size=1)
    scanned = FeatureSource(
        source.name,
        pl.scan_parquet(tmp_path / "cards.parquet"),
        source.join_keys,
        features=source.features,
        ttl=source.ttl,
    )
    events = frame(
        {
            "card_id": [2, 1, 1, 2, 3, 1],
            "event_ts": [day(4), day(1), day(5), day(2), day(6), day(9)],
        }
    )
    out = written(tmp_path, events, [scanned], chunk_rows=2)
    assert out["tx_count"].to_list() == [20, 10, 50, 20, None, None]
    assert out.equals(point_in_time_join(events, [source]))


def test_nanosecond_snapshots_are_split_between_pieces_exactly(tmp_path: Path) -> None:
    """Snapshots 1 ns apart: the piece boundary must not be rounded to microseconds."""
    ns = pl.Datetime("ns", "UTC")
    base = 1_735_689_600_000_000_000  # 2025-01-01 in ns
    snapshots = pl.DataFrame(
        {
            "card_id": [1, 1, 1],
            "event_ts": pl.Series([base + 1, base + 2, base + 3]).cast(ns),
            "tx_count": [1, 2, 3],
        }
    )
    source = FeatureSource("card_features", snapshots, ("card_id",), features=("tx_count",))
    events = pl.DataFrame(
        {"card_id": [1, 1, 1], "event_ts": pl.Series([base + 1, base + 2, base + 3]).cast(ns)}
    )
    out = written(tmp_path, events, [source], chunk_rows=1)
    assert out["tx_count"].to_list() == [1, 2, 3]
    assert out.equals(point_in_time_join(events, [source]))


def test_pieces_come_in_entity_order_for_shuffled_events(tmp_path: Path) -> None:
    events = frame(
        {
            "tx": ["c", "a", "e", "b", "d"],
            "card_id": [1, 1, 2, 1, 3],
            "event_ts": [day(3.5), day(1), day(2.5), day(2), day(6)],
        }
    )
    pieces = list(iter_point_in_time_join(events, [cards()], chunk_rows=2, spill_dir=tmp_path))
    assert [p["tx"].to_list() for p in pieces] == [["c", "a"], ["e", "b"], ["d"]]
    assert [p["tx_count"].to_list() for p in pieces] == [[30, 10], [20, 10], [None]]


def test_closing_the_pieces_early_removes_the_spill(tmp_path: Path) -> None:
    """A consumer that stops after the first piece (an error, enough batches) leaves nothing."""
    events = frame({"card_id": [1, 2, 1, 1], "event_ts": [day(5), day(2), day(1), day(3)]})
    pieces = iter_point_in_time_join(events, [cards()], chunk_rows=1, spill_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing is made before the first piece is asked for
    first = next(pieces)
    assert first["tx_count"].to_list() == [50]
    assert [p.name[:15] for p in tmp_path.iterdir()] == [".tmp-pit-spill-"]
    pieces.close()
    assert list(tmp_path.iterdir()) == []


def test_the_arguments_are_checked_before_the_first_piece(tmp_path: Path) -> None:
    events = frame({"card_id": ["1"], "event_ts": [day(1)]})
    with pytest.raises(ValueError, match="join key 'card_id': entities have String"):
        iter_point_in_time_join(events, [cards()], spill_dir=tmp_path)
    with pytest.raises(ValueError, match="entities lack the join keys"):
        iter_point_in_time_join(frame({"event_ts": [day(1)]}), [cards()])
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        iter_point_in_time_join(events, [cards()], chunk_rows=0)


def test_no_entities_give_one_empty_piece_with_the_joined_columns() -> None:
    events = frame({"card_id": [], "event_ts": []}).cast({"card_id": pl.Int64})
    pieces = list(iter_point_in_time_join(events, [cards()]))
    assert len(pieces) == 1
    assert pieces[0].height == 0
    assert pieces[0].schema == point_in_time_join(events, [cards()]).schema


def test_a_wide_spilled_join_is_put_back_in_order_column_batch_by_batch(tmp_path: Path) -> None:
    """Shuffled events over many buckets, with more feature columns than are put back in order at
    a time: every column of every row lands where the in-memory join puts it."""
    n_features = 19
    snapshots = frame(
        {
            "card_id": [i % 5 for i in range(40)],
            "event_ts": [day(i / 4) for i in range(40)],
            **{f"f{j}": [float(i * 100 + j) for i in range(40)] for j in range(n_features)},
        }
    )
    source = FeatureSource("card_features", snapshots, ("card_id",), ttl=timedelta(days=2))
    events = frame(
        {
            "card_id": [(i * 3) % 6 for i in range(37)],
            "event_ts": [day(((i * 7) % 37) / 3) for i in range(37)],
        }
    )
    expected = point_in_time_join(events, [source])
    assert expected["f18"].null_count() < expected.height  # most rows find a snapshot
    got = pl.concat(list(iter_point_in_time_join(events, [source], chunk_rows=4)))
    assert got.to_dicts() == expected.to_dicts()
    assert written(tmp_path, events, [source], chunk_rows=4).equals(expected)


@pytest.mark.parametrize("shuffled", [False, True])
def test_a_source_without_features_keeps_every_row(tmp_path: Path, shuffled: bool) -> None:
    """A view that only says when it was last seen (no feature, no snapshot column): the rows
    are still all there, in entity order, whether spilled or not."""
    snapshots = frame({"card_id": [1, 2], "event_ts": [day(1), day(2)]})
    source = FeatureSource("card_seen", snapshots, ("card_id",))
    times = [day(1), day(2), day(3)] if not shuffled else [day(3), day(1), day(2)]
    events = frame({"tx": ["a", "b", "c"], "card_id": [1, 1, 2], "event_ts": times})
    pieces = list(
        iter_point_in_time_join(
            events, [source], snapshot_ts_suffix=None, chunk_rows=2, spill_dir=tmp_path
        )
    )
    assert [p["tx"].to_list() for p in pieces] == [["a", "b"], ["c"]]
    assert pl.concat(pieces).equals(point_in_time_join(events, [source], snapshot_ts_suffix=None))
