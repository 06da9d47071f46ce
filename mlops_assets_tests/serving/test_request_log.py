"""The request log: acknowledged means durable, every record reaches the store once, crashes
and outages lose nothing, and corrupt segments are set aside rather than dropped."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core import storage
from mlops_assets.serving import request_log
from mlops_assets.serving.request_log import (
    PREDICTIONS_LOG_COLUMNS,
    RequestLog,
    batch_path,
    day_fingerprints,
    encode_record,
    predictions_log_schema,
    read_day,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-11-22"
NEXT_DAY = "2026-11-23"
NO_BACKGROUND_SHIP = 3600.0  # tests ship explicitly, so a background round cannot race them


def record(request_id: str, ts: str = f"{DAY}T18:40:00.123456+00:00", **fields: Any) -> dict:
    base: dict[str, Any] = {
        "request_id": request_id,
        "ts": ts,
        "use_case": "fraud",
        "model_name": "fraud-xgb",
        "model_version": "7",
        "status": 200,
        "latency_ms": 3.25,
        "prediction": 0.125,
        "features_missing": 0,
        "error": None,
        "request": {"card_id": "c1", "amount": 12.5},
        "response": {"fraud_probability": 0.125},
        "features": {"tx_count_1h": 3},
    }
    base.update(fields)
    return base


def open_log(tmp_path: Path, **kwargs: Any) -> RequestLog:
    kwargs.setdefault("ship_interval_s", NO_BACKGROUND_SHIP)
    log = RequestLog(tmp_path / "wal", tmp_path / "store", **kwargs)
    log.start()
    return log


def ids(table) -> list[str]:
    return table.column("request_id").to_pylist()


def segment_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(suffix))


def test_appended_records_are_stored_with_their_types_and_json(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    nan = float("nan")
    async_record = record(
        "req-1",
        ts=datetime(2026, 11, 22, 19, 40, 0, 5, tzinfo=UTC),
        prediction=nan,
        latency_ms=float("inf"),
        request={"z": 1, "a": [1.5, nan], "nested": {"b": None, "a": "x"}},
        features={"amount_avg_7d": nan, "tx_count_1h": 3},
    )
    blocking_record = {
        "request_id": "req-2",
        "ts": f"{DAY}T18:40:00.123456+00:00",
        "use_case": "housing",
        "status": 422,
        "latency_ms": 1.0,
        "error": "card c9 is unknown",
        "request": {"card_id": "c9"},
    }

    asyncio.run(log.append(async_record))
    log.append_blocking(blocking_record)
    log.close()

    table = read_day(tmp_path / "store", DAY)
    assert table.schema == predictions_log_schema()
    assert table.column_names == list(PREDICTIONS_LOG_COLUMNS)
    assert table.to_pylist() == [
        {
            "request_id": "req-2",
            "ts": datetime(2026, 11, 22, 18, 40, 0, 123456, tzinfo=UTC),
            "use_case": "housing",
            "model_name": None,
            "model_version": None,
            "status": 422,
            "latency_ms": 1.0,
            "prediction": None,
            "features_missing": 0,
            "error": "card c9 is unknown",
            "request_json": '{"card_id":"c9"}',
            "response_json": None,
            "features_json": None,
            "role": None,
            "alias": None,
        },
        {
            "request_id": "req-1",
            "ts": datetime(2026, 11, 22, 19, 40, 0, 5, tzinfo=UTC),
            "use_case": "fraud",
            "model_name": "fraud-xgb",
            "model_version": "7",
            "status": 200,
            "latency_ms": None,
            "prediction": None,
            "features_missing": 0,
            "error": None,
            "request_json": '{"a":[1.5,null],"nested":{"a":"x","b":null},"z":1}',
            "response_json": '{"fraud_probability":0.125}',
            "features_json": '{"amount_avg_7d":null,"tx_count_1h":3}',
            "role": None,
            "alias": None,
        },
    ]
    assert log.backlog() == 0
    assert list((tmp_path / "wal").iterdir()) == []


def test_unknown_field_is_refused_at_append_and_nothing_is_logged(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    with pytest.raises(ValueError, match="unknown request log fields: \\['modle_name'\\]"):
        log.append_blocking(record("req-1", modle_name="typo"))
    with pytest.raises(ValueError, match="time zone"):
        log.append_blocking(record("req-2", ts="2026-11-22T18:40:00"))
    log.close()
    assert read_day(tmp_path / "store", DAY).num_rows == 0


def test_append_after_close_is_refused_and_close_is_idempotent(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.close()
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.append_blocking(record("late"))


def test_segment_spanning_midnight_lands_in_both_day_folders(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append_blocking(record("before", ts=f"{DAY}T23:59:59.999999+00:00"))
    # 00:30 in Paris is still the 22nd in UTC: days are UTC days.
    log.append_blocking(record("paris", ts=f"{NEXT_DAY}T00:30:00.000000+01:00"))
    log.append_blocking(record("after", ts=f"{NEXT_DAY}T00:00:00.000000+00:00"))
    sealed = log.rotate()
    assert sealed is not None
    assert log.ship() == 1
    log.close()

    segment = sealed.name.removesuffix(".jsonl")
    store = tmp_path / "store"
    assert batch_path(store, DAY, segment).exists()
    assert batch_path(store, NEXT_DAY, segment).exists()
    assert ids(read_day(store, DAY)) == ["paris", "before"]
    assert ids(read_day(store, NEXT_DAY)) == ["after"]


def test_records_of_a_crashed_process_are_shipped_and_its_torn_line_is_cut(
    tmp_path: Path,
) -> None:
    wal = tmp_path / "wal"
    crash = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from mlops_assets.serving.request_log import RequestLog
        log = RequestLog(Path(sys.argv[1]), None, ship_interval_s=3600)
        log.start()
        for i in range(2):
            log.append_blocking({{"request_id": f"acked-{{i}}", "ts": f"{DAY}T10:00:0{{i}}+00:00"}})
        os._exit(0)  # dies without closing: the segment stays open
        """
    )
    subprocess.run([sys.executable, "-c", crash, str(wal)], check=True, cwd=REPO_ROOT)
    [leftover] = segment_files(wal, ".jsonl.open")
    with open(leftover, "ab") as fh:  # the crash interrupted a third write mid-line
        fh.write(b'{"error":null,"features":null,"request_id":"torn","ts":"2026-11-22T1')

    log = open_log(tmp_path)
    assert not leftover.exists()
    assert log.ship() == 1
    log.close()

    table = read_day(tmp_path / "store", DAY)
    assert ids(table) == ["acked-0", "acked-1"]
    assert table.column("features_missing").to_pylist() == [0, 0]
    assert not (wal / "quarantine").exists()


