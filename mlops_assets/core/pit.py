"""Point-in-time (as-of) joins: what each feature view knew at the moment of each event.

A training set pairs every labelled event with the feature values that were available *when the
event happened*, never later ones: a value computed after the event leaks the future into training
and makes offline metrics lie. :func:`point_in_time_join` builds that pairing from feature
snapshots (one row per entity key and snapshot time) with the semantics of Feast's
``get_historical_features``, driven by the same feature-view metadata (join keys, timestamp field,
TTL, created-timestamp column), but

* it never drops or duplicates an entity row (Feast's file offline store silently drops entities
  whose snapshots are all later than the event, and events sharing key and timestamp), and keeps
  the entity order;
* it runs on Polars ``join_asof`` over slim frames (keys, timestamp, row index) and then gathers
  the feature columns once, so 10M events x 2 views take seconds and little more memory than the
  output itself (DESIGN §5, §7);
* :func:`iter_point_in_time_join` gives the same result in pieces, and
  :func:`write_point_in_time_join` as a parquet file, without holding it (or a source) in
  memory: events swept in time order, piece by piece, against a per-key state of each source
  read once in time order. A 10M x 2-view set is 3.1 GB of float64 features.

Semantics, per entity row at time ``t`` and per source (feature view):

* the snapshot used is the latest row with the same join keys and ``timestamp <= t`` (inclusive:
  a snapshot stamped exactly at the event is available, as in Feast);
* with a TTL, a snapshot older than ``t - ttl`` is expired: ``timestamp >= t - ttl`` must hold
  (inclusive, as Feast: its DuckDB/ibis store keeps ``timestamp + ttl >= t``, its file store
  ``timestamp >= t - ttl``). A zero or ``None`` TTL never expires (Feast stores "no TTL" as 0);
* ties (several rows with the same keys and timestamp): the one with the latest
  ``created_timestamp_column`` wins (a null created timestamp loses to any value, as in Feast);
  remaining ties go to the row that comes **last in the source frame** (for a folder of parquet
  files: the last file in name order, then the last row), so a re-run picks the same row
  (Feast leaves full ties to its engine: arbitrary in DuckDB). Like Feast's default, the created
  timestamp only breaks ties; it is not compared with the event time
  (``filter_by_created_timestamp`` is not offered);
* a null join key or a null event timestamp matches nothing; source rows with a null key or
  timestamp are never used;
* no match → null features and a null snapshot time; the row is kept.

Pure Polars: no Dagster or Feast import here (``import feast`` costs ~10 s); metadata comes in as
:class:`~mlops_assets.core.feature_store.FeatureViewMetadata`, read by the Feast resource.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from mlops_assets.core.feature_store import FeastFeatureStore, FeatureViewMetadata

DEFAULT_SNAPSHOT_TS_SUFFIX = "__snapshot_ts"

# Internal column names of the slim join frames. They never meet user columns (the slim frames
# are built from scratch), the prefix only makes debugging output readable.
_ROW = "__pit_row"
_IDX = "__pit_idx"
_TS = "__pit_ts"
_SNAP = "__pit_snapshot_ts"
_CREATED = "__pit_created_ts"

# Columns that cannot be gathered row-wise are gathered a few at a time, their source columns
# released as we go: all at once would hold the whole source and the whole output at the same
# moment (2 x 1.7 GB per 10M x 20 view); one at a time loses the 2-core parallelism of a select.
_GATHER_BATCH = 4

_UNIT_RANK = {"ms": 0, "us": 1, "ns": 2}


# eq=False: equality by identity. Comparing frames with == gives a frame, not a bool.
@dataclass(frozen=True, eq=False)
class FeatureSource:
    """One feature view as the join sees it: snapshots of some features per entity key over time.

    ``frame`` holds one row per (join keys, ``timestamp_field``) snapshot, plus possibly other
    columns (ignored). ``features`` are the columns to attach to entity rows; empty means "every
    column except the keys and timestamps". ``ttl`` None (or zero) means values never expire.
    """

    name: str
    frame: pl.DataFrame | pl.LazyFrame
    join_keys: tuple[str, ...]
    timestamp_field: str = "event_ts"
    features: tuple[str, ...] = ()
    ttl: timedelta | None = None
    created_timestamp_column: str | None = None

    def __post_init__(self) -> None:
        # Lists are accepted for convenience; stored as tuples, so a source cannot change later.
        object.__setattr__(self, "join_keys", tuple(self.join_keys))
        object.__setattr__(self, "features", tuple(self.features))
        if not isinstance(self.frame, (pl.DataFrame, pl.LazyFrame)):
            raise TypeError(
                f"FeatureSource {self.name!r}: frame must be a polars DataFrame or LazyFrame, "
                f"not {type(self.frame).__name__}"
            )
        if self.ttl is not None and self.ttl < timedelta(0):
            raise ValueError(f"FeatureSource {self.name!r}: ttl {self.ttl} is negative")
        if len(set(self.join_keys)) != len(self.join_keys):
            raise ValueError(f"FeatureSource {self.name!r}: repeated join key in {self.join_keys}")

    @classmethod
    def from_metadata(
        cls,
        meta: FeatureViewMetadata,
        frame: pl.DataFrame | pl.LazyFrame | None = None,
    ) -> FeatureSource:
        """The source of a Feast feature view: its join keys, timestamp field, TTL and features.

        ``frame`` defaults to a lazy scan of the view's offline parquet (``meta.source_path``, a
        file or a folder; on S3 with the view's endpoint). Feast's ``field_mapping`` (source
        column → feature name) is applied to the frame, as Feast does when it reads the source.
        """
        if frame is None:
            frame = scan_offline_source(meta.source_path, meta.s3_endpoint_url)
        if meta.field_mapping:
            frame = frame.rename(dict(meta.field_mapping), strict=False)
        return cls(
            name=meta.name,
            frame=frame,
            join_keys=tuple(meta.join_keys),
            timestamp_field=meta.timestamp_field,
            features=tuple(meta.feature_names),
            ttl=meta.ttl or None,
            created_timestamp_column=meta.created_timestamp_column or None,
        )

    @classmethod
    def from_feature_store(
        cls,
        store: FeastFeatureStore,
        view: str,
        frame: pl.DataFrame | pl.LazyFrame | None = None,
    ) -> FeatureSource:
        """The source of feature view ``view`` as the Feast resource defines it for its profile."""
        return cls.from_metadata(store.feature_view_metadata(view), frame)

    def output_names(self, full_feature_names: bool = False) -> list[str]:
        """The feature column names this source adds to the joined frame."""
        features = self.features or tuple(self._default_features())
        if full_feature_names:
            return [f"{self.name}__{f}" for f in features]
        return list(features)

    def _default_features(self) -> list[str]:
        schema = (
            self.frame.collect_schema()
            if isinstance(self.frame, pl.LazyFrame)
            else self.frame.schema
        )
        reserved = {*self.join_keys, self.timestamp_field, self.created_timestamp_column}
        return [c for c in schema.names() if c not in reserved]


def scan_offline_source(path: str, s3_endpoint_url: str | None = None) -> pl.LazyFrame:
    """A lazy scan of a feature view's offline parquet: a file, or every parquet file of a folder
    (recursively, in path order; hidden and ``_``-prefixed files skipped).

    On S3 the endpoint (MinIO, moto) goes to Polars' object store with path-style requests, as
    MinIO needs; credentials come from the environment like every other S3 client here.
    """
    storage_options: dict[str, str] | None = None
    if path.startswith("s3://") and s3_endpoint_url:
        storage_options = {
            "aws_endpoint_url": s3_endpoint_url,
            "aws_virtual_hosted_style_request": "false",
            "aws_allow_http": str(s3_endpoint_url.startswith("http://")).lower(),
        }
    return pl.scan_parquet(
        path,
        storage_options=storage_options,
        # A folder scan would also read `.tmp-*.parquet` files of a write in progress (or left
        # by a killed one) and `_`-prefixed pointer/manifest objects: neither is data.
        hidden_file_prefix=(".", "_"),
        hive_partitioning=False,
    )


def snapshot_column(source: FeatureSource | str, suffix: str = DEFAULT_SNAPSHOT_TS_SUFFIX) -> str:
    """Name of the column that holds the time of the snapshot used from ``source``."""
    name = source if isinstance(source, str) else source.name
    return f"{name}{suffix}"


# --------------------------------------------------------------------------------------------
# The join.
# --------------------------------------------------------------------------------------------


def point_in_time_join(
    entities: pl.DataFrame | pl.LazyFrame,
    sources: Sequence[FeatureSource],
    *,
    event_timestamp: str = "event_ts",
    snapshot_ts_suffix: str | None = DEFAULT_SNAPSHOT_TS_SUFFIX,
    full_feature_names: bool = False,
) -> pl.DataFrame:
    """Attach to every entity row the feature values each source held at the row's event time.

    ``entities`` carries the join keys of every source and ``event_timestamp``. The result has
    exactly the rows of ``entities`` in the same order, its columns unchanged, followed per source
    by its feature columns (``<source>__<feature>`` with ``full_feature_names``) and, unless
    ``snapshot_ts_suffix`` is None, ``<source><suffix>``: the timestamp of the snapshot used (null
    when none), which leakage checks compare with the event time (:func:`leaking_rows`).

    See the module docstring for the exact semantics (inclusive as-of, Feast TTL, ties).
    Raises ``ValueError`` on missing columns, feature names that collide (with each other or with
    entity columns: use ``full_feature_names``), incompatible key types, or time columns that
    cannot be compared (tz-aware against naive).
    """
    entity_df = entities.collect() if isinstance(entities, pl.LazyFrame) else entities
    _check_sources(entity_df, sources, event_timestamp, snapshot_ts_suffix, full_feature_names)
    event_dtype = entity_df.schema[event_timestamp]

    # The entity side, slim and sorted by event time once for all sources. join_asof needs the
    # `on` column sorted (within `by` groups); training sets usually arrive in time order
    # already, and then nothing moves.
    left = entity_df.select(pl.col(event_timestamp).alias(_TS)).with_row_index(_ROW)
    needs_sort = not left[_TS].is_sorted(nulls_last=False)
    order = left.sort(_TS, nulls_last=False).get_column(_ROW) if needs_sort else None

    columns: list[pl.Series] = []
    for source in sources:
        columns.extend(
            _join_one(
                entity_df,
                left,
                order,
                source,
                event_timestamp,
                event_dtype,
                snapshot_ts_suffix,
                full_feature_names,
            )
        )
    return entity_df.hstack(columns)


def _join_one(
    entity_df: pl.DataFrame,
    left: pl.DataFrame,
    order: pl.Series | None,
    source: FeatureSource,
    event_timestamp: str,
    event_dtype: pl.DataType,
    snapshot_ts_suffix: str | None,
    full_feature_names: bool,
) -> list[pl.Series]:
    features = list(source.features) or source._default_features()
    keys = list(source.join_keys)
    ts_field = source.timestamp_field
    created = source.created_timestamp_column
    wanted = list(dict.fromkeys([*keys, ts_field, *([created] if created else []), *features]))
    frame = source.frame.select(wanted)
    data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    _check_time_column(data.schema[ts_field], f"{source.name}.{ts_field}")
    if created:
        _check_time_column(data.schema[created], f"{source.name}.{created}")

    common = _common_time_dtype(event_dtype, data.schema[ts_field], event_timestamp, source)
    key_names = [f"__pit_key{i}" for i in range(len(keys))]
    left_exprs, right_exprs = _key_exprs(entity_df.schema, data.schema, keys, key_names, source)

    # Entity side: row index, keys, event time in the common unit, in event-time order.
    left_slim = pl.concat([left, entity_df.select(left_exprs)], how="horizontal").with_columns(
        pl.col(_TS).cast(common)
    )
    if order is not None:
        left_slim = left_slim[order]

    # Source side: keys, timestamp(s) and the row index into `data`, from which the features are
    # gathered at the end. Rows without a key or a timestamp can never be "the latest before".
    right_cols = [
        pl.int_range(pl.len(), dtype=pl.get_index_type()).alias(_IDX),
        *right_exprs,
        _to_common(pl.col(ts_field), common).alias(_SNAP),
    ]
    if created:
        right_cols.append(pl.col(created).alias(_CREATED))
    right = data.select(right_cols)
    if right.select(pl.any_horizontal(pl.col([*key_names, _SNAP]).null_count() > 0)).item():
        right = right.drop_nulls([*key_names, _SNAP])  # skipped when clean: it copies
    if created:
        # Latest created timestamp last among equal snapshot times (join_asof "backward" takes
        # the last row of a tie); a null created timestamp loses, as in Feast. maintain_order:
        # a full tie keeps source order, so the last source row wins, deterministically.
        right = right.sort([_SNAP, _CREATED], nulls_last=[False, False], maintain_order=True)
        right = right.drop(_CREATED)
    elif not right[_SNAP].is_sorted():
        right = right.sort(_SNAP, maintain_order=True)
    # Snapshots written in time order (the silver assets are) and events in time order give
    # near-monotonic gather indices: a plain column gather streams through memory. Otherwise
    # each value is a cache miss, and gathering whole rows at once is several times faster.
    scattered = order is not None or not right[_IDX].is_sorted()

    joined = left_slim.join_asof(
        right.with_columns(pl.col(_SNAP).alias(_TS)).set_sorted(_TS),
        on=_TS,
        by=key_names or None,
        strategy="backward",  # latest snapshot with time <= event time: exact matches included
        check_sortedness=False,  # sorted above; Polars cannot check within `by` groups anyway
    )
    if source.ttl:
        # Feast's TTL: a snapshot older than event - ttl has expired; exactly ttl old is kept.
        expired = pl.col(_SNAP) < pl.col(_TS) - pl.lit(source.ttl)
        joined = joined.with_columns(
            pl.when(expired).then(None).otherwise(pl.col(c)).alias(c) for c in (_IDX, _SNAP)
        )
    if order is not None:
        joined = joined.sort(_ROW)  # back to entity order; a radix sort of one int column
    idx = joined.get_column(_IDX)
    snapshot = joined.get_column(_SNAP)
    del joined, left_slim, right

    out_names = source.output_names(full_feature_names)
    # Gather feature values in entity order (null index → null values), releasing the source's
    # columns as we go when we hold the only reference (a frame we collected ourselves).
    feature_cols = data.select(features).get_columns()
    del data, frame
    gathered = _gather(feature_cols, idx, scattered)
    out = [s.alias(name) for s, name in zip(gathered, out_names, strict=True)]
    if snapshot_ts_suffix is not None:
        out.append(snapshot.alias(snapshot_column(source, snapshot_ts_suffix)))
    return out


def _gather(
    columns: list[pl.Series], idx: pl.Series, scattered: bool, batch_columns: int = _GATHER_BATCH
) -> list[pl.Series]:
    """``[c.gather(idx) for c in columns]``, emptying ``columns`` as it goes, fast for random
    ``idx`` too.

    Polars gathers column by column: with random indices every value is a cache miss, 20 misses
    per row for 20 features (~18 s for 10M x 20 here). For ``scattered`` indices, numeric columns
    without nulls are packed 64 bytes per row (one cache line), gathered as rows by numpy and
    unpacked: ~3x faster. Columns are handled a few at a time, so the extra memory is bounded.
    """
    out: dict[int, pl.Series] = {}
    valid = idx.is_not_null() if idx.null_count() else None
    by_row: dict[pl.DataType, list[int]] = {}
    plain: list[int] = []
    for i, col in enumerate(columns):
        dtype = col.dtype
        packable = scattered and len(col) > 0 and (dtype.is_integer() or dtype.is_float())
        if packable and col.null_count() == 0:
            by_row.setdefault(dtype, []).append(i)
        else:
            plain.append(i)

    if by_row:
        import numpy as np  # an optional dependency of Polars: imported where it is used

        # A null index (no snapshot) reads row 0, then is masked to null.
        positions = idx.fill_null(0).to_numpy()
        for dtype, members in by_row.items():
            n_rows = len(columns[members[0]])
            np_dtype = columns[members[0]][:0].to_numpy().dtype
            per_line = max(1, 64 // np_dtype.itemsize)
            for start in range(0, len(members), per_line):
                batch = members[start : start + per_line]
                packed = np.empty((n_rows, len(batch)), dtype=np_dtype)
                for j, i in enumerate(batch):
                    packed[:, j] = columns[i].to_numpy()
                    columns[i] = None  # type: ignore[call-overload]
                rows = packed[positions]
                del packed
                unpacked = pl.DataFrame(
                    [pl.Series(str(j), np.ascontiguousarray(rows[:, j])) for j in range(len(batch))]
                )
                del rows
                if valid is not None:
                    unpacked = unpacked.select(pl.when(valid).then(pl.all()).name.keep())
                for j, i in enumerate(batch):
                    out[i] = unpacked.to_series(j).cast(dtype)

    for start in range(0, len(plain), batch_columns):
        batch = plain[start : start + batch_columns]
        frame = pl.DataFrame([columns[i].alias(str(i)) for i in batch])
        for i in batch:
            columns[i] = None  # type: ignore[call-overload]
        # Rows taken at once: one check of the indices for the batch, not one per column.
        for i, series in zip(batch, frame[idx].get_columns(), strict=True):
            out[i] = series
        del frame
    return [out[i] for i in range(len(out))]


# --------------------------------------------------------------------------------------------
# The join streamed in pieces, or to a parquet file (training sets larger than memory).
# --------------------------------------------------------------------------------------------

# Entity rows per piece of the streamed join, and source rows per batch read. 1M rows of the
# fraud set (2 views, 39 features) is ~330 MB of output per piece: a few pieces in flight keep the
# peak far below the 3.1 GB the whole 10M output takes, and the per-piece overhead is small.
DEFAULT_CHUNK_ROWS = 1_000_000


def iter_point_in_time_join(
    entities: pl.DataFrame | pl.LazyFrame,
    sources: Sequence[FeatureSource],
    *,
    event_timestamp: str = "event_ts",
    snapshot_ts_suffix: str | None = DEFAULT_SNAPSHOT_TS_SUFFIX,
    full_feature_names: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    spill_dir: str | os.PathLike[str] | None = None,
) -> Generator[pl.DataFrame, None, None]:
    """:func:`point_in_time_join` handed out in consecutive pieces of at most ``chunk_rows``
    entity rows, in entity order, without ever holding the whole result (or a whole source).

    Concatenated, the pieces are exactly :func:`point_in_time_join`'s frame: same rows, order,
    columns, dtypes and values (the tests pin it). This is the training set of a consumer that
    takes its data batch by batch (an external-memory ``xgboost.DataIter``, a PyTorch
    ``IterableDataset``, ``partial_fit``, a writer of another format): 10M events x 2 views of
    the fraud set take about 2 GB however large the result, which is 3.1 GB of features.

    How: the events are swept in time order, ``chunk_rows`` at a time. Each source is read once,
    in time order, in batches; per source a *state* holds the latest snapshot of every key seen so
    far (for the fraud views: 100k cards, ~20 MB). A piece of events is joined (Polars
    ``join_asof``) against the state plus the snapshots stamped since the previous piece, which
    is exactly "the latest snapshot at or before the event" (then TTL, ties and nulls as in the
    module docstring). Events in time order come out as they are joined; otherwise each piece is
    parked in temporary files by entity position under ``spill_dir`` (default: the system's
    temporary folder) and put back in entity order one piece at a time. The files go when the
    pieces run out or the generator is closed (``close()``, or garbage collection).

    Memory stays bounded when each source is stored in time order (the silver snapshots are);
    a source that is not is read whole and sorted first, which costs its size in memory.
    The arguments are checked here (a ``ValueError`` as :func:`point_in_time_join` raises it),
    not at the first piece. No entities: one empty frame with the joined columns.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    entity_df = entities.collect() if isinstance(entities, pl.LazyFrame) else entities
    _check_sources(entity_df, sources, event_timestamp, snapshot_ts_suffix, full_feature_names)
    if entity_df.height == 0:
        return _single(
            point_in_time_join(
                entity_df,
                sources,
                event_timestamp=event_timestamp,
                snapshot_ts_suffix=snapshot_ts_suffix,
                full_feature_names=full_feature_names,
            )
        )
    event_dtype = entity_df.schema[event_timestamp]
    # Built here, not in the generator: a source that cannot be joined (its time or key dtype)
    # fails now, before the caller has started to consume pieces.
    streams = [
        _SourceStream(
            source,
            entity_df.schema,
            event_dtype,
            event_timestamp,
            snapshot_ts_suffix,
            full_feature_names,
            chunk_rows,
        )
        for source in sources
    ]
    key_columns = list(dict.fromkeys(k for s in sources for k in s.join_keys))
    workdir = Path(spill_dir) if spill_dir is not None else Path(tempfile.gettempdir())
    return _sweep(entity_df, streams, key_columns, workdir, event_timestamp, chunk_rows)


