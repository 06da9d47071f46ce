"""Sensors with no domain in them: re-scoring when a champion alias moves.

A batch output (fraud scores, demand forecasts) records, on each materialization, which registry
version of each model produced it: the metadata entry :data:`CHAMPION_VERSIONS`, a JSON object
``{model name: version}``. When the ``champion`` alias of one of those models no longer points at
that version, the partition is stale: the promotion gate moved the alias, or someone rolled it
back in the MLflow UI. The sensor asks for those partitions again.

Comparing each partition's own record with the registry, instead of remembering alias moves in a
cursor, makes the sensor right in every case a cursor gets wrong: a run that promoted and then
scored in one go (nothing to do), a rollback to an earlier version (stale again), a sensor that
was stopped while the alias moved (caught up at its first tick). The run key names the stale
materialization, so a request is made once per stale record and never repeated while its run is
queued.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from mlops_assets.core.policies import scheduled_run_tags
from mlops_assets.core.tracking import CHAMPION, MlflowTracking

#: Metadata entry of a batch output: ``{model name: registry version}`` of the models it used.
CHAMPION_VERSIONS = "champion_versions"


def champion_versions_metadata(versions: dict[str, str]) -> dict[str, dg.MetadataValue]:
    """The metadata a batch output records so that :func:`rescore_on_champion_change` can tell
    whether it is stale."""
    return {CHAMPION_VERSIONS: dg.MetadataValue.json({k: str(v) for k, v in versions.items()})}


def stale_partitions(
    recorded: dict[str, dict[str, str]], champions: dict[str, str | None]
) -> dict[str, dict[str, str]]:
    """The partitions whose recorded versions differ from the current champions, with the
    versions they should be rescored with.

    ``recorded``: partition -> {model: version it was produced with}; ``champions``: model ->
    version the alias points at now (None: no champion, e.g. the alias was deleted; such a model
    cannot rescore anything, so its partitions are left as they are).
    """
    stale: dict[str, dict[str, str]] = {}
    for partition, used in recorded.items():
        moved = {
            model: current
            for model, version in used.items()
            if (current := champions.get(model)) is not None and current != version
        }
        if moved:
            stale[partition] = moved
    return stale


def rescore_on_champion_change(
    *,
    name: str,
    target: dg.AssetKey,
    recent_partitions: int = 7,
    minimum_interval_seconds: int = 120,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A sensor that re-materializes the most recent ``recent_partitions`` partitions of
    ``target`` whose champion versions are out of date.

    Only recent partitions: older scores are a record of what was decided then, and rescoring a
    year of history on every promotion would be a backfill nobody asked for (run one from the UI
    if you want it). Running by default: it only reads the registry, every two minutes, and
    without it batch outputs silently disagree with the model the API serves.
    """

    @dg.sensor(
        name=name,
        target=[target],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Re-materializes the {recent_partitions} latest partitions of "
        f"{target.to_user_string()} whose models are no longer champion (promotion or rollback).",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, mlflow: MlflowTracking
    ) -> Iterator[dg.RunRequest | dg.SkipReason]:
        records = _latest_records(context.instance, target, recent_partitions)
        if not records:
            yield dg.SkipReason(f"{target.to_user_string()} has no materialization yet")
            return
        recorded = {p: _recorded_versions(r) for p, r in records.items()}
        models = sorted({m for used in recorded.values() for m in used})
        champions = {}
        for model in models:
            version = mlflow.get_version_by_alias(model, CHAMPION)
            champions[model] = None if version is None else str(version.version)
        stale = stale_partitions(recorded, champions)
        if not stale:
            yield dg.SkipReason(
                f"the {len(records)} latest partitions were made by the current champions "
                f"({', '.join(f'{m} v{v}' for m, v in champions.items() if v) or 'none yet'})"
            )
            return
        for partition, moved in sorted(stale.items()):
            yield dg.RunRequest(
                partition_key=partition,
                # One request per stale record: the storage id changes once the rescore lands.
                run_key=f"{partition}:{records[partition].storage_id}",
                tags={
                    **scheduled_run_tags("rescore"),
                    "mlops/champions": ",".join(f"{m}=v{v}" for m, v in sorted(moved.items())),
                },
            )

    return _sensor


def _latest_records(
    instance: dg.DagsterInstance, key: dg.AssetKey, count: int
) -> dict[str, dg.EventLogRecord]:
    """The latest materialization record of each of the ``count`` latest partitions."""
    partitions = sorted(instance.get_materialized_partitions(key))[-count:]
    if not partitions:
        return {}
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions),
        # Newest first; re-materializations of the same partitions can repeat them.
        limit=count * 20,
    )
    latest: dict[str, dg.EventLogRecord] = {}
    for record in result.records:
        partition = record.partition_key
        if partition is not None and partition not in latest:
            latest[partition] = record
    return latest


def _recorded_versions(record: dg.EventLogRecord) -> dict[str, str]:
    materialization = record.asset_materialization
    entry = materialization.metadata.get(CHAMPION_VERSIONS) if materialization else None
    value = getattr(entry, "value", None)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