def test_segment_locked_by_a_live_process_is_left_alone(tmp_path: Path) -> None:
    wal = tmp_path / "wal"
    wal.mkdir()
    other = wal / "20261122T180000000000Z-99999-000000.jsonl.open"
    content = encode_record(record("theirs")) + b'{"request_id":"in-flight"'
    other.write_bytes(content)

    with open(other, "rb") as held:  # its own open file description: a lock of its own
        fcntl.flock(held, fcntl.LOCK_EX)
        log = open_log(tmp_path)
        assert other.read_bytes() == content
        assert log.backlog() == 0
        log.close()
        assert other.read_bytes() == content
    assert read_day(tmp_path / "store", DAY).num_rows == 0

    # Once that process is gone, the next start recovers its segment.
    log = open_log(tmp_path)
    assert not other.exists()
    assert log.ship() == 1
    log.close()
    assert ids(read_day(tmp_path / "store", DAY)) == ["theirs"]


def test_failed_upload_keeps_the_segment_and_the_retry_ships_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = storage.write_parquet
    uploads: list[str] = []

    def second_upload_fails(path, table):
        uploads.append(Path(path).parent.name)
        if len(uploads) == 2:
            raise OSError("S3 is down")
        return real_write(path, table)

    monkeypatch.setattr(storage, "write_parquet", second_upload_fails)
    log = open_log(tmp_path)
    log.append_blocking(record("a", ts=f"{DAY}T12:00:00+00:00"))
    log.append_blocking(record("b", ts=f"{NEXT_DAY}T12:00:00+00:00"))
    log.rotate()

    with caplog.at_level(logging.WARNING, logger="mlops_assets.serving.request_log"):
        assert log.ship() == 0
    assert "S3 is down" in (log.last_ship_error or "")
    assert "S3 is down" in caplog.text
    assert log.backlog() == 1  # the first day was written, yet the segment stays

    assert log.ship() == 1
    assert log.last_ship_error is None
    assert log.backlog() == 0
    log.close()
    assert uploads == [DAY, NEXT_DAY, DAY, NEXT_DAY]
    assert ids(read_day(tmp_path / "store", DAY)) == ["a"]
    assert ids(read_day(tmp_path / "store", NEXT_DAY)) == ["b"]