def write_point_in_time_join(
    entities: pl.DataFrame | pl.LazyFrame,
    sources: Sequence[FeatureSource],
    path: str | os.PathLike[str],
    *,
    event_timestamp: str = "event_ts",
    snapshot_ts_suffix: str | None = DEFAULT_SNAPSHOT_TS_SUFFIX,
    full_feature_names: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    compression: str = "lz4",
) -> int:
    """:func:`point_in_time_join` written to the local parquet file ``path`` (``compression``:
    a Polars parquet codec), without ever holding the whole result (or a whole source) in
    memory; returns the number of rows written.

    The pieces of :func:`iter_point_in_time_join` (spilled, for entities out of time order, next
    to ``path``), one row group after another. Same rows, order, columns, dtypes and values as
    :func:`point_in_time_join` (the tests pin it). For 10M events x 2 views of 20 float64
    features the result alone is 3.1 GB: this is how a training set that large is built on a
    small machine. The file appears atomically (written under a hidden temporary name, then
    renamed).
    """
    target = Path(path)
    entity_df = entities.collect() if isinstance(entities, pl.LazyFrame) else entities
    # Checks the arguments before anything is created next to `path`; the spill folder is
    # only made when the first piece is asked for.
    pieces = iter_point_in_time_join(
        entity_df,
        sources,
        event_timestamp=event_timestamp,
        snapshot_ts_suffix=snapshot_ts_suffix,
        full_feature_names=full_feature_names,
        chunk_rows=chunk_rows,
        spill_dir=target.parent,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex}"
    try:
        _sink_parquet(pieces, tmp, compression)
        # Readers see either no file or the whole one, never a half-written training set.
        os.replace(tmp, target)
    finally:
        pieces.close()  # removes a spill at once, also when the write failed
        tmp.unlink(missing_ok=True)
    return entity_df.height


