"""The lineage walker on a tiny graph: raw days → features of each day → one summary over all days.

Each asset reports the data version it was told to, so the versions the walk finds are known in
advance; nothing is stored but the event log.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of the assets.

from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.core.lineage import SelfRecorded, changed_links, upstream

DAYS = dg.StaticPartitionsDefinition(["d1", "d2", "d3", "d4"])
RAW = dg.AssetKey("raw")
FEATURES = dg.AssetKey("features")
SUMMARY = dg.AssetKey("summary")


class Version(dg.Config):
    """The data version the asset reports (what its bytes would hash to)."""

    tag: str = "a"


@dg.asset(partitions_def=DAYS)
def raw(context: dg.AssetExecutionContext, config: Version) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"raw-{context.partition_key}-{config.tag}")
    )


@dg.asset(partitions_def=DAYS, deps=[raw])
def features(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(data_version=dg.DataVersion(f"features-{context.partition_key}"))


# Unpartitioned over a partitioned parent: Dagster maps it to every partition of `features`.
@dg.asset(deps=[features])
def summary() -> dg.MaterializeResult:
    return dg.MaterializeResult(data_version=dg.DataVersion("summary-1"))


GRAPH = dg.Definitions(assets=[raw, features, summary]).resolve_asset_graph()


def _run(instance: dg.DagsterInstance, assets: list, partition: str | None = None, tag: str = "a"):
    result = dg.materialize(
        assets,
        instance=instance,
        partition_key=partition,
        run_config={"ops": {"raw": {"config": {"tag": tag}}}} if raw in assets else None,
    )
    assert result.success
    return result.run_id


@pytest.fixture
def instance(tmp_path: Path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def test_walk_names_each_partition_read_with_its_version_and_run(instance) -> None:
    first = {day: _run(instance, [raw], day) for day in ("d1", "d2", "d3")}
    # Each day made again, with its features: they read the raw record of their own run.
    runs = {day: _run(instance, [raw, features], day) for day in ("d1", "d2", "d3")}
    summary_run = _run(instance, [summary])
    root = upstream(instance, GRAPH, SUMMARY, None)

    assert (root.asset_key, root.run_id, root.data_version) == ("summary", summary_run, "summary-1")
    by_day = {p.partition: p for p in root.parents}
    # d4 was never materialized: the mapping names it, so the walk names it missing.
    assert set(by_day) == {"d1", "d2", "d3", "d4"}
    assert by_day["d4"].missing is not None and by_day["d4"].run_id is None
    for day in ("d1", "d2", "d3"):
        feature = by_day[day]
        assert feature.missing is None
        assert feature.data_version == feature.current_data_version == f"features-{day}"
        [source] = feature.parents
        assert (source.asset_key, source.partition) == ("raw", day)
        assert source.run_id == runs[day] != first[day]
        assert feature.run_id == runs[day]
        assert source.data_version == source.current_data_version == f"raw-{day}-a"
    assert changed_links(root) == []


def test_a_source_changed_since_it_was_read_is_found_and_named(instance) -> None:
    first = {day: _run(instance, [raw, features], day) for day in ("d1", "d2")}
    _run(instance, [summary])
    # d2 of raw changes afterwards; nothing downstream is rebuilt.
    later = _run(instance, [raw], "d2", tag="b")

    root = upstream(instance, GRAPH, SUMMARY, None)
    [changed] = changed_links(root)
    assert (changed.asset_key, changed.partition) == ("raw", "d2")
    # What was read then (its version, the run that made it) beside what is there now.
    assert changed.data_version == "raw-d2-a" and changed.current_data_version == "raw-d2-b"
    assert changed.run_id == first["d2"] != later

    # Walking from the new raw record itself: nothing changed since.
    assert changed_links(upstream(instance, GRAPH, RAW, "d2")) == []
    # The old version is still found by its data version.
    old = upstream(instance, GRAPH, RAW, "d2", data_version="raw-d2-a")
    assert old.run_id == first["d2"] and old.changed


def test_a_missing_parent_is_a_named_link_and_reads_override_the_mapping(instance) -> None:
    _run(instance, [raw], "d1")
    # features of d3 made while raw d3 never was: a hole in the lineage, not a shorter chain.
    _run(instance, [features], "d3")
    link = upstream(instance, GRAPH, FEATURES, "d3")
    [hole] = link.parents
    assert (hole.asset_key, hole.partition, hole.run_id) == ("raw", "d3", None)
    assert "no materialization" in hole.missing

    # A reader that recorded its own reads (a window of days, versions in its terms) is walked
    # by those, and compared with their versions now in the same terms.
    now = {"d1": "hash-1", "d3": "hash-3-new"}
    recorded = upstream(
        instance,
        GRAPH,
        FEATURES,
        "d3",
        reads={RAW: {"d1": "hash-1", "d3": "hash-3"}},
        current_version=lambda key, partition: now[partition],
    )
    by_day = {p.partition: p for p in recorded.parents}
    assert by_day["d1"].missing is None and not by_day["d1"].changed
    assert by_day["d3"].missing is not None  # recorded as read, yet no record precedes it
    assert [
        (c.partition, c.data_version, c.current_data_version) for c in changed_links(recorded)
    ] == [("d3", "hash-3", "hash-3-new")]

    # The same, recorded by the materialization itself (a versioned dataset's manifest) and met
    # on the way: its own bytes now are its current version, whatever was materialized since.
    def manifest(key, partition, run_id):
        if key != FEATURES:
            return None
        return SelfRecorded(reads={RAW: {"d1": "hash-1"}}, current="features-d3-bytes")

    _run(instance, [features], "d3")  # a later version of the partition: another dataset
    walked = upstream(
        instance,
        GRAPH,
        FEATURES,
        "d3",
        run_id=link.run_id,
        reads_of=manifest,
        current_version=lambda key, partition: now[partition],
    )
    assert walked.run_id == link.run_id and walked.current_data_version == "features-d3-bytes"
    assert [(p.asset_key, p.partition, p.changed) for p in walked.parents] == [("raw", "d1", False)]

    nothing = upstream(instance, GRAPH, SUMMARY, None)
    assert nothing.missing is not None and nothing.parents == ()
