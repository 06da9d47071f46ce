"""The asset store: where every asset's data lives, and the only code that reads and writes it.

One root (a folder, or ``s3://bucket/prefix`` behind a custom endpoint such as MinIO) holds

* ``<root>/<asset key path>/<partition>.parquet``: a partition of a partitioned asset;
* ``<root>/<asset key path>.parquet``: an unpartitioned asset;
* ``<root>/<asset key path>/dt=<day>/run_id=<run>/``: a versioned dataset (training sets), with
  its ``_LATEST`` / ``_CURRENT`` pointers (:class:`~mlops_assets.core.storage.VersionedDataset`);
* ``<root>/<asset key path>/<name>/``: an asset's own files (deployment packages, reports);
* the write-audit-publish trees of :mod:`mlops_assets.core.publishing` (``_staging``,
  ``_quarantine``, ``_rejected``, ``_publishing``) and the temporary files of writes (``_tmp``).

Assets ask for it as a resource parameter (``asset_store: AssetStore``) when they read or write
more than the one output Dagster hands to the IO manager: a window of earlier days, a range of
partitions from one step, a versioned dataset, files. The parquet IO manager
(:mod:`mlops_assets.core.io_managers`) is a thin layer over the same store, so what an asset writes
here is what its downstream inputs load.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core import reporting, storage
from mlops_assets.core.publishing import Publisher
from mlops_assets.core.storage import safe_segment

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

    from mlops_assets.core.profiles import Settings

EXTENSION = ".parquet"


@dataclass(frozen=True)
class _Opened:
    """The store's root and publisher, built once per configuration and process."""

    root: UPath
    publisher: Publisher


@functools.lru_cache(maxsize=64)
def _open(root: str, s3_endpoint_url: str, aws_region: str, lock_space: str) -> _Opened:
    base = storage.make_upath(root, s3_endpoint_url, aws_region)
    if not lock_space:
        # Without the deployment's lock space (the resource built by hand): a folder beside the
        # data, or for a bucket one on this machine, which serialises this machine's publishers
        # only. `from_settings` always passes the deployment's.
        lock_space = (
            str(base / "_locks")
            if storage.is_local(base)
            else str(Path(tempfile.gettempdir()) / f"mlops-assets-locks-{os.getuid()}")
        )

    def published(key: dg.AssetKey, partition_key: str | None) -> UPath:
        return _path(base, key, partition_key)

    return _Opened(base, Publisher(base, published, lock_space))


def _path(base: UPath, key: dg.AssetKey, partition_key: str | None) -> UPath:
    if partition_key is None:
        folder = base.joinpath(*key.path)
        return folder.with_name(folder.name + EXTENSION)
    return base.joinpath(*key.path, safe_segment(partition_key) + EXTENSION)