def _single(frame: pl.DataFrame) -> Generator[pl.DataFrame, None, None]:
    yield frame


def _sink_parquet(pieces: Iterator[pl.DataFrame], path: Path, compression: str) -> None:
    """Write ``pieces`` (frames of one schema) to one parquet file, in order.

    Polars' streaming sink encodes the columns on every core while the next piece is joined; it
    reads the pieces through an IO-source plugin (pyarrow's writer appends row groups too, but
    encodes one column at a time: about twice slower here)."""
    from polars.io.plugins import register_io_source

    first = next(pieces)

    def generate(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        # The sink asks for every column, no filter and no limit; honoured anyway.
        for piece in itertools.chain([first], pieces):
            if with_columns is not None:
                piece = piece.select(with_columns)
            if predicate is not None:
                piece = piece.filter(predicate)
            yield piece

    frame = register_io_source(generate, schema=first.schema, explain_name="point_in_time_join")
    frame.sink_parquet(path, compression=compression, maintain_order=True)


def _sweep(
    entity_df: pl.DataFrame,
    streams: list[_SourceStream],
    key_columns: list[str],
    workdir: Path,
    event_timestamp: str,
    chunk_rows: int,
) -> Generator[pl.DataFrame, None, None]:
    """The joined ``entity_df`` in pieces, in entity order; joined in event-time order."""
    slim = entity_df.select(pl.col(event_timestamp).alias(_TS), *key_columns)
    in_order = slim[_TS].is_sorted(nulls_last=False)
    order: pl.Series | None = None
    if not in_order:
        # Ties need no stable sort: events sharing a time get the same snapshots, and every
        # piece carries its entity positions back.
        order = slim.with_row_index(_ROW).sort(_TS, nulls_last=False).get_column(_ROW)
        slim = slim[order]
    n = entity_df.height
    spill = None if in_order else _Spill(workdir, n, chunk_rows)
    try:
        for start in range(0, n, chunk_rows):
            piece = slim.slice(start, chunk_rows)
            columns = [c for stream in streams for c in stream.join(piece)]
            if spill is None:
                yield entity_df.slice(start, piece.height).hstack(columns)
            else:
                assert order is not None
                spill.add(pl.DataFrame([order.slice(start, piece.height), *columns]))
        if spill is not None:
            # What only the join needed (the sorted events, each source's reader and state)
            # goes before the buckets are read back, when the memory peaks.
            del slim, order, piece, streams
            for first, n_rows, features in spill.buckets():
                yield entity_df.slice(first, n_rows).hstack(features)
    finally:
        if spill is not None:
            spill.close()


class _SourceStream:
    """One source read once in time order; joins pieces of events sorted by time."""

    def __init__(
        self,
        source: FeatureSource,
        entity_schema: pl.Schema,
        event_dtype: pl.DataType,
        event_timestamp: str,
        snapshot_ts_suffix: str | None,
        full_feature_names: bool,
        batch_rows: int,
    ) -> None:
        features = list(source.features) or source._default_features()
        keys = list(source.join_keys)
        created = source.created_timestamp_column
        frame = source.frame.lazy()
        schema = frame.collect_schema()
        _check_time_column(
            schema[source.timestamp_field], f"{source.name}.{source.timestamp_field}"
        )
        if created:
            _check_time_column(schema[created], f"{source.name}.{created}")
        self.common = _common_time_dtype(
            event_dtype, schema[source.timestamp_field], event_timestamp, source
        )
        self.key_names = [f"__pit_key{i}" for i in range(len(keys))]
        self.left_exprs, right_exprs = _key_exprs(
            entity_schema, schema, keys, self.key_names, source
        )
        self.ttl = source.ttl
        self.created = created
        self.out_names = source.output_names(full_feature_names)
        self.snapshot_name = (
            None if snapshot_ts_suffix is None else snapshot_column(source, snapshot_ts_suffix)
        )
        # Internal names for the features: an output name may equal a key or a time column.
        self.value_names = [f"__pit_f{i}" for i in range(len(features))]
        snap = _to_common(pl.col(source.timestamp_field), self.common).alias(_SNAP)
        columns = [
            *right_exprs,
            snap,
            *([pl.col(created).alias(_CREATED)] if created else []),
            *[pl.col(f).alias(v) for f, v in zip(features, self.value_names, strict=True)],
        ]
        # Rows without a key or a timestamp can never be "the latest before".
        usable = pl.all_horizontal(pl.col([*self.key_names, _SNAP]).is_not_null())
        # Streaming needs the source in time order; checking costs one read of the time column.
        times = frame.select(snap).drop_nulls().collect().get_column(_SNAP)
        if times.is_sorted():
            # Read in slices of the source (row groups, for parquet): collect_batches would
            # run ahead and hold the whole source when the join is slower than the reader.
            # Each slice made one contiguous chunk: the rows are gathered from it by position,
            # and a gather looks up the chunk of every index (a slice of a parquet file comes in
            # ~10 chunks: 1.5 s against 0.8 s of gathering for the fraud set at 10M). Copied
            # here, the reader's chunks are freed before the join (200 MB less at the peak than
            # copying the joined frame).
            n_rows = frame.select(pl.len()).collect().item()
            self.batches: Iterator[pl.DataFrame] = (
                frame.slice(start, batch_rows).select(columns).filter(usable).collect().rechunk()
                for start in range(0, n_rows, batch_rows)
            )
        else:
            ordered = [_SNAP, *([_CREATED] if created else [])]
            whole = frame.select(columns).filter(usable).collect()
            self.batches = whole.sort(ordered, nulls_last=False, maintain_order=True).iter_slices(
                batch_rows
            )
        del times
        self.state = frame.select(columns).clear().collect()
        self.pending: pl.DataFrame | None = None

    def _take_until(self, boundary: pl.Series) -> list[pl.DataFrame]:
        """The source rows not yet taken whose snapshot time is ``<= boundary`` (one value, a
        Series: a Python datetime would drop nanoseconds), in order."""
        taken: list[pl.DataFrame] = []
        while True:
            if self.pending is None:
                self.pending = next(self.batches, None)
                if self.pending is None:
                    return taken
            found = self.pending.get_column(_SNAP).search_sorted(boundary, side="right")
            assert isinstance(found, pl.Series)
            cut = int(found[0])
            if cut < self.pending.height:
                taken.append(self.pending.slice(0, cut))
                self.pending = self.pending.slice(cut)
                return taken
            taken.append(self.pending)
            self.pending = None

    def join(self, piece: pl.DataFrame) -> list[pl.Series]:
        """The feature (and snapshot time) columns for ``piece``, events sorted by time (nulls
        first), in the piece's order."""
        left = piece.select(pl.col(_TS).cast(self.common), *self.left_exprs)
        # The piece's last event time (sorted, nulls first); all null: nothing to take.
        boundary = left.get_column(_TS).drop_nulls().tail(1)
        new = self._take_until(boundary) if boundary.len() else []
        # Every snapshot up to the previous piece's last event is summed up by the state (the
        # latest per key); the new ones are all later, so state-then-new is in time order.
        right = pl.concat([self.state, *new], rechunk=False) if new else self.state
        if self.created and new:
            # Latest created timestamp last among equal snapshot times (join_asof "backward"
            # takes the last row of a tie); a null created timestamp loses, as in Feast; a full
            # tie keeps source order, so the last source row wins.
            right = right.sort([_SNAP, _CREATED], nulls_last=[False, False], maintain_order=True)
        # The as-of join on slim frames, then the features gathered by matched position: the
        # join would otherwise copy every feature column around (3x slower here).
        slim = right.select(
            pl.int_range(pl.len(), dtype=pl.get_index_type()).alias(_IDX),
            *self.key_names,
            _SNAP,
            pl.col(_SNAP).alias(_TS),
        )
        joined = left.join_asof(
            slim,
            on=_TS,
            by=self.key_names or None,
            strategy="backward",  # latest snapshot with time <= event time: exact included
            check_sortedness=False,  # both sides sorted by time above
        )
        if self.ttl:
            # Feast's TTL: a snapshot older than event - ttl has expired; exactly ttl old is kept.
            expired = pl.col(_SNAP) < pl.col(_TS) - pl.lit(self.ttl)
            joined = joined.select(
                pl.when(expired).then(None).otherwise(pl.col(c)).alias(c) for c in (_IDX, _SNAP)
            )
        # A null position (no snapshot) gathers nulls.
        values = right.select(self.value_names)
        if self.value_names:  # a frame of no column has no rows to take
            # Rows taken at once: one check of the indices for all columns, not one per column.
            values = values[joined.get_column(_IDX)]
        if new:
            # The latest snapshot per key, in time order: the last position of each key.
            if self.key_names:
                last = slim.group_by(self.key_names).agg(pl.col(_IDX).max()).get_column(_IDX)
                self.state = right[last.sort()]
            else:
                self.state = right.tail(1)
        out = [
            values.get_column(v).alias(name)
            for v, name in zip(self.value_names, self.out_names, strict=True)
        ]
        if self.snapshot_name is not None:
            out.append(joined.get_column(_SNAP).alias(self.snapshot_name))
        return out


# Columns of a spilled bucket put back in order at a time (8 x 8 MB per 1M rows beside the
# bucket). 4 at a time (_GATHER_BATCH) was 1-1.5 s slower for the fraud set shuffled to a file.
_SPILL_GATHER_BATCH = 8


class _Spill:
    """Joined pieces (in time order) parked by entity position, then read back bucket by
    bucket in entity order: an external shuffle that keeps one bucket in memory at a time."""

    def __init__(self, workdir: Path, n_rows: int, bucket_rows: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=".tmp-pit-spill-", dir=workdir))
        self.bucket_rows = bucket_rows
        self.n_buckets = -(-n_rows // bucket_rows)
        # Each bucket's first entity position, and the end of the last one.
        self.starts = pl.Series(range(0, (self.n_buckets + 1) * bucket_rows, bucket_rows))
        self.writers: dict[int, Any] = {}

    def add(self, piece: pl.DataFrame) -> None:
        """``piece``: the entity position (first column) and the joined columns."""
        import pyarrow as pa

        # Sorted by entity position, the piece falls into its buckets as slices, and every
        # bucket file becomes a series of sorted runs: putting a bucket back in order then reads
        # a few streams instead of jumping at random (1.6 s less for the fraud set at 10M than
        # partitioning here and sorting each bucket from scratch).
        piece = piece.sort(_ROW)
        rows = piece.get_column(_ROW).cast(self.starts.dtype)
        cuts = rows.search_sorted(self.starts, side="left").to_list()
        for b in range(self.n_buckets):
            if cuts[b + 1] == cuts[b]:
                continue
            table = piece.slice(cuts[b], cuts[b + 1] - cuts[b]).to_arrow()
            if b not in self.writers:
                self.writers[b] = pa.ipc.new_stream(str(self.dir / f"{b}.arrow"), table.schema)
            self.writers[b].write_table(table)

    def buckets(self) -> Iterator[tuple[int, int, list[pl.Series]]]:
        """(first entity position, rows, joined columns in entity order) per bucket; the
        rows are counted apart, as there may be no joined column."""
        import pyarrow as pa

        for writer in self.writers.values():
            writer.close()
        self.writers = {}
        for b in range(self.n_buckets):
            with pa.ipc.open_stream(str(self.dir / f"{b}.arrow")) as reader:
                table = reader.read_all()
            (self.dir / f"{b}.arrow").unlink()
            part = pl.from_arrow(table)
            assert isinstance(part, pl.DataFrame)
            del table
            # Put in order a few columns at a time, each released once taken: sorting the whole
            # bucket at once would hold it twice.
            order = part.get_column(_ROW).arg_sort()
            names = part.columns[1:]
            columns = part.get_columns()[1:]
            del part
            ordered = _gather(columns, order, scattered=False, batch_columns=_SPILL_GATHER_BATCH)
            yield (
                b * self.bucket_rows,
                order.len(),
                [s.alias(name) for s, name in zip(ordered, names, strict=True)],
            )

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Validation and type coercion.
# --------------------------------------------------------------------------------------------


def _check_sources(
    entity_df: pl.DataFrame,
    sources: Sequence[FeatureSource],
    event_timestamp: str,
    snapshot_ts_suffix: str | None,
    full_feature_names: bool,
) -> None:
    if event_timestamp not in entity_df.columns:
        raise ValueError(f"entities have no event timestamp column {event_timestamp!r}")
    _check_time_column(entity_df.schema[event_timestamp], f"entities.{event_timestamp}")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"two feature sources share a name: {names}")
    owner: dict[str, str] = {c: "the entities" for c in entity_df.columns}
    for source in sources:
        missing = [k for k in source.join_keys if k not in entity_df.columns]
        if missing:
            raise ValueError(
                f"entities lack the join keys {missing} of feature source {source.name!r}"
            )
        schema = (
            source.frame.collect_schema()
            if isinstance(source.frame, pl.LazyFrame)
            else source.frame.schema
        )
        needed = [*source.join_keys, source.timestamp_field, *source.features]
        if source.created_timestamp_column:
            needed.append(source.created_timestamp_column)
        absent = [c for c in needed if c not in schema]
        if absent:
            raise ValueError(f"feature source {source.name!r} has no columns {absent}")
        outputs = source.output_names(full_feature_names)
        if snapshot_ts_suffix is not None:
            outputs.append(snapshot_column(source, snapshot_ts_suffix))
        for col in outputs:
            if col in owner:
                raise ValueError(
                    f"column {col!r} of feature source {source.name!r} collides with "
                    f"{owner[col]}; rename it or pass full_feature_names=True "
                    "(columns become '<source>__<feature>')"
                )
            owner[col] = f"feature source {source.name!r}"


