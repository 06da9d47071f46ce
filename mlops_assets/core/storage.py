"""Where asset data lives, and how it is written so that readers never see half of it.

The same code writes to local disk (``local`` profile) and to an S3 bucket behind a custom
endpoint such as MinIO (``stack`` profile), through ``universal-pathlib``.

Writes are all-or-nothing:

* on disk, the bytes go to a hidden temporary file in the target's folder, are flushed to the disk,
  and the file is renamed over the target (``os.replace`` is atomic on POSIX);
* on S3, the file is uploaded in one PUT (or one multipart upload), and S3 only shows an object
  once its upload completes.

Pointers (``_LATEST``, ``_CURRENT``) and manifests are written last, so a killed run leaves nothing
that a reader would take for data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

# Temporary files that a write leaves beside its target start with this prefix (pointers and
# packages: nobody scans their folders). Asset data never does: see TMP_DIR.
TEMP_PREFIX = ".tmp-"
# The folder under a data root that holds the temporary files of its writes: outside every asset
# folder, because some readers (Feast's file source, DuckDB globs) read every file of a folder,
# hidden or not, and a write killed half-way must not break them. On the same disk as the
# targets, so the final rename stays atomic.
TMP_DIR = "_tmp"
_LEGACY_TEMP = re.compile(r"^\.tmp-[0-9a-f]{32}-")
LATEST = "_LATEST"
CURRENT = "_CURRENT"


def make_upath(root: str, s3_endpoint_url: str = "", aws_region: str = "us-east-1") -> UPath:
    """A ``UPath`` for a local folder or an ``s3://`` URL behind an optional custom endpoint.

    Credentials are not passed here: boto's chain reads them from the standard AWS variables.
    """
    from upath import UPath

    if not root.startswith("s3://"):
        return UPath(root)
    client_kwargs: dict[str, Any] = {"region_name": aws_region}
    if s3_endpoint_url:
        client_kwargs["endpoint_url"] = s3_endpoint_url
    # (s3fs's listing cache is off in every process of the project: mlops_assets/__init__.py.)
    return UPath(root, client_kwargs=client_kwargs)


def safe_segment(partition_key: str) -> str:
    """A partition key as a path below its asset's folder: a ``..`` segment (keys come from users:
    static partitions, file names) is escaped so that it cannot climb out of the root."""
    return "/".join("%2E%2E" if part == ".." else part for part in partition_key.split("/"))


def is_local(path: UPath | Path) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


def _local(path: UPath | Path) -> Path:
    return Path(path.path if hasattr(path, "path") else path)


def atomic_write(
    path: UPath | Path, write: Callable[[Path], None], *, tmp_dir: UPath | Path | None = None
) -> None:
    """Write ``path`` all-or-nothing: ``write`` fills a local temporary file that is then published.

    If ``write`` raises or the process dies, the target is untouched. The temporary file is in
    ``tmp_dir`` (same disk; named after this process, so :func:`sweep_temporary_files` can tell a
    dead writer's leftovers) or, without it, a hidden ``.tmp-`` file beside the target.
    """
    if is_local(path):
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if tmp_dir is not None:
            folder = _local(tmp_dir)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{os.getpid()}-{uuid.uuid4().hex}-{target.name}"
        else:
            tmp = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{target.name}"
        try:
            write(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(target.parent)
        return

    # Object stores have no rename; an upload is already all-or-nothing, so stage locally and PUT.
    with tempfile.TemporaryDirectory(prefix="mlops-upload-") as tmpdir:
        tmp = Path(tmpdir) / "payload"
        write(tmp)
        path.fs.put_file(str(tmp), _fs_path(path))
        path.fs.invalidate_cache(_fs_path(path.parent))


def _fs_path(path: UPath) -> str:
    return path.path


def sweep_temporary_files(tmp_dir: Path) -> int:
    """Remove the temporary files in ``tmp_dir`` of processes that are gone (killed mid-write).

    Files of live processes stay: they may be writing. Returns how many were removed.
    """
    removed = 0
    if not tmp_dir.is_dir():
        return removed
    for entry in tmp_dir.iterdir():
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


def sweep_legacy_temporary_files(folder: Path) -> int:
    """Remove ``.tmp-`` files that writes of earlier versions left inside an asset folder."""
    removed = 0
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if _LEGACY_TEMP.match(entry.name):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def content_hash(path: UPath | Path) -> str | None:
    """The sha256 of the file at ``path``, or ``None`` when there is none."""
    try:
        if is_local(path):
            return sha256_file(_local(path))
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable: without this a crash can forget it
    even after ``os.replace``."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def user_cache_dir(*parts: str) -> Path:
    """A folder of this project in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``): what
    a process may reuse from an earlier one, and recompute when it is missing or unwritable."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base.joinpath("mlops_assets", *parts)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of this machine, held on ``path`` (created if missing).

    For state kept in one local file that its library rewrites without a lock of its own (a
    fresh MLflow SQLite database, Feast's file registry).
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Materialization metadata of a step that wrote several partitions: {partition: content hash}.
# Dagster records one data version per step (a hash over all of them, on every partition's event);
# this entry keeps each partition's own, the one a later single-partition run would record.
PARTITION_DATA_VERSIONS = "partition_data_versions"


def combined_version(hashes: Mapping[str | None, str]) -> str:
    """The data version of several partitions read or written together: one partition's own
    content hash, or a hash over each partition's key and hash (in partition order)."""
    if len(hashes) == 1:
        return next(iter(hashes.values()))
    joined = "\n".join(f"{k}:{v}" for k, v in sorted(hashes.items(), key=lambda kv: kv[0] or ""))
    return hashlib.sha256(joined.encode()).hexdigest()


def atomic_write_bytes(
    path: UPath | Path, data: bytes, *, tmp_dir: UPath | Path | None = None
) -> None:
    """Write ``data`` to ``path`` all-or-nothing."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data), tmp_dir=tmp_dir)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# -- Parquet ---------------------------------------------------------------------------------

# Fixed writer options: the same table gives the same bytes, hence the same content hash.
PARQUET_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 1 << 20,
}


def to_arrow(obj: Any) -> pa.Table:
    """A pandas or Polars frame (or an Arrow table) as an Arrow table, index dropped."""
    import pyarrow as pa

    if isinstance(obj, pa.Table):
        return obj
    module = type(obj).__module__
    if module.startswith("polars"):
        return obj.to_arrow()
    if module.startswith("pandas"):
        # `DataFrame.attrs` would be stored in the pandas metadata of the file: run-time notes
        # (timings, diagnostics) there would make the same data give different bytes.
        if obj.attrs:
            obj = obj.copy(deep=False)
            obj.attrs = {}
        return pa.Table.from_pandas(obj, preserve_index=False)
    raise TypeError(
        f"cannot store a {type(obj).__name__} as parquet: return a pandas or Polars DataFrame "
        "or a pyarrow Table"
    )


def write_parquet(
    path: UPath | Path, table: pa.Table, *, tmp_dir: UPath | Path | None = None
) -> str:
    """Write ``table`` to ``path`` atomically; return the content hash (sha256 of the bytes).

    ``tmp_dir``: where the temporary file goes (see :func:`atomic_write`)."""
    import pyarrow.parquet as pq

    digest: dict[str, str] = {}

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, **PARQUET_WRITE_OPTIONS)
        digest["sha256"] = sha256_file(tmp)

    atomic_write(path, write, tmp_dir=tmp_dir)
    return digest["sha256"]


def read_parquet(path: UPath | Path) -> pa.Table:
    import pyarrow.parquet as pq

    if is_local(path):
        return pq.read_table(_local(path))
    with path.open("rb") as fh:
        return pq.read_table(fh)


# -- Pointers and versioned datasets ---------------------------------------------------------


def write_pointer(
    path: UPath | Path, payload: dict[str, Any], *, tmp_dir: UPath | Path | None = None
) -> None:
    """Write a small JSON pointer object atomically (sorted keys: same payload, same bytes)."""
    atomic_write_bytes(
        path, json.dumps(payload, sort_keys=True, indent=2).encode() + b"\n", tmp_dir=tmp_dir
    )


def read_pointer(path: UPath | Path) -> dict[str, Any] | None:
    """The pointer's payload, or ``None`` if no pointer was ever written."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset: ``dt=<day>/run_id=<run>/data.parquet``."""

    dt: str
    run_id: str
    data_version: str
    row_count: int
    written_at: str
    extra: dict[str, Any]

    @property
    def relative_dir(self) -> str:
        return f"dt={self.dt}/run_id={self.run_id}"


_VERSION_NAME = re.compile(r"dt=(?P<dt>[^/]+)/run_id=(?P<run_id>[^/]+)")


def version_name(partition: str, run_id: str) -> str:
    """How a version of a :class:`VersionedDataset` is named where it is recorded (an MLflow run
    tag, a report): ``dt=<partition>/run_id=<run>``, its folder under the dataset."""
    return f"dt={partition}/run_id={run_id}"


def parse_version_name(name: str) -> tuple[str, str] | None:
    """(partition, run id) of a :func:`version_name`; None when ``name`` is not one."""
    match = _VERSION_NAME.fullmatch(name)
    return (match["dt"], match["run_id"]) if match else None


class VersionedDataset:
    """A dataset kept as immutable versions, with ``_LATEST`` and ``_CURRENT`` pointers.

    * ``_LATEST`` names the version written last. Consumers that want the newest data read it.
    * ``_CURRENT`` names the version approved for use (moved by :meth:`promote`, e.g. after the
      asset's checks passed). A bad version can be written without ever becoming current.

    Both exist at the dataset's root (across days) and in each ``dt=<day>/`` folder (that day's
    versions), so a consumer of one partition reads ``dt=<day>/_CURRENT``.

    Each version folder holds ``data.parquet`` then ``manifest.json``; a folder without a manifest
    is an interrupted write and is never pointed at.
    """

    DATA = "data.parquet"
    MANIFEST = "manifest.json"

    def __init__(self, root: UPath | Path) -> None:
        self.root = root

    def version_dir(self, dt: str, run_id: str) -> UPath | Path:
        return self.root / f"dt={dt}" / f"run_id={run_id}"

    def write(
        self, dt: str, run_id: str, frame: Any, extra: dict[str, Any] | None = None
    ) -> DatasetVersion:
        """Write one version: data, then manifest, then ``_LATEST``. Returns its manifest."""
        table = to_arrow(frame)
        folder = self.version_dir(dt, run_id)
        data_version = write_parquet(folder / self.DATA, table)
        version = DatasetVersion(
            dt=dt,
            run_id=run_id,
            data_version=data_version,
            row_count=table.num_rows,
            written_at=datetime.now(UTC).isoformat(timespec="seconds"),
            extra=dict(extra or {}),
        )
        write_pointer(folder / self.MANIFEST, asdict(version))
        write_pointer(self.root / f"dt={dt}" / LATEST, asdict(version))
        write_pointer(self.root / LATEST, asdict(version))
        return version

    def promote(self, version: DatasetVersion) -> None:
        """Make ``version`` the one consumers read through ``_CURRENT``."""
        if read_pointer(self.version_dir(version.dt, version.run_id) / self.MANIFEST) is None:
            raise FileNotFoundError(f"no complete version {version.relative_dir} under {self.root}")
        write_pointer(self.root / f"dt={version.dt}" / CURRENT, asdict(version))
        write_pointer(self.root / CURRENT, asdict(version))

    def _resolve(self, pointer: str, dt: str | None) -> DatasetVersion | None:
        folder = self.root / f"dt={dt}" if dt else self.root
        payload = read_pointer(folder / pointer)
        return DatasetVersion(**payload) if payload else None

    def latest(self, dt: str | None = None) -> DatasetVersion | None:
        """The version written last (of day ``dt``, if given)."""
        return self._resolve(LATEST, dt)

    def current(self, dt: str | None = None) -> DatasetVersion | None:
        """The version approved for use (of day ``dt``, if given)."""
        return self._resolve(CURRENT, dt)

    def read(self, version: DatasetVersion) -> pa.Table:
        return read_parquet(self.version_dir(version.dt, version.run_id) / self.DATA)

    def versions(self) -> Iterator[DatasetVersion]:
        """Every complete version (those with a manifest), oldest day first."""
        if not self.root.exists():
            return
        for day in sorted(p for p in self.root.iterdir() if p.name.startswith("dt=")):
            for run in sorted(p for p in day.iterdir() if p.name.startswith("run_id=")):
                payload = read_pointer(run / self.MANIFEST)
                if payload:
                    yield DatasetVersion(**payload)
