"""Write, audit, publish: a rejected partition never replaces the published one, later runs refuse
it, good partitions of a ranged step are still published, outputs of one step move together,
a publish that died half-way is finished by the next reader, and temporary files of dead
writers are swept. On disk, and on S3 through moto's server."""

# No `from __future__ import annotations`: Dagster reads the config annotation of `meter`.
import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_assets.core import storage, validation
from mlops_assets.core.asset_store import AssetStore, store_resources
from mlops_assets.core.publishing import (
    Staged,
    audit,
    check_specs,
    publish,
)
from mlops_assets_tests.fixtures.runs import check_verdicts, failures, metadata

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
READINGS = dg.AssetKey(["meter", "readings"])
EVENTS = dg.AssetKey(["meter", "events"])


def _no_negative(staged: Staged) -> validation.SuiteResult:
    table = staged.tables[READINGS]
    values = table.column("value").to_pylist()
    bad = [v for v in values if v < 0]
    return validation.rule_result("no_negative_readings", len(values), len(bad), bad)


AUDITS = [
    audit(
        READINGS,
        "no_negative_readings",
        _no_negative,
        description="A meter never reads below zero.",
        partitions_def=DAILY,
    ),
    validation.unique_key_audit(EVENTS, "id", partitions_def=DAILY),
]


class Source(dg.Config):
    # JSON: the readings' values per day; a day not listed gets [1.0, 2.0].
    values: str = "{}"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(READINGS, partitions_def=DAILY),
        dg.AssetSpec(EVENTS, partitions_def=DAILY),
    ],
    check_specs=check_specs(AUDITS),
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def meter(context: dg.AssetExecutionContext, config: Source, asset_store: AssetStore):
    readings, events = {}, {}
    for day in context.partition_keys:
        values = json.loads(config.values).get(day, [1.0, 2.0])
        readings[day] = pa.table({"day": [day] * len(values), "value": values})
        events[day] = pa.table({"id": list(range(len(values))), "day": [day] * len(values)})
    yield from publish(context, asset_store, {READINGS: readings, EVENTS: events}, AUDITS)


@dg.asset(partitions_def=DAILY, ins={"readings": dg.AssetIn(READINGS)}, key=["meter", "total"])
def total(readings) -> pa.Table:
    return pa.table({"total": [float(readings["value"].sum())]})


def _io(root: Path) -> dict:
    return store_resources(str(root))