def _check_time_column(dtype: pl.DataType, what: str) -> None:
    if not isinstance(dtype, pl.Datetime):
        raise ValueError(f"{what} must be a Datetime column, not {dtype}")


def _common_time_dtype(
    event_dtype: pl.DataType,
    source_dtype: pl.DataType,
    event_timestamp: str,
    source: FeatureSource,
) -> pl.Datetime:
    """The Datetime both sides are compared in: the finer unit, the entities' time zone.

    Casting to the finer unit is exact; tz-aware against naive has no meaning (is a naive time
    UTC or local?), so it is refused rather than guessed.
    """
    assert isinstance(event_dtype, pl.Datetime) and isinstance(source_dtype, pl.Datetime)
    if (event_dtype.time_zone is None) != (source_dtype.time_zone is None):
        raise ValueError(
            f"entities.{event_timestamp} is {event_dtype} but "
            f"{source.name}.{source.timestamp_field} is {source_dtype}: one is tz-aware, the "
            "other naive. Make both tz-aware (UTC) with dt.replace_time_zone('UTC') first."
        )
    unit = max(event_dtype.time_unit, source_dtype.time_unit, key=_UNIT_RANK.__getitem__)
    return pl.Datetime(unit, event_dtype.time_zone)


def _to_common(expr: pl.Expr, common: pl.Datetime) -> pl.Expr:
    if common.time_zone is not None:
        # Same instant, expressed in the entities' zone: join_asof needs identical dtypes.
        expr = expr.dt.convert_time_zone(common.time_zone)
    return expr.cast(common)