def test_shipping_a_segment_again_writes_the_same_bytes_to_the_same_path(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for i in range(20):
        log.append_blocking(record(f"r{i:02d}", ts=f"{DAY}T12:00:{59 - i:02d}+00:00"))
    sealed = log.rotate()
    assert sealed is not None
    kept = sealed.read_bytes()
    assert log.ship() == 1
    shipped = batch_path(tmp_path / "store", DAY, sealed.name.removesuffix(".jsonl"))
    first = Path(shipped).read_bytes()

    sealed.write_bytes(kept)  # as if the process died between the upload and the delete
    assert log.ship() == 1
    log.close()

    assert Path(shipped).read_bytes() == first
    assert pq.read_table(shipped).column("request_id").to_pylist() == [
        f"r{i:02d}" for i in reversed(range(20))
    ]
    assert read_day(tmp_path / "store", DAY).num_rows == 20


def test_append_is_acknowledged_only_after_an_fsync_covering_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, Any]] = []
    # The segments' data flush: fdatasync on Linux (their modification time is not kept).
    real_fsync = os.fdatasync

    def slow_recording_fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        snapshot = Path(target).read_bytes() if target.endswith(".jsonl.open") else None
        time.sleep(0.05)  # an early acknowledgement would overtake this flush
        real_fsync(fd)
        if snapshot is not None:
            events.append(("fsync", snapshot))

    monkeypatch.setattr(os, "fdatasync", slow_recording_fsync)
    log = open_log(tmp_path)

    async def main() -> None:
        await log.append(record("first"))
        events.append(("acked", "first"))

    asyncio.run(main())
    log.close()

    acked_at = events.index(("acked", "first"))
    flushed_at = next(
        i for i, (kind, data) in enumerate(events) if kind == "fsync" and b'"first"' in data
    )
    assert flushed_at < acked_at