class AssetStore(dg.ConfigurableResource):
    """Asset data under the profile's data root (``.data/`` or ``s3://<bucket>``).

    ``root`` is a local path or an ``s3://`` URL; ``s3_endpoint_url`` points the S3 client at
    MinIO (or moto in tests). Credentials come from the standard AWS variables, never from config.
    ``lock_space``: where the deployment's locks live (:func:`mlops_assets.core.locks.lock_space`).
    """

    root: str
    s3_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    lock_space: str = ""

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> AssetStore:
        from mlops_assets.core.locks import lock_space
        from mlops_assets.core.profiles import load_settings

        settings = settings or load_settings()
        return cls(
            root=settings.data_root,
            s3_endpoint_url=settings.s3_endpoint_url if settings.data_on_s3 else "",
            aws_region=settings.aws_region,
            lock_space=lock_space(settings),
        )

    @property
    def _opened(self) -> _Opened:
        return _open(self.root, self.s3_endpoint_url, self.aws_region, self.lock_space)

    # -- where ------------------------------------------------------------------------------

    @property
    def base(self) -> UPath:
        """The root every asset path is under, as a path (a folder, or an ``s3://`` URL)."""
        return self._opened.root

    @property
    def publisher(self) -> Publisher:
        """The write-audit-publish machinery of this root (:mod:`mlops_assets.core.publishing`)."""
        return self._opened.publisher

    def folder(self, key: dg.AssetKey) -> UPath:
        """The folder of ``key``: its partitions, versions and files live below it."""
        return self.base.joinpath(*key.path)

    def path(self, key: dg.AssetKey, partition_key: str | None = None) -> UPath:
        """Where the published data of ``key`` (its partition ``partition_key``, if any) lives."""
        return _path(self.base, key, partition_key)

    def published_partitions(self, key: dg.AssetKey) -> set[str]:
        """The partitions of ``key`` that have published data: one listing of its folder, not a
        request per partition (on S3 each would be a round trip)."""
        folder = self.folder(key)
        if not folder.exists():
            return set()
        return {
            p.name.removesuffix(EXTENSION) for p in folder.iterdir() if p.name.endswith(EXTENSION)
        }

    def versioned(self, key: dg.AssetKey) -> storage.VersionedDataset:
        """``key`` kept as immutable versions with ``_LATEST``/``_CURRENT`` pointers."""
        return storage.VersionedDataset(self.folder(key))

    # -- reading ----------------------------------------------------------------------------

    def read_partitions(
        self, key: dg.AssetKey, partition_keys: list[str]
    ) -> tuple[pa.Table, dict[str, str]]:
        """Several partitions of ``key`` as one table, with each one's data version.

        For assets whose input window is a run setting or the published history rather than a
        fixed partition mapping. The data version of a partition is the sha256 of its bytes, as
        recorded when it was written, so the versions returned are the lineage of what was read.
        Missing partitions raise ``FileNotFoundError`` naming all of them, so the user knows what
        to backfill.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.publisher.refuse_rejected(key, partition_keys)
        paths = {p: self.path(key, p) for p in partition_keys}
        missing = [p for p, path in paths.items() if not path.exists()]
        if missing:
            raise FileNotFoundError(
                f"{key.to_user_string()} has no partition {', '.join(missing)}: "
                "materialize (backfill) it first"
            )
        tables, versions = [], {}
        for partition_key, path in paths.items():
            data = path.read_bytes()
            versions[partition_key] = hashlib.sha256(data).hexdigest()
            tables.append(pq.read_table(pa.BufferReader(data)))
        return pa.concat_tables(tables), versions

    def available_partitions(
        self, key: dg.AssetKey, partition_keys: list[str]
    ) -> dict[str, pa.Table]:
        """The published partitions of ``key`` among ``partition_keys`` (``{key: table}``),
        leaving out, instead of raising like :meth:`read_partitions`, those not materialized yet
        or whose latest version was rejected by its checks: for monitors, which judge what there
        is and name what is missing."""
        from mlops_assets.core.publishing import RejectedPartitionError

        published = self.published_partitions(key)
        found = {}
        for partition_key in partition_keys:
            if partition_key not in published:
                continue
            try:
                self.publisher.refuse_rejected(key, [partition_key])
            except RejectedPartitionError:
                continue
            found[partition_key] = storage.read_parquet(self.path(key, partition_key))
        return found

    # -- writing ----------------------------------------------------------------------------

    def write_file(self, path: UPath, frame: Any) -> tuple[str, pa.Table]:
        """Write ``frame`` at ``path`` (one partition's file, as :meth:`path` names it)
        all-or-nothing, after sweeping the temporary files of writers that died; returns its
        content hash (the data version) and the table written. What the IO manager stores."""
        table = storage.to_arrow(frame)
        self.publisher.sweep_temporary(path)
        return storage.write_parquet(path, table, tmp_dir=self.publisher.tmp_dir), table

    def write_partitions(self, key: dg.AssetKey, frames: Mapping[str, Any]) -> dg.MaterializeResult:
        """Store several partitions of ``key`` from one step and describe them for Dagster.

        For single-run backfills (``BackfillPolicy.single_run()``, which ``dagster asset
        materialize --partition-range`` needs): Dagster hands a ranged step one output for all its
        partitions, which an IO manager cannot split, so the asset writes its days here and
        returns the result. Each partition is written atomically; downstream inputs read them
        through the IO manager as usual. The data version is the partition's content hash, or for
        a range a hash over each partition's hash (Dagster records one version per step); each
        partition's own hash is the metadata entry ``partition_data_versions``.
        """
        if not frames:
            raise ValueError(f"no partition of {key.to_user_string()} to write")
        hashes: dict[str, str] = {}
        rows: dict[str, int] = {}
        first = None
        self.publisher.sweep_temporary(self.path(key, min(frames)))
        for partition_key in sorted(frames):
            table = storage.to_arrow(frames[partition_key])
            first = first if first is not None else table
            hashes[partition_key] = storage.write_parquet(
                self.path(key, partition_key), table, tmp_dir=self.publisher.tmp_dir
            )
            rows[partition_key] = table.num_rows
        version = storage.combined_version(hashes)
        metadata = {
            **reporting.table_metadata(first),
            "dagster/row_count": dg.MetadataValue.int(sum(rows.values())),
            "data_version": dg.MetadataValue.text(version),
            storage.PARTITION_DATA_VERSIONS: dg.MetadataValue.json(hashes),
            "partitions": dg.MetadataValue.md(
                reporting.markdown_table(
                    [{"partition": p, "rows": rows[p], "data_version": hashes[p]} for p in hashes],
                    ["partition", "rows", "data_version"],
                )
            ),
        }
        return dg.MaterializeResult(
            asset_key=key, metadata=metadata, data_version=dg.DataVersion(version)
        )


def store_resources(root: str, s3_endpoint_url: str = "", **kwargs: Any) -> dict[str, Any]:
    """The asset store of ``root`` and the parquet IO manager over it, under their resource keys:
    what a code location (or a test) binds so that assets and their inputs see the same data."""
    from mlops_assets.core.io_managers import ParquetIOManagerResource

    store = AssetStore(root=root, s3_endpoint_url=s3_endpoint_url, **kwargs)
    return {"asset_store": store, "io_manager": ParquetIOManagerResource(store=store)}