def _key_exprs(
    entity_schema: pl.Schema,
    source_schema: pl.Schema,
    keys: Sequence[str],
    key_names: Sequence[str],
    source: FeatureSource,
) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """Key expressions of both sides under internal names, cast to one dtype per key."""
    left_exprs, right_exprs = [], []
    for key, name in zip(keys, key_names, strict=True):
        ldt, rdt = entity_schema[key], source_schema[key]
        target = _common_key_dtype(ldt, rdt)
        if target is None:
            raise ValueError(
                f"join key {key!r}: entities have {ldt}, feature source {source.name!r} has "
                f"{rdt}; cast one side so that both have the same type"
            )
        # strict=False: a value that does not fit the common type cannot equal any value of the
        # other side anyway; as null it matches nothing, which is the right answer.
        left_exprs.append(pl.col(key).cast(target, strict=False).alias(name))
        right_exprs.append(pl.col(key).cast(target, strict=False).alias(name))
    return left_exprs, right_exprs


def _common_key_dtype(left: pl.DataType, right: pl.DataType) -> pl.DataType | None:
    if left == right:
        return left
    if left.is_integer() and right.is_integer():
        return pl.UInt64 if left.is_unsigned_integer() and right.is_unsigned_integer() else pl.Int64
    textual = (pl.String, pl.Categorical, pl.Enum)
    if isinstance(left, textual) and isinstance(right, textual):
        return pl.String
    return None