def test_failed_write_is_raised_to_the_caller_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def disk_full_for_doomed(fd: int, data) -> int:
        if b'"request_id":"doomed"' in bytes(data):
            real_write(fd, bytes(data)[: len(data) // 2])  # half of it made it to the file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk_full_for_doomed)
    log = open_log(tmp_path)

    async def main() -> None:
        await log.append(record("before"))
        with pytest.raises(OSError) as failure:
            await log.append(record("doomed"))
        assert failure.value.errno == errno.ENOSPC
        await log.append(record("after"))

    asyncio.run(main())
    log.close()

    assert sorted(ids(read_day(tmp_path / "store", DAY))) == ["after", "before"]
    assert not (tmp_path / "wal" / "quarantine").exists()


def test_concurrent_appends_share_fsyncs_and_all_arrive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segment_fsyncs: list[int] = []
    real_fsync = os.fdatasync

    def counting_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl.open"):
            segment_fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", counting_fsync)
    log = open_log(tmp_path)

    async def main() -> None:
        await asyncio.gather(*(log.append(record(f"r{i:03d}")) for i in range(500)))

    asyncio.run(main())
    flushes = len(segment_fsyncs)
    log.close()

    assert sorted(ids(read_day(tmp_path / "store", DAY))) == [f"r{i:03d}" for i in range(500)]
    assert 1 <= flushes <= 50


def test_size_rotation_seals_several_segments_and_ships_them_all(tmp_path: Path) -> None:
    line_bytes = len(encode_record(record("r00")))
    log = open_log(tmp_path, segment_max_bytes=5 * line_bytes)
    for i in range(60):
        log.append_blocking(record(f"r{i:02d}", ts=f"{DAY}T12:00:{i:02d}+00:00"))
    # Queued behind the size rotation of the last batch: once it returns, that one is done.
    assert log.rotate() is None
    sealed = segment_files(tmp_path / "wal", ".jsonl")
    assert len(sealed) == 12  # blocking appends commit one record each: 5 records a segment
    assert log.backlog() == 12
    log.close()

    day_folder = tmp_path / "store" / "serving" / "predictions_log" / DAY
    stored = sorted(p.name for p in day_folder.iterdir())
    assert stored == [p.name.replace(".jsonl", ".parquet") for p in sealed]
    assert ids(read_day(tmp_path / "store", DAY)) == [f"r{i:02d}" for i in range(60)]


def test_old_segment_is_sealed_and_shipped_in_the_background(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_max_age_s=0.05, ship_interval_s=0.05)
    log.append_blocking(record("r1"))
    deadline = time.monotonic() + 5
    while read_day(tmp_path / "store", DAY).num_rows == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ids(read_day(tmp_path / "store", DAY)) == ["r1"]
    assert log.backlog() == 0
    log.close()


def test_without_a_store_segments_stay_sealed_locally(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "wal", None, ship_interval_s=NO_BACKGROUND_SHIP)
    log.start()
    log.append_blocking(record("r1"))
    assert log.backlog() == 1
    assert log.ship() == 0
    log.close()
    [sealed] = segment_files(tmp_path / "wal", ".jsonl")
    assert sealed.read_bytes() == encode_record(record("r1"))
    assert log.backlog() == 1


def test_corrupt_line_quarantines_its_segment_and_names_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wal = tmp_path / "wal"
    wal.mkdir()
    corrupt = wal / "20261122T100000000000Z-1-000000.jsonl"
    content = (
        encode_record(record("c1"))
        + b'{"request_id": "edited by hand"\n'
        + encode_record(record("c3"))
    )
    corrupt.write_bytes(content)
    healthy = wal / "20261122T110000000000Z-1-000001.jsonl"
    healthy.write_bytes(encode_record(record("h1")))

    log = open_log(tmp_path)
    with caplog.at_level(logging.ERROR, logger="mlops_assets.serving.request_log"):
        assert log.ship() == 1
    log.close()

    assert (wal / "quarantine" / corrupt.name).read_bytes() == content
    assert not corrupt.exists()
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert corrupt.name in error.getMessage()
    assert "line 2" in error.getMessage()
    assert ids(read_day(tmp_path / "store", DAY)) == ["h1"]
    assert log.last_ship_error is None


def test_read_day_of_a_day_without_requests_is_empty_with_the_schema(tmp_path: Path) -> None:
    table = read_day(tmp_path / "store", DAY)
    assert table.num_rows == 0
    assert table.schema == predictions_log_schema()


def test_day_fingerprint_changes_when_a_batch_lands_in_that_day(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert day_fingerprints(store) == {}
    log = open_log(tmp_path)
    log.append_blocking(record("a", ts=f"{DAY}T12:00:00+00:00"))
    log.rotate()
    log.ship()
    first = day_fingerprints(store)
    assert set(first) == {DAY}
    assert day_fingerprints(store) == first  # listing again, nothing landed: same version

    log.append_blocking(record("b", ts=f"{NEXT_DAY}T12:00:00+00:00"))
    log.rotate()
    log.ship()
    after = day_fingerprints(store)
    assert set(after) == {DAY, NEXT_DAY}
    assert after[DAY] == first[DAY]  # a batch of another day leaves this day's version alone

    log.append_blocking(record("c", ts=f"{DAY}T13:00:00+00:00"))
    log.close()
    assert day_fingerprints(store)[DAY] != first[DAY]


def test_ships_to_s3_and_reads_the_day_back(tmp_path: Path, aws_env) -> None:
    root = storage.make_upath(f"s3://{aws_env.bucket}/rl-{tmp_path.name}", aws_env.endpoint_url)
    log = RequestLog(tmp_path / "wal", root, ship_interval_s=NO_BACKGROUND_SHIP)
    log.start()
    log.append_blocking(record("s2", ts=f"{DAY}T12:00:01+00:00"))
    log.append_blocking(record("s1", ts=f"{DAY}T12:00:00+00:00"))
    log.close()

    assert log.last_ship_error is None
    assert ids(read_day(root, DAY)) == ["s1", "s2"]
    assert request_log.read_day(root, NEXT_DAY).num_rows == 0
    assert set(day_fingerprints(root)) == {DAY}


# --- roles and aliases (rollouts) --------------------------------------------------------------


def test_a_request_served_and_scored_in_shadow_keeps_both_roles_and_aliases(
    tmp_path: Path,
) -> None:
    log = open_log(tmp_path)
    served = record("req-1", role="served", alias="champion", model_version="3")
    shadow = record(
        "req-1",
        ts=f"{DAY}T18:40:00.200000+00:00",
        role="shadow",
        alias="candidate",
        model_version="4",
        prediction=0.5,
        response=None,
    )
    log.append_blocking(served)
    log.append_blocking(shadow)
    log.close()

    table = read_day(tmp_path / "store", DAY)
    rows = [
        (r["request_id"], r["role"], r["alias"], r["model_version"], r["prediction"])
        for r in table.to_pylist()
    ]
    assert rows == [
        ("req-1", "served", "champion", "3", 0.125),
        ("req-1", "shadow", "candidate", "4", 0.5),
    ]
    assert table.column("response_json").to_pylist()[1] is None
    assert request_log.served_rows(table).column("model_version").to_pylist() == ["3"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("role", "shdow", "role 'shdow'"), ("alias", "challenger", "alias 'challenger'")],
)
def test_a_role_or_alias_readers_do_not_know_is_refused(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    log = open_log(tmp_path)
    with pytest.raises(ValueError, match=message):
        log.append_blocking(record("req-1", **{field: value}))
    log.close()
    assert read_day(tmp_path / "store", DAY).num_rows == 0


def test_batches_and_wal_lines_written_before_roles_existed_read_as_served_by_the_champion(
    tmp_path: Path,
) -> None:
    import json

    import pyarrow as pa

    store = tmp_path / "store"
    old_columns = [c for c in PREDICTIONS_LOG_COLUMNS if c not in ("role", "alias")]
    old_schema = pa.schema([predictions_log_schema().field(c) for c in old_columns])
    old_row = {
        **{c: None for c in old_columns},
        "request_id": "old-batch",
        "ts": datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        "status": 200,
        "features_missing": 0,
    }
    storage.write_parquet(
        batch_path(store, DAY, "20261122T090000000000Z-1-000000"),
        pa.Table.from_pylist([old_row], schema=old_schema),
    )
    # A WAL segment an older process left: its lines have no role nor alias.
    wal = tmp_path / "wal"
    wal.mkdir()
    line = json.loads(encode_record(record("old-wal", ts=f"{DAY}T10:00:00+00:00")))
    del line["role"], line["alias"]
    (wal / "20261122T100000000000Z-99999-000000.jsonl").write_text(json.dumps(line) + "\n")
    log = open_log(tmp_path)
    log.append_blocking(record("new", ts=f"{DAY}T11:00:00+00:00", role="served", alias="champion"))
    log.close()

    table = read_day(store, DAY)
    assert table.schema == predictions_log_schema()
    assert [(r["request_id"], r["role"], r["alias"]) for r in table.to_pylist()] == [
        ("old-batch", None, None),
        ("old-wal", None, None),
        ("new", "served", "champion"),
    ]
    assert request_log.served_rows(table).num_rows == 3
    assert not (wal / "quarantine").exists()


def test_records_nobody_waits_for_cost_no_flush_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shadow records ride with the next answer's commit: an answer never waits behind an fsync
    made for records nobody waits for."""
    import threading

    flushes: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl.open"):
            flushes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", counting_fsync)
    log = open_log(tmp_path, lazy_commit_s=60.0)
    written = threading.Event()
    for i in range(5):
        log.append_nowait(record(f"shadow-{i}", role="shadow", alias="candidate"))
    log.append_nowait(record("shadow-5", role="shadow"), lambda error: written.set())
    time.sleep(0.3)
    assert flushes == []  # nothing waits for them: no flush yet
    assert not written.is_set()

    log.append_blocking(record("answer", role="served", alias="champion"))

    assert written.wait(10)
    assert len(flushes) == 1  # one flush for the answer and the six shadow records
    log.append_nowait(record("shadow-last", role="shadow"))
    log.close()  # what was queued before the close is in the sealed segment
    assert sorted(ids(read_day(tmp_path / "store", DAY))) == [
        "answer",
        *(f"shadow-{i}" for i in range(6)),
        "shadow-last",
    ]


def test_append_nowait_returns_at_once_and_the_record_is_committed_with_the_next_batch(
    tmp_path: Path,
) -> None:
    import threading

    # No answer comes to carry it: it is written within lazy_commit_s all the same.
    log = open_log(tmp_path, lazy_commit_s=0.05)
    outcomes: list[BaseException | None] = []
    committed = threading.Event()

    def done(error: BaseException | None) -> None:
        outcomes.append(error)
        committed.set()

    log.append_nowait(record("shadow-1", role="shadow", alias="candidate"), done)
    assert committed.wait(10)
    assert outcomes == [None]
    with pytest.raises(ValueError, match="unknown request log fields"):
        log.append_nowait(record("bad", modle_name="typo"))
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.append_nowait(record("late"))
    assert ids(read_day(tmp_path / "store", DAY)) == ["shadow-1"]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    # Beyond 64 bits orjson refuses: the standard library writes those.
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    # Lone surrogates included: the other case orjson refuses.
    | st.text(st.characters(codec=None), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_json_values)
def test_canonical_json_reads_back_as_the_value_and_does_not_depend_on_key_order(
    value: Any,
) -> None:
    text = request_log.canonical_json(value)
    if value is None:
        assert text is None
        return
    assert json.loads(text) == value
    assert "\n" not in text  # one WAL line per record
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        assert request_log.canonical_json(reordered) == text
        assert list(json.loads(text)) == sorted(value)


def test_canonical_json_writes_missing_numbers_as_null_and_others_as_their_text() -> None:
    when = datetime(2026, 11, 22, 2, 14, tzinfo=UTC)
    assert (
        request_log.canonical_json(
            {"b": float("nan"), "a": [float("inf"), 1.5], "when": when, "n": 2**70}
        )
        == '{"a":[null,1.5],"b":null,"n":1180591620717411303424,"when":"2026-11-22 02:14:00+00:00"}'
    )