def _run(root: Path, day: str | None = None, *, values=None, selection=None, **kwargs):
    config = (
        {} if selection else {"ops": {"meter": {"config": {"values": json.dumps(values or {})}}}}
    )
    return dg.materialize(
        [meter, total],
        selection=selection or [READINGS, EVENTS],
        resources=_io(root),
        partition_key=day,
        run_config=config,
        raise_on_error=False,
        **kwargs,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rejected_day_leaves_the_published_file_byte_identical_and_is_quarantined(
    tmp_path: Path,
) -> None:
    good = _run(tmp_path, "2024-01-02")
    assert good.success, failures(good)
    published = tmp_path / "meter" / "readings" / "2024-01-02.parquet"
    before = _sha(published), _sha(tmp_path / "meter" / "events" / "2024-01-02.parquet")
    assert metadata(good, "meter/readings")["published"] is True

    bad = _run(tmp_path, "2024-01-02", values={"2024-01-02": [5.0, -50.0, -1.0]})
    assert not bad.success
    assert check_verdicts(bad) == {"no_negative_readings": False, "id_is_unique": True}
    # Both outputs of the step stay as they were: a day is published whole or not at all.
    after = _sha(published), _sha(tmp_path / "meter" / "events" / "2024-01-02.parquet")
    assert after == before
    meta = metadata(bad, "meter/readings")
    assert meta["published"] is False
    assert meta["rejected_by"] == "no_negative_readings"
    assert meta["published_data_version"] == {"2024-01-02": before[0]}
    quarantined = Path(meta["quarantine"])
    assert quarantined.parent == tmp_path / "_quarantine" / "meter" / "readings" / "2024-01-02"
    assert pq.read_table(quarantined).column("value").to_pylist() == [5.0, -50.0, -1.0]
    report = json.loads(quarantined.with_suffix(".json").read_text())
    assert report["failed_checks"] == ["no_negative_readings"]
    assert report["run_id"] == bad.run_id
    # The check names the offending values.
    evaluation = next(e for e in bad.get_asset_check_evaluations() if not e.passed)
    assert evaluation.metadata["samples"].value == {"no_negative_readings()": [-50.0, -1.0]}
    # Nothing is left in staging.
    assert not any((tmp_path / "_staging").rglob("*.parquet"))


def test_a_later_run_refuses_a_rejected_partition_and_a_fixed_one_is_published(
    tmp_path: Path,
) -> None:
    assert _run(tmp_path, "2024-01-02").success
    assert not _run(tmp_path, "2024-01-02", values={"2024-01-02": [-3.0]}).success

    # A separate, later run of the downstream asset (as the CLI, UI or a schedule would launch).
    downstream = _run(tmp_path, "2024-01-02", selection=[dg.AssetKey(["meter", "total"])])
    assert not downstream.success
    message = failures(downstream)
    assert "meter/readings" in message and "rejected by its blocking checks" in message
    assert "no_negative_readings" in message and "_quarantine" in message
    assert not (tmp_path / "meter" / "total" / "2024-01-02.parquet").exists()

    # Fixed at the source: published, the marker is gone, downstream builds on the fixed day.
    fixed = _run(tmp_path, "2024-01-02", values={"2024-01-02": [3.0, 4.0]})
    assert fixed.success, failures(fixed)
    assert not (tmp_path / "_rejected" / "meter" / "readings" / "2024-01-02.json").exists()
    rebuilt = _run(tmp_path, "2024-01-02", selection=[dg.AssetKey(["meter", "total"])])
    assert rebuilt.success, failures(rebuilt)
    total_file = tmp_path / "meter" / "total" / "2024-01-02.parquet"
    assert pq.read_table(total_file).column("total").to_pylist() == [7.0]


def test_a_ranged_step_publishes_its_good_days_and_quarantines_the_bad_one(tmp_path: Path) -> None:
    result = dg.materialize(
        [meter],
        resources=_io(tmp_path),
        tags={
            "dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-03",
        },
        run_config={"ops": {"meter": {"config": {"values": json.dumps({"2024-01-02": [-1.0]})}}}},
        raise_on_error=False,
    )
    assert not result.success
    folder = tmp_path / "meter" / "readings"
    assert sorted(p.name for p in folder.iterdir()) == ["2024-01-01.parquet", "2024-01-03.parquet"]
    meta = metadata(result, "meter/readings")
    assert meta["published"] is False
    assert (
        "2024-01-02 | 1 |" in meta["partitions"]
        and "no: no_negative_readings" in meta["partitions"]
    )
    assert (tmp_path / "_rejected" / "meter" / "events" / "2024-01-02.json").exists()
    # One evaluation per day judged, recorded on its day (the UI shows each day's result,
    # not a check "skipped" on every day of the range).
    evaluations = result.get_asset_check_evaluations()
    assert {(e.check_name, e.partition): e.passed for e in evaluations} == {
        (check, day): check != "no_negative_readings" or day != "2024-01-02"
        for check in {e.check_name for e in evaluations}
        for day in ("2024-01-01", "2024-01-02", "2024-01-03")
    }
    [failed] = [e for e in evaluations if not e.passed]
    assert failed.metadata["failing_expectations"].value == ["no_negative_readings()"]
    assert failed.target_materialization_data is not None
    assert failed.target_materialization_data.run_id == result.run_id


def test_the_same_inputs_publish_the_same_bytes_and_data_version(tmp_path: Path) -> None:
    first = _run(tmp_path, "2024-01-05")
    second = _run(tmp_path, "2024-01-05")
    assert first.success and second.success
    assert (
        metadata(first, "meter/readings")["data_version"]
        == metadata(second, "meter/readings")["data_version"]
        == _sha(tmp_path / "meter" / "readings" / "2024-01-05.parquet")
    )


def _stage_both(store: AssetStore, run_id: str, value: float) -> list:
    places = [store.publisher.place(k, "2024-01-04") for k in (READINGS, EVENTS)]
    for place in places:
        store.publisher.stage(place, run_id, pa.table({"value": [value]}))
    return places


def test_a_publish_that_died_half_way_is_finished_by_the_next_reader(tmp_path: Path) -> None:
    store = AssetStore(root=str(tmp_path))
    _stage_both(store, "old", 1.0)
    store.publisher.publish_together(
        [store.publisher.place(k, "2024-01-04") for k in (READINGS, EVENTS)], "old"
    )
    places = _stage_both(store, "new", 2.0)
    # The mover wrote its journal and moved the first file, then died.
    journal = {
        "lock": "publish:meter/events+meter/readings:2024-01-04",
        "run_id": "new",
        "partition": "2024-01-04",
        "assets": [list(p.key.path) for p in places],
    }
    for p in places:
        storage.write_pointer(p.journal, journal)
    os.replace(places[0].staged("new").path, places[0].published.path)
    assert pq.read_table(places[1].published.path).column("value").to_pylist() == [1.0]

    table, _ = store.read_partitions(EVENTS, ["2024-01-04"])
    assert table.column("value").to_pylist() == [2.0]
    assert pq.read_table(places[0].published.path).column("value").to_pylist() == [2.0]
    assert not any((tmp_path / "_publishing").rglob("*.json"))


def _publish_many(root: str, run_id: str, value: float, rounds: int) -> None:
    store = AssetStore(root=root)
    for i in range(rounds):
        places = _stage_both(store, f"{run_id}-{i}", value)
        store.publisher.publish_together(places, f"{run_id}-{i}")


def test_two_writers_of_one_day_never_leave_it_mixed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    writers = [
        ctx.Process(target=_publish_many, args=(str(tmp_path), name, value, 40))
        for name, value in (("a", 1.0), ("b", 2.0))
    ]
    for w in writers:
        w.start()
    readings = tmp_path / "meter" / "readings" / "2024-01-04.parquet"
    events = tmp_path / "meter" / "events" / "2024-01-04.parquet"
    store = AssetStore(root=str(tmp_path))
    seen = set()
    while any(w.is_alive() for w in writers):
        if readings.exists() and events.exists():
            # Under the partition's lock, as a publisher holds it, a reader sees one run's pair.
            with store.publisher.partition_lock([READINGS, EVENTS], "2024-01-04"):
                pair = (
                    pq.read_table(readings).column("value")[0].as_py(),
                    pq.read_table(events).column("value")[0].as_py(),
                )
            seen.add(pair)
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen <= {(1.0, 1.0), (2.0, 2.0)}, seen
    final = (pq.read_table(readings)["value"][0].as_py(), pq.read_table(events)["value"][0].as_py())
    assert final[0] == final[1]


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    from mlops_assets.core import storage

    def write(tmp):
        tmp.write_bytes(b"PAR1 half a file")
        print("writing", flush=True)
        time.sleep(60)

    storage.atomic_write(storage.make_upath(sys.argv[1]), write, tmp_dir=sys.argv[2])
    """
)


def test_a_writer_killed_mid_write_leaves_nothing_in_the_asset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "fraud" / "card_features"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), folder / "2024-01-01.parquet")
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SLOW_WRITER,
            str(folder / "2024-01-02.parquet"),
            str(tmp_path / "_tmp"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "writing"
    leftover = list((tmp_path / "_tmp").iterdir())
    assert len(leftover) == 1 and leftover[0].name.startswith(f"{writer.pid}-")
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)

    # A reader of the folder (Feast's file source reads every file in it) sees only data.
    import pyarrow.dataset as ds

    assert (
        ds.dataset(str(folder), format="parquet", exclude_invalid_files=False).to_table().num_rows
        == 1
    )
    # The next run sweeps the dead writer's file; a live writer's stays.
    live = tmp_path / "_tmp" / f"{os.getpid()}-0123-live.parquet"
    live.write_bytes(b"in progress")
    legacy = folder / f".tmp-{'0' * 32}-2024-01-03.parquet"
    legacy.write_bytes(b"left by an older version")
    store = AssetStore(root=str(tmp_path))
    store.publisher.sweep_temporary(
        store.path(dg.AssetKey(["fraud", "card_features"]), "2024-01-02")
    )
    assert [p.name for p in (tmp_path / "_tmp").iterdir()] == [live.name]
    assert not legacy.exists()


def test_publishing_on_s3_copies_then_removes_staging_and_quarantines(
    aws_env, tmp_path: Path
) -> None:
    root = f"s3://{aws_env.bucket}/publish-{tmp_path.name}"
    resource = store_resources(root, aws_env.endpoint_url, lock_space=str(tmp_path / "locks"))

    def run(values=None):
        return dg.materialize(
            [meter],
            resources=resource,
            partition_key="2024-01-02",
            run_config={"ops": {"meter": {"config": {"values": json.dumps(values or {})}}}},
            raise_on_error=False,
        )

    assert run().success
    client = aws_env.client()
    base = root.removeprefix(f"s3://{aws_env.bucket}/")
    key = f"{base}/meter/readings/2024-01-02.parquet"
    before = client.get_object(Bucket=aws_env.bucket, Key=key)["Body"].read()

    bad = run({"2024-01-02": [-7.0]})
    assert not bad.success
    assert client.get_object(Bucket=aws_env.bucket, Key=key)["Body"].read() == before
    listed = {
        o["Key"].removeprefix(base + "/")
        for o in client.list_objects_v2(Bucket=aws_env.bucket, Prefix=base)["Contents"]
    }
    assert f"_quarantine/meter/readings/2024-01-02/{bad.run_id}.parquet" in listed
    assert "_rejected/meter/readings/2024-01-02.json" in listed
    assert not any(k.startswith("_staging/") for k in listed)

    downstream = dg.materialize(
        [meter, total],
        selection=[dg.AssetKey(["meter", "total"])],
        resources=resource,
        partition_key="2024-01-02",
        raise_on_error=False,
    )
    assert not downstream.success and "rejected by its blocking checks" in failures(downstream)
    assert run().success
    assert "_rejected/meter/readings/2024-01-02.json" not in {
        o["Key"].removeprefix(base + "/")
        for o in client.list_objects_v2(Bucket=aws_env.bucket, Prefix=base)["Contents"]
    }


def test_an_audit_that_cannot_judge_publishes_nothing_and_leaves_no_staged_file(
    tmp_path: Path,
) -> None:
    key = dg.AssetKey(["meter", "broken"])

    def cannot_judge(staged: Staged) -> validation.SuiteResult:
        raise RuntimeError("the reference data is unreachable")

    audits = [audit(key, "judged", cannot_judge, description="Raises.")]

    @dg.asset(key=key, check_specs=check_specs(audits))
    def broken(context: dg.AssetExecutionContext, asset_store: AssetStore):
        yield from publish(context, asset_store, {key: {None: pa.table({"x": [1]})}}, audits)

    result = dg.materialize([broken], resources=_io(tmp_path), raise_on_error=False)
    assert not result.success
    assert "the reference data is unreachable" in failures(result)
    assert not (tmp_path / "meter" / "broken.parquet").exists()
    assert not any((tmp_path / "_staging").rglob("*.parquet"))
    assert not (tmp_path / "_rejected").exists()