# --------------------------------------------------------------------------------------------
# Leakage check.
# --------------------------------------------------------------------------------------------


def leaking_rows(
    joined: pl.DataFrame | pl.LazyFrame,
    sources: Sequence[FeatureSource | str],
    *,
    event_timestamp: str = "event_ts",
    snapshot_ts_suffix: str = DEFAULT_SNAPSHOT_TS_SUFFIX,
) -> int:
    """Number of rows that use a feature snapshot taken after their event: must be 0.

    A snapshot later than the event means the training row saw the future (label leakage). Reads
    the ``<source><suffix>`` columns :func:`point_in_time_join` writes; a null snapshot (no
    history) does not leak. Times are compared in the finer of the two units, so a leak shorter
    than the event column's unit is still caught.
    """
    frame = joined.lazy() if isinstance(joined, pl.DataFrame) else joined
    schema = frame.collect_schema()
    event_dtype = schema[event_timestamp]
    conditions = []
    for source in sources:
        col = snapshot_column(source, snapshot_ts_suffix)
        if col not in schema:
            raise ValueError(f"no snapshot column {col!r} in the joined frame")
        snap_dtype = schema[col]
        _check_time_column(snap_dtype, col)
        assert isinstance(event_dtype, pl.Datetime) and isinstance(snap_dtype, pl.Datetime)
        unit = max(event_dtype.time_unit, snap_dtype.time_unit, key=_UNIT_RANK.__getitem__)
        conditions.append(
            pl.col(col).cast(pl.Datetime(unit, snap_dtype.time_zone))
            > pl.col(event_timestamp).cast(pl.Datetime(unit, event_dtype.time_zone))
        )
    if not conditions:
        return 0
    leaking = pl.any_horizontal(conditions).fill_null(False)
    return int(frame.select(leaking.sum()).collect().item())


def feature_columns(
    sources: Sequence[FeatureSource], *, full_feature_names: bool = False
) -> Mapping[str, list[str]]:
    """Per source name, the feature columns it adds to a joined frame (for selecting them)."""
    return {s.name: s.output_names(full_feature_names) for s in sources}


__all__ = [
    "DEFAULT_SNAPSHOT_TS_SUFFIX",
    "FeatureSource",
    "feature_columns",
    "iter_point_in_time_join",
    "leaking_rows",
    "point_in_time_join",
    "scan_offline_source",
    "snapshot_column",
    "write_point_in_time_join",
]
