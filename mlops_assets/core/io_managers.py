"""The parquet IO manager: one code path for local disk and for S3 behind a custom endpoint.

Assets return pandas or Polars frames (or Arrow tables); the IO manager stores them at
``<root>/<asset key path>/<partition>.parquet`` with fixed writer options, so the same frame gives
the same bytes. Every output records its row count, column schema, a preview and its data version,
which is the sha256 of the bytes written: re-materializing a partition with the same code and
inputs yields the same data version, and Dagster can tell a real change from a re-run.

Inputs come back in the type the downstream asset asks for (``pl.DataFrame``, ``pa.Table`` or
pandas, the default). An input spanning several partitions comes back as one frame in partition
order, or as ``dict[partition_key, frame]`` when annotated as a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core import reporting, storage
from mlops_assets.core.asset_store import EXTENSION, AssetStore
from mlops_assets.core.storage import safe_segment

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

    from mlops_assets.core.profiles import Settings


class ParquetIOManager(dg.UPathIOManager):
    """Loads and stores asset outputs through the :class:`AssetStore`, one partition a file.

    Assets with blocking checks publish through the store's publisher instead (write, audit,
    publish: :mod:`mlops_assets.core.publishing`); every input is refused while the partition's
    latest version stands rejected.
    """

    extension = EXTENSION

    def __init__(self, store: AssetStore) -> None:
        super().__init__(base_path=store.base)
        self.store = store

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        # Partition keys come from users (static partitions, file names); ".." must not escape the root.
        return base_path / safe_segment(partition)

    def make_directory(self, path: UPath) -> None:
        # Object stores have no folders, and on disk atomic_write creates the parent itself.
        if storage.is_local(path):
            super().make_directory(path)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        digest, table = self.store.write_file(path, obj)
        context.add_output_metadata(
            {
                **reporting.table_metadata(table),
                "data_version": dg.MetadataValue.text(digest),
                "size_bytes": dg.MetadataValue.int(path.stat().st_size),
            }
        )
        _record_data_version(context, digest)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return _as_requested_type(storage.read_parquet(path), context)

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_key:
            partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
            self.store.publisher.refuse_rejected(context.asset_key, list(partitions))
        loaded = super().load_input(context)
        wanted = context.dagster_type.typing_type
        if not isinstance(loaded, dict) or _is_dict_type(wanted):
            return loaded
        # Several partitions for an input annotated as one frame: concatenate in partition order.
        return _concat([loaded[key] for key in context.asset_partition_keys if key in loaded])


def _is_dict_type(annotation: Any) -> bool:
    """An input annotated as ``dict[...]`` / ``Mapping[...]`` gets one frame per partition."""
    import typing

    origin = typing.get_origin(annotation) or annotation
    return origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping))


def _record_data_version(context: dg.OutputContext, digest: str) -> None:
    """Make the content hash the asset's Dagster data version.

    Dagster otherwise derives a data version from the code version and the input versions, which
    changes on every re-run of an unversioned asset. A content hash changes only when the bytes do.
    With several partitions in one output there is no single hash, so Dagster's own is kept.
    """
    if not context.has_asset_key or context.step_context is None:
        return
    if context.has_asset_partitions and len(context.asset_partition_keys) != 1:
        return
    context.step_context.set_data_version(context.asset_key, dg.DataVersion(digest))


# Input metadata naming the frame type to load, for inputs that are not annotated with it (an
# annotation needs the library imported when the code location loads; Polars costs ~0.2 s).
LOAD_AS = "load_as"


# The resource key of the IO manager for op outputs that are not assets (the grid points of a
# graph-backed asset): kept per run, never beside the assets. Locally, Dagster's filesystem IO
# manager under the instance's storage; on the stack, :class:`StepOutputIOManager` in the
# bucket, because a step may run on another machine (a Celery worker, a Kubernetes Job) than the
# step that reads its output.
STEP_IO_MANAGER = "step_io_manager"


class StepOutputIOManager(dg.UPathIOManager):
    """Pickled op outputs at ``<data root>/_steps/<run id>/<step key>/<output>``, written
    atomically through the store, readable from any machine that reads the data root."""

    extension = ".pickle"

    def __init__(self, store: AssetStore) -> None:
        super().__init__(base_path=store.base / "_steps")

    def make_directory(self, path: UPath) -> None:
        if storage.is_local(path):
            super().make_directory(path)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        import pickle

        storage.atomic_write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        import pickle

        return pickle.loads(path.read_bytes())


class StepOutputIOManagerResource(dg.ConfigurableIOManagerFactory):
    """:class:`StepOutputIOManager` over the deployment's :class:`AssetStore`."""

    store: AssetStore

    def create_io_manager(self, context: dg.InitResourceContext) -> StepOutputIOManager:
        return StepOutputIOManager(self.store)


def frame_input(
    key: dg.AssetKey,
    *,
    load_as: str = "polars",
    partition_mapping: dg.PartitionMapping | None = None,
) -> dg.AssetIn:
    """An asset input that the parquet IO manager loads as ``load_as`` ("polars", "arrow" or
    "pandas"), whatever the parameter's annotation."""
    return dg.AssetIn(key, partition_mapping=partition_mapping, metadata={LOAD_AS: load_as})


def _as_requested_type(table: pa.Table, context: dg.InputContext) -> Any:
    wanted = context.dagster_type.typing_type
    module = getattr(wanted, "__module__", "") or ""
    requested = (context.definition_metadata or {}).get(LOAD_AS)
    if requested is not None:
        module = {"polars": "polars", "arrow": "pyarrow", "pandas": "pandas"}[requested]
    if module.startswith("polars"):
        import polars as pl

        return pl.from_arrow(table)
    if module.startswith("pyarrow"):
        return table
    return table.to_pandas()


def _concat(frames: list[Any]) -> Any:
    if not frames:
        raise ValueError("no partition of the input could be loaded")
    first = frames[0]
    module = type(first).__module__
    if module.startswith("polars"):
        import polars as pl

        return pl.concat(frames, how="vertical_relaxed")
    if module.startswith("pyarrow"):
        import pyarrow as pa

        return pa.concat_tables(frames, promote_options="permissive")
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


class ParquetIOManagerResource(dg.ConfigurableIOManagerFactory):
    """The parquet IO manager over the deployment's :class:`AssetStore` (the same resource the
    assets ask for, so an asset's inputs and its own reads see the same data)."""

    store: AssetStore

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ParquetIOManagerResource:
        return cls(store=AssetStore.from_settings(settings))

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(self.store)
