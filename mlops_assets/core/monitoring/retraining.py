"""Retraining on failed monitors: the sensor that closes the loop.

A monitoring asset that judges a champion (live performance on delayed labels, drift of its
inputs) records each failed verdict as a :class:`~mlops_assets.core.monitoring.verdicts.Trigger`
in its materialization metadata, under :data:`RETRAINING_TRIGGER` (:func:`trigger_metadata`). The
sensor of :func:`retrain_on_failed_monitors` reads the materializations it has not seen yet and
requests the retraining job each trigger names. The promotion gate then decides, as for any
scheduled retraining, whether the new model replaces the champion.

Why a sensor on materializations, not a run-status sensor on the checks: the trigger carries what
only the monitor knows (the champion version it judged, the evaluation day, the job and partition
that retrain it), and the record of it stays on the monitor's materialization, where the UI shows
it next to the figures that fired it.

No retraining storms: the run key (:meth:`Trigger.run_key`) names the model, the champion version
and the evaluation day, and Dagster never starts two runs of one sensor with the same run key. So
a model is retrained at most once per champion version and day, whichever monitor (performance or
drift) failed first; a later day, or a new champion that fails too, asks again. A tick that
sees several failed days of one version at once (a backfill of the monitor, past days re-judged
as late labels land) asks once, for the latest day (:func:`triggers_to_request`). Days with
insufficient data never carry a trigger (their verdicts are not ``failed``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import timedelta

import dagster as dg

from mlops_assets.core.monitoring.verdicts import Trigger

#: Materialization metadata key of a monitor: a JSON list of ``Trigger.to_json()``. Absent on a
#: day that fired nothing.
RETRAINING_TRIGGER = "retraining_trigger"

#: Materializations read per query; the sensor pages through more (a monitor backfill).
_PAGE = 1000


def trigger_metadata(triggers: Sequence[Trigger]) -> dict[str, dg.MetadataValue]:
    """The materialization metadata a monitor records for its failed verdicts' triggers: ``{}``
    when there is none, so that the key is absent on a quiet day."""
    if not triggers:
        return {}
    return {RETRAINING_TRIGGER: dg.MetadataValue.json([t.to_json() for t in triggers])}


def recorded_triggers(record: dg.EventLogRecord) -> list[Trigger]:
    """The triggers a monitor's materialization record carries (``[]`` for a quiet day).

    Raises ``ValueError`` when the entry is there but is not a list of triggers."""
    materialization = record.asset_materialization
    entry = materialization.metadata.get(RETRAINING_TRIGGER) if materialization else None
    if entry is None:
        return []
    value = getattr(entry, "value", None)
    if not isinstance(value, list):
        raise ValueError(f"{RETRAINING_TRIGGER} should be a JSON list, not {value!r}")
    try:
        return [Trigger.from_json(item) for item in value]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{RETRAINING_TRIGGER} holds a malformed trigger: {error!r}") from error


def triggers_to_request(triggers: Sequence[Trigger]) -> list[Trigger]:
    """The triggers to turn into run requests, from those of one tick in the order they were
    recorded: one per model version, the latest evaluation day's, and for that day the first
    recorded (the monitor that fired first names the run). Sorted by run key.

    One per version rather than one per day: a tick that sees many days at once (a backfill of
    the monitor, the re-evaluation of past days as late labels land, a sensor catching up) would
    otherwise start one retraining per day for the same champion, each on nearly the same data;
    the one on the latest data answers them all.
    """
    chosen: dict[tuple[str, str], Trigger] = {}
    for trigger in triggers:
        version = (trigger.model_name, trigger.model_version)
        kept = chosen.get(version)
        # ISO dates compare as strings; ties keep the first recorded.
        if kept is None or trigger.day > kept.day:
            chosen[version] = trigger
    return sorted(chosen.values(), key=lambda t: t.run_key())


def retrain_on_failed_monitors(
    *,
    name: str,
    monitors: Sequence[dg.AssetKey],
    jobs: Sequence[dg.JobDefinition | dg.UnresolvedAssetJobDefinition],
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    first_tick_lookback: timedelta = timedelta(days=1),
) -> dg.SensorDefinition:
    """A sensor that requests the retraining job named by each new trigger of ``monitors``.

    ``jobs``: every job a trigger may name (Dagster validates a request's ``job_name`` against
    them). One sensor per use case, over all of its monitors: run keys are deduplicated per
    sensor, so the performance and the drift monitor of one model must share it for "whichever
    fired first" to hold.

    The cursor is the highest storage id processed: a restarted sensor goes on where it stopped
    and never replays history. On its very first tick (no cursor: first deployment, a renamed
    sensor, a wiped instance) it reads only the materializations of the last
    ``first_tick_lookback``: the monitors run daily, so a day is enough to act on a failure
    recorded just before the sensor was switched on, while older verdicts judged champions that
    have likely been replaced since, and replaying them would start a retraining per old day.

    A trigger naming a job that is not in ``jobs``, or unreadable trigger metadata, is logged as
    an error and skipped: failing the tick instead would stop every later trigger behind it.
    Running by default: it only reads the event log, and without it a failed monitor changes
    nothing.
    """
    monitors = list(monitors)
    job_names = sorted({job.name for job in jobs})
    shown = ", ".join(key.to_user_string() for key in monitors)

    @dg.sensor(
        name=name,
        jobs=list(jobs),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Requests {', '.join(job_names)} when a check of {shown} fails "
        "(at most once per champion version and evaluation day).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        # Storage ids grow with every event of the instance, across assets: one number covers
        # every monitor (as in Dagster's own multi-asset sensors).
        after = int(context.cursor) if context.cursor else None
        since = None if after is not None else time.time() - first_tick_lookback.total_seconds()
        records = sorted(
            (r for key in monitors for r in _new_records(context.instance, key, after, since)),
            key=lambda r: r.storage_id,
        )
        cursor = max((r.storage_id for r in records), default=None)
        if cursor is None and after is None:
            # First tick with nothing recent: start after what exists, so the next ticks read
            # by storage id only.
            cursor = _latest_storage_id(context.instance, monitors)
        new_cursor = str(cursor) if cursor is not None else context.cursor

        triggers: list[Trigger] = []
        for record in records:
            try:
                found = recorded_triggers(record)
            except ValueError as error:
                context.log.error(f"{_describe(record)}: {error}")
                continue
            for trigger in found:
                if trigger.job not in job_names:
                    context.log.error(
                        f"{_describe(record)} asks for job {trigger.job!r}, which sensor {name} "
                        f"may not start (it may start: {', '.join(job_names)}); trigger skipped"
                    )
                    continue
                triggers.append(trigger)

        requests = [
            dg.RunRequest(
                job_name=trigger.job,
                partition_key=trigger.partition,
                run_key=trigger.run_key(),
                tags=trigger.tags(),
            )
            for trigger in triggers_to_request(triggers)
        ]
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        return dg.SensorResult(
            skip_reason=f"no failed monitor in {len(records)} new materialization(s) of {shown}",
            cursor=new_cursor,
        )

    return _sensor


def _new_records(
    instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None, since: float | None
) -> Iterator[dg.EventLogRecord]:
    """Materialization records of ``key`` after storage id ``after`` (or, without one, recorded
    after the timestamp ``since``), oldest first, every page of them."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=key, after_storage_id=after, after_timestamp=since
    )
    page_cursor = None
    while True:
        result = instance.fetch_materializations(
            records_filter, limit=_PAGE, cursor=page_cursor, ascending=True
        )
        yield from result.records
        if not result.has_more:
            return
        page_cursor = result.cursor


def _latest_storage_id(instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey]) -> int | None:
    latest = [instance.fetch_materializations(key, limit=1).records for key in keys]
    return max((records[0].storage_id for records in latest if records), default=None)


def _describe(record: dg.EventLogRecord) -> str:
    key = record.asset_key.to_user_string() if record.asset_key else "?"
    partition = f" partition {record.partition_key}" if record.partition_key else ""
    return f"materialization {record.storage_id} of {key}{partition}"
