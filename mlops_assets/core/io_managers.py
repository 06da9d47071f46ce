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

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.storage.upath_io_manager import escape_dotdot_segments, is_dict_type

from mlops_assets.core import reporting, storage
from mlops_assets.core.locks import lock_space
from mlops_assets.core.profiles import Settings, load_settings
from mlops_assets.core.publishing import Publisher

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath


class ParquetIOManager(dg.UPathIOManager):
    """Stores frames as parquet files, written all-or-nothing (see :mod:`mlops_assets.core.storage`).

    Assets with blocking checks publish through :attr:`publisher` instead (write, audit,
    publish: :mod:`mlops_assets.core.publishing`); every input, and every read of
    :meth:`read_partitions`, is refused while the partition's latest version stands rejected.
    ``lock_space``: where the deployment's locks live (:func:`mlops_assets.core.locks.lock_space`).
    """

    extension = ".parquet"

    def __init__(self, base_path: UPath, lock_space: str = "") -> None:
        super().__init__(base_path=base_path)
        if not lock_space:
            # Without the deployment's lock space (the resource built by hand): a folder beside
            # the data, or for a bucket one on this machine, which serialises this machine's
            # publishers only. `from_settings` always passes the deployment's.
            lock_space = (
                str(base_path / "_locks")
                if storage.is_local(base_path)
                else str(Path(tempfile.gettempdir()) / f"mlops-assets-locks-{os.getuid()}")
            )
        self.publisher = Publisher(base_path, self.output_path, lock_space)

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        # Partition keys come from users (static partitions, file names); ".." must not escape the root.
        return super().make_safe_partition_path(base_path, escape_dotdot_segments(partition))

    def make_directory(self, path: UPath) -> None:
        # Object stores have no folders, and on disk atomic_write creates the parent itself.
        if storage.is_local(path):
            super().make_directory(path)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        table = storage.to_arrow(obj)
        self.publisher.sweep_temporary(path)
        digest = storage.write_parquet(path, table, tmp_dir=self.publisher.tmp_dir)
        context.add_output_metadata(
            {
                **reporting.table_metadata(table),
                "data_version": dg.MetadataValue.text(digest),
                "size_bytes": dg.MetadataValue.int(path.stat().st_size),
            }
        )
        _record_data_version(context, digest)

    @property
    def root(self) -> UPath:
        """The root every asset path is under (a folder, or ``s3://bucket/prefix``)."""
        return self._base_path

    def partition_path(self, asset_key: dg.AssetKey, partition_key: str) -> UPath:
        """Where this IO manager keeps ``partition_key`` of ``asset_key`` (what inputs read)."""
        folder = self._base_path.joinpath(*asset_key.path)
        return self._with_extension(self.make_safe_partition_path(folder, partition_key))

    def output_path(self, asset_key: dg.AssetKey, partition_key: str | None = None) -> UPath:
        """Where the published data of ``asset_key`` (its partition, if any) lives."""
        if partition_key is not None:
            return self.partition_path(asset_key, partition_key)
        return self._with_extension(self._base_path.joinpath(*asset_key.path))

    def write_partitions(
        self, asset_key: dg.AssetKey, frames: Mapping[str, Any]
    ) -> dg.MaterializeResult:
        """Store several partitions of ``asset_key`` from one step, each as this IO manager would.

        For single-run backfills (``BackfillPolicy.single_run()``, which ``dagster asset
        materialize --partition-range`` needs): Dagster hands a ranged step one output for all its
        partitions, which an IO manager cannot split, so the asset writes its days here and
        returns the result. Each partition is written atomically; downstream inputs read them
        through the IO manager as usual. The data version is the partition's content hash, or for
        a range a hash over each partition's hash (Dagster records one version per step).
        """
        if not frames:
            raise ValueError(f"no partition of {asset_key.to_user_string()} to write")
        hashes: dict[str, str] = {}
        rows: dict[str, int] = {}
        first = None
        self.publisher.sweep_temporary(self.partition_path(asset_key, min(frames)))
        for partition_key in sorted(frames):
            table = storage.to_arrow(frames[partition_key])
            first = first if first is not None else table
            hashes[partition_key] = storage.write_parquet(
                self.partition_path(asset_key, partition_key),
                table,
                tmp_dir=self.publisher.tmp_dir,
            )
            rows[partition_key] = table.num_rows
        if len(hashes) == 1:
            version = next(iter(hashes.values()))
        else:
            joined = "\n".join(f"{key}:{digest}" for key, digest in hashes.items())
            version = hashlib.sha256(joined.encode()).hexdigest()
        metadata = {
            **reporting.table_metadata(first),
            "dagster/row_count": dg.MetadataValue.int(sum(rows.values())),
            "data_version": dg.MetadataValue.text(version),
            "partitions": dg.MetadataValue.md(
                reporting.markdown_table(
                    [{"partition": k, "rows": rows[k], "data_version": hashes[k]} for k in hashes],
                    ["partition", "rows", "data_version"],
                )
            ),
        }
        return dg.MaterializeResult(
            asset_key=asset_key, metadata=metadata, data_version=dg.DataVersion(version)
        )

    def read_partitions(
        self, asset_key: dg.AssetKey, partition_keys: list[str]
    ) -> tuple[pa.Table, dict[str, str]]:
        """Read several partitions of ``asset_key`` as one table, with each one's data version.

        For assets whose input window is a run setting rather than a fixed partition mapping.
        The data version of a partition is the sha256 of its bytes, as recorded when it was
        written, so the versions returned are the lineage of what was read. Missing partitions
        raise ``FileNotFoundError`` naming all of them, so the user knows what to backfill.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.publisher.refuse_rejected(asset_key, partition_keys)
        paths = {key: self.partition_path(asset_key, key) for key in partition_keys}
        missing = [key for key, path in paths.items() if not path.exists()]
        if missing:
            raise FileNotFoundError(
                f"{asset_key.to_user_string()} has no partition {', '.join(missing)}: "
                "materialize (backfill) it first"
            )
        tables, versions = [], {}
        for key, path in paths.items():
            data = path.read_bytes()
            versions[key] = hashlib.sha256(data).hexdigest()
            tables.append(pq.read_table(pa.BufferReader(data)))
        return pa.concat_tables(tables), versions

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return _as_requested_type(storage.read_parquet(path), context)

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_key:
            partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
            self.publisher.refuse_rejected(context.asset_key, list(partitions))
        loaded = super().load_input(context)
        wanted = context.dagster_type.typing_type
        if not isinstance(loaded, dict) or is_dict_type(wanted):
            return loaded
        # Several partitions for an input annotated as one frame: concatenate in partition order.
        return _concat([loaded[key] for key in context.asset_partition_keys if key in loaded])


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


# The resource key of Dagster's filesystem IO manager for op outputs that are not assets (the
# grid points of a graph-backed asset): stored under the instance's storage, per run, where
# Dagster keeps step outputs, never in the data root beside the assets.
STEP_IO_MANAGER = "step_io_manager"


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
    """Parquet IO manager rooted at the profile's data root (``.data/`` or ``s3://<bucket>``).

    ``root`` is a local path or an ``s3://`` URL; ``s3_endpoint_url`` points the S3 client at
    MinIO (or moto in tests). Credentials come from the standard AWS variables, never from config.
    """

    root: str
    s3_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    lock_space: str = ""

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ParquetIOManagerResource:
        settings = settings or load_settings()
        return cls(
            root=settings.data_root,
            s3_endpoint_url=settings.s3_endpoint_url if settings.data_on_s3 else "",
            aws_region=settings.aws_region,
            lock_space=lock_space(settings),
        )

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(
            base_path=storage.make_upath(self.root, self.s3_endpoint_url, self.aws_region),
            lock_space=self.lock_space,
        )
