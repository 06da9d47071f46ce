"""All-or-nothing writes, pointers and versioned datasets, on disk and on moto's S3 server."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from mlops_assets.core import storage
from mlops_assets.core.storage import VersionedDataset
from mlops_assets_tests.fixtures.services import S3Server

TABLE = pa.table({"k": [1, 2, 3], "v": ["a", "b", "c"]})


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path: Path):
    if request.param == "local":
        return storage.make_upath(str(tmp_path / "root"))
    s3: S3Server = request.getfixturevalue("aws_env")
    return storage.make_upath(f"s3://{s3.bucket}/st-{tmp_path.name}", s3.endpoint_url)


def test_a_file_another_process_wrote_is_found_after_its_folder_was_listed(root) -> None:
    """A long-lived process (a Celery worker, the daemon) lists a folder, another one writes a
    new day into it: the first must read that day, not answer from a stale listing."""
    storage.write_parquet(root / "days" / "2024-01-01.parquet", TABLE)
    assert [p.name for p in (root / "days").iterdir()] == ["2024-01-01.parquet"]
    writer = textwrap.dedent(
        f"""
        import pyarrow as pa
        from mlops_assets.core import storage
        root = storage.make_upath({str(root)!r}, {_endpoint(root)!r})
        storage.write_parquet(root / "days" / "2024-01-03.parquet", pa.table({{"k": [3]}}))
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, env=os.environ.copy())
    day = root / "days" / "2024-01-03.parquet"
    assert day.exists()
    assert storage.read_parquet(day).column("k").to_pylist() == [3]


def _endpoint(root) -> str:
    return (getattr(root, "storage_options", {}).get("client_kwargs") or {}).get("endpoint_url", "")


def test_parquet_round_trip_and_hash_is_of_the_bytes(root) -> None:
    import hashlib

    digest = storage.write_parquet(root / "t.parquet", TABLE)
    assert storage.read_parquet(root / "t.parquet").equals(TABLE)
    assert digest == hashlib.sha256((root / "t.parquet").read_bytes()).hexdigest()
    assert storage.write_parquet(root / "again.parquet", TABLE) == digest


def test_writer_that_raises_leaves_nothing_and_keeps_the_old_object(root) -> None:
    target = root / "x.bin"
    storage.atomic_write_bytes(target, b"old")

    def boom(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("died mid-write")

    with pytest.raises(RuntimeError):
        storage.atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    with pytest.raises(RuntimeError):
        storage.atomic_write(root / "never.bin", boom)
    assert not (root / "never.bin").exists()
    if storage.is_local(root):
        assert sorted(p.name for p in Path(root.path).iterdir()) == ["x.bin"]


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from mlops_assets.core import storage

    root, endpoint, stage = sys.argv[1], sys.argv[2], sys.argv[3]
    target = storage.make_upath(root, endpoint) / "big.bin"
    payload = b"x" * (24 << 20)

    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(payload[: 1 << 20])
            fh.flush()
            if stage == "writing":
                print("ready", flush=True)
                time.sleep(60)
            fh.write(payload[1 << 20 :])
        if stage == "publishing":
            print("ready", flush=True)

    storage.atomic_write(target, write)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("stage", ["writing", "publishing"])
def test_killed_writer_leaves_no_partial_object(root, stage: str) -> None:
    endpoint = root.storage_options.get("client_kwargs", {}).get("endpoint_url", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(root), endpoint, stage],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    target = root / "big.bin"
    # Killed before or during publication: either nothing is there, or all of it is.
    if target.exists():
        assert target.stat().st_size == 24 << 20
    visible = [p.name for p in root.iterdir()] if root.exists() else []
    assert all(name in ("big.bin",) or name.startswith(storage.TEMP_PREFIX) for name in visible)
    if stage == "writing":
        assert not target.exists()


def test_versioned_dataset_pointers(root) -> None:
    ds = VersionedDataset(root / "fraud" / "training_set")
    assert ds.latest() is None and ds.current() is None

    v1 = ds.write("2024-03-01", "run-a", TABLE, extra={"source_partitions": ["2024-02-01"]})
    assert ds.latest() == v1 and ds.current() is None
    assert v1.row_count == 3 and v1.extra == {"source_partitions": ["2024-02-01"]}
    ds.promote(v1)
    assert ds.current() == v1

    v2 = ds.write("2024-03-02", "run-b", TABLE.slice(0, 2))
    assert ds.latest() == v2
    assert ds.current() == v1, "writing a version must not make it current"
    assert ds.latest("2024-03-01") == v1 and ds.current("2024-03-01") == v1
    assert ds.latest("2024-03-02") == v2 and ds.current("2024-03-02") is None
    assert ds.read(v2).num_rows == 2
    assert [v.run_id for v in ds.versions()] == ["run-a", "run-b"]
    assert (root / "fraud/training_set/dt=2024-03-02/run_id=run-b/data.parquet").exists()


def test_interrupted_version_is_never_pointed_at(root, monkeypatch) -> None:
    ds = VersionedDataset(root / "ts")
    good = ds.write("2024-03-01", "run-a", TABLE)

    real = storage.write_pointer

    def fail_on_manifest(path, payload):
        if path.name == VersionedDataset.MANIFEST:
            raise OSError("killed before the manifest")
        real(path, payload)

    monkeypatch.setattr(storage, "write_pointer", fail_on_manifest)
    with pytest.raises(OSError):
        ds.write("2024-03-02", "run-b", TABLE)
    monkeypatch.setattr(storage, "write_pointer", real)

    assert ds.latest() == good
    assert [v.run_id for v in ds.versions()] == ["run-a"]
    orphan = storage.DatasetVersion("2024-03-02", "run-b", "x", 3, "", {})
    with pytest.raises(FileNotFoundError):
        ds.promote(orphan)
