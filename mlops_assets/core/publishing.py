"""Write, audit, publish: data that a blocking check rejects never replaces the published version.

An asset whose output has blocking checks does not hand its frames to the IO manager. It calls
:func:`publish`, which for every partition of the step

1. **writes** each output to a staging place (``<root>/_staging/<asset>/<partition>/<run>.parquet``:
   the same disk or bucket, a tree no reader looks in);
2. **audits** the staged bytes with the asset's :class:`Audit` s (GX suites, key and time-series
   checks, the use case's own rules), and emits one Dagster check result per audit;
3. **publishes** the partition only if every audit passed: each staged file is renamed over the
   published path (one ``os.replace`` on disk; on S3 a server-side copy, the staged object
   removed after). Outputs published together (a day's transactions and labels) move under one
   lock, behind a journal that any later reader or writer completes if the mover died half-way;
4. otherwise **quarantines** the staged files (``<root>/_quarantine/<asset>/<partition>/<run>.parquet``,
   next to a JSON report of the failed checks) and leaves a *rejected* marker
   (``<root>/_rejected/<asset>/<partition>.json``) until a later version of that partition passes.

The published file stays byte-identical after a rejection. Dagster still records the
materialization of the rejected version (the UI shows it with ``published: false``, its
quarantine path and the version still published, and its failed checks), and the step fails, so
nothing downstream in that run is built. Later runs, whatever launched them, are refused by the IO
manager while the marker stands (:meth:`Publisher.refuse_rejected`): reading the older published
file instead would make Dagster record the rejected version as the input of what they build.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core import reporting, storage
from mlops_assets.core.locks import named_lock

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.validation import SuiteResult

STAGING = "_staging"
QUARANTINE = "_quarantine"
REJECTED = "_rejected"
JOURNAL = "_publishing"
# The partition segment of an unpartitioned asset in the staging, quarantine and marker trees.
UNPARTITIONED = "_unpartitioned"

# How long a second publisher of the same partition waits before giving up: a publish is a few
# renames, so waiting this long means something is wrong, and the run should say so.
PUBLISH_LOCK_TIMEOUT_S = 600.0


class RejectedPartitionError(dg.Failure):
    """A run asked for a partition whose latest version was rejected by its blocking checks."""


# -- audits -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staged:
    """What an audit sees: the staged tables of one partition, by asset key, and the published
    data of the deployment (through the asset store) for audits that compare with history."""

    partition_key: str | None
    partitions_def: dg.PartitionsDefinition | None
    tables: Mapping[dg.AssetKey, pa.Table]
    store: AssetStore  # where the step's earlier partitions are read (history, windows)
    _pandas: dict[dg.AssetKey, Any] = field(default_factory=dict, repr=False, compare=False)

    def frame(self, key: dg.AssetKey) -> Any:
        """The staged table of ``key`` as a pandas frame (what GX and the key checks take),
        converted once for all the audits of the partition."""
        if key not in self._pandas:
            self._pandas[key] = self.tables[key].to_pandas()
        return self._pandas[key]

    def polars(self, key: dg.AssetKey) -> Any:
        import polars as pl

        return pl.from_arrow(self.tables[key])

    @property
    def time_window(self) -> dg.TimeWindow | None:
        """The partition's time window, for a time-partitioned asset."""
        if self.partition_key is None or not isinstance(
            self.partitions_def, dg.TimeWindowPartitionsDefinition
        ):
            return None
        return self.partitions_def.time_window_for_partition_key(self.partition_key)


@dataclass(frozen=True)
class Audit:
    """A blocking check judged on staged data before it is published.

    ``evaluate`` takes the staged partition and returns a
    :class:`~mlops_assets.core.validation.SuiteResult`; ``spec`` is what Dagster shows (the asset
    declares it in ``check_specs``, and the asset's step emits its result).
    """

    spec: dg.AssetCheckSpec
    evaluate: Callable[[Staged], SuiteResult]

    @property
    def asset_key(self) -> dg.AssetKey:
        return self.spec.asset_key

    @property
    def name(self) -> str:
        return self.spec.name


def audit(
    asset_key: dg.AssetKey,
    name: str,
    evaluate: Callable[[Staged], SuiteResult],
    *,
    description: str,
    partitions_def: dg.PartitionsDefinition | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Audit:
    """Declare a blocking audit of ``asset_key`` (``partitions_def``: the asset's, if any)."""
    from mlops_assets.core.validation import partitioned_checks_preview

    with partitioned_checks_preview():
        spec = dg.AssetCheckSpec(
            name,
            asset=asset_key,
            blocking=True,
            description=description,
            partitions_def=partitions_def,
            metadata=metadata,
        )
    return Audit(spec=spec, evaluate=evaluate)


def check_specs(audits: Iterable[Audit]) -> list[dg.AssetCheckSpec]:
    """The check specs an audited asset declares (``@asset(check_specs=...)``)."""
    return [a.spec for a in audits]


# -- where things live --------------------------------------------------------------------------


def _segment(partition_key: str | None) -> str:
    return UNPARTITIONED if partition_key is None else storage.safe_segment(partition_key)


@dataclass(frozen=True)
class Place:
    """The paths of one partition of one asset: published, staged, quarantined, marked."""

    root: UPath
    key: dg.AssetKey
    partition_key: str | None
    published: UPath

    def _under(self, tree: str) -> UPath:
        return self.root.joinpath(tree, *self.key.path)

    def staged(self, run_id: str) -> UPath:
        return self._under(STAGING) / _segment(self.partition_key) / f"{run_id}.parquet"

    def quarantined(self, run_id: str) -> UPath:
        return self._under(QUARANTINE) / _segment(self.partition_key) / f"{run_id}.parquet"

    @property
    def marker(self) -> UPath:
        return self._under(REJECTED) / f"{_segment(self.partition_key)}.json"

    @property
    def journal(self) -> UPath:
        return self._under(JOURNAL) / f"{_segment(self.partition_key)}.json"


def _lock_name(keys: Iterable[dg.AssetKey], partition_key: str | None) -> str:
    joined = "+".join(sorted(k.to_user_string() for k in keys))
    return f"publish:{joined}:{_segment(partition_key)}"


# -- moving objects -----------------------------------------------------------------------------


def _exists(path: UPath) -> bool:
    if storage.is_local(path):
        return Path(path.path).exists()
    path.fs.invalidate_cache(path.parent.path)
    return path.exists()


def move(src: UPath, dst: UPath) -> None:
    """Move ``src`` over ``dst`` so that a reader of ``dst`` sees the old or the new bytes, never
    a mix: a rename on disk; on S3 a server-side copy (atomic per object), then the source goes."""
    if storage.is_local(src):
        target = Path(dst.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src.path, target)
        storage.fsync_dir(target.parent)
        return
    src.fs.copy(src.path, dst.path)
    src.fs.rm(src.path)
    src.fs.invalidate_cache(dst.parent.path)
    src.fs.invalidate_cache(src.parent.path)


def _remove(path: UPath) -> None:
    if storage.is_local(path):
        with contextlib.suppress(FileNotFoundError):
            Path(path.path).unlink()
        return
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm(path.path)
    path.fs.invalidate_cache(path.parent.path)


def _listing(folder: UPath) -> list[str]:
    """Names in ``folder`` (empty if it does not exist)."""
    if storage.is_local(folder):
        local = Path(folder.path)
        return sorted(p.name for p in local.iterdir()) if local.is_dir() else []
    folder.fs.invalidate_cache(folder.path)
    try:
        return sorted(Path(p).name for p in folder.fs.ls(folder.path, detail=False))
    except FileNotFoundError:
        return []


# -- the publisher ------------------------------------------------------------------------------


@dataclass
class PartitionVerdict:
    """What became of one partition of one step."""

    partition_key: str | None
    published: bool
    failed_checks: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # asset -> path


class Publisher:
    """Stages, audits, publishes and refuses, for one data root (disk or bucket).

    ``place`` maps an asset key and partition to the published path (the IO manager's layout);
    ``lock_space`` is the deployment's lock space (:func:`mlops_assets.core.locks.lock_space`).
    """

    def __init__(
        self,
        root: UPath,
        published_path: Callable[[dg.AssetKey, str | None], UPath],
        lock_space: str,
    ) -> None:
        self.root = root
        self._published_path = published_path
        self.lock_space = lock_space

    def place(self, key: dg.AssetKey, partition_key: str | None) -> Place:
        return Place(self.root, key, partition_key, self._published_path(key, partition_key))

    @property
    def tmp_dir(self) -> UPath | None:
        """Where local writes put their temporary files (``None`` on S3: uploads need none)."""
        return self.root / storage.TMP_DIR if storage.is_local(self.root) else None

    # ---- writing ----

    def stage(self, place: Place, run_id: str, table: pa.Table) -> str:
        """Write ``table`` to the staging place of ``run_id``; return its content hash."""
        return storage.write_parquet(place.staged(run_id), table, tmp_dir=self.tmp_dir)

    def partition_lock(
        self, keys: Iterable[dg.AssetKey], partition_key: str | None
    ) -> contextlib.AbstractContextManager[None]:
        """The lock that publishers of these outputs' partition hold while they move files:
        held by a reader, it sees every output from the same run."""
        name = _lock_name(keys, partition_key)
        return named_lock(self.lock_space, name, timeout_s=PUBLISH_LOCK_TIMEOUT_S)

    def publish_together(self, places: Sequence[Place], run_id: str) -> None:
        """Move the staged files of ``run_id`` over their published paths, all or none.

        Under the partition's lock, so concurrent runs of one partition publish one after the
        other, never interleaved. With several outputs a journal naming every move is written
        first and removed last: if the process dies in between, the next reader or publisher
        completes the moves. One output needs none: its one move is atomic by itself.
        """
        partition_key = places[0].partition_key
        name = _lock_name((p.key for p in places), partition_key)
        journal = {
            "lock": name,
            "run_id": run_id,
            "partition": partition_key,
            "assets": [list(p.key.path) for p in places],
        }
        with self.partition_lock((p.key for p in places), partition_key):
            self._complete_journals(places)
            if len(places) > 1:
                for p in places:
                    storage.write_pointer(p.journal, journal, tmp_dir=self.tmp_dir)
            self._replay(journal, journaled=len(places) > 1)

    def _replay(self, journal: Mapping[str, Any], *, journaled: bool = True) -> None:
        """Finish the moves of ``journal`` (idempotent: a file already moved is not staged)."""
        places = [self.place(dg.AssetKey(k), journal["partition"]) for k in journal["assets"]]
        for p in places:
            staged = p.staged(journal["run_id"])
            if _exists(staged):
                move(staged, p.published)
        # The partition is good again: the markers go, then the journals (last: they are the
        # proof that the moves above still had to be finished).
        for p in places:
            _remove(p.marker)
        for p in places if journaled else ():
            _remove(p.journal)

    def _complete_journals(self, places: Sequence[Place]) -> None:
        """Finish the publishes of these partitions that a dead process left half-done."""
        for p in places:
            journal = storage.read_pointer(p.journal)
            if journal is not None:
                self._replay(journal)

    def quarantine(self, place: Place, run_id: str, report: Mapping[str, Any]) -> str:
        """Move the staged file of ``run_id`` to quarantine, with ``report`` beside it, and mark
        the partition rejected. Returns the quarantined file's path."""
        target = place.quarantined(run_id)
        move(place.staged(run_id), target)
        report_path = target.with_suffix(".json")
        storage.write_pointer(report_path, {**report, "data": str(target)}, tmp_dir=self.tmp_dir)
        storage.write_pointer(place.marker, {**report, "data": str(target)}, tmp_dir=self.tmp_dir)
        return str(target)

    # ---- reading ----

    def refuse_rejected(self, key: dg.AssetKey, partition_keys: Sequence[str | None]) -> None:
        """Raise :class:`RejectedPartitionError` if the latest version of any of
        ``partition_keys`` was rejected; first finish any publish that died half-way."""
        wanted = {_segment(k) for k in partition_keys}
        journals = {
            n.removesuffix(".json") for n in _listing(self.root.joinpath(JOURNAL, *key.path))
        }
        for segment in sorted(wanted & journals):
            partition_key = None if segment == UNPARTITIONED else segment
            journal = storage.read_pointer(self.place(key, partition_key).journal)
            if journal is not None:
                with named_lock(self.lock_space, journal["lock"], timeout_s=PUBLISH_LOCK_TIMEOUT_S):
                    self._complete_journals([self.place(key, partition_key)])
        rejected = {
            n.removesuffix(".json") for n in _listing(self.root.joinpath(REJECTED, *key.path))
        }
        hit = sorted(wanted & rejected)
        if not hit:
            return
        reports = [storage.read_pointer(self.place(key, _unsegment(s)).marker) or {} for s in hit]
        name = key.to_user_string()
        lines = [
            f"- {'' if s == UNPARTITIONED else s + ': '}run {r.get('run_id', '?')} failed "
            f"{', '.join(r.get('failed_checks', [])) or 'its blocking checks'}; the rejected "
            f"data is in {r.get('data', '?')}"
            for s, r in zip(hit, reports, strict=True)
        ]
        what = (
            "its latest version was"
            if hit == [UNPARTITIONED]
            else f"the latest version of {', '.join(hit)} was"
        )
        again = "" if hit == [UNPARTITIONED] else " for these partitions"
        raise RejectedPartitionError(
            description=(
                f"{name}: {what} rejected by its blocking checks, so nothing is built on it "
                "(the version published before stays as it was):\n"
                + "\n".join(lines)
                + f"\nFix the source and materialize {name} again{again}; it is published "
                "once its checks pass."
            ),
            metadata={"rejected_partitions": [_unsegment(s) or "" for s in hit]},
            allow_retries=False,
        )

    # ---- clean-up ----

    def sweep(self, key: dg.AssetKey, partition_key: str | None, instance: Any) -> None:
        """Remove staged files of runs that are over (killed before they published or
        quarantined): the next run cleans up."""
        place = self.place(key, partition_key)
        folder = place.staged("x").parent
        for name in _listing(folder):
            run_id = name.removesuffix(".parquet")
            run = instance.get_run_by_id(run_id) if instance is not None else None
            if run is None or run.is_finished:
                _remove(folder / name)

    def sweep_temporary(self, target: UPath) -> None:
        """Before a write to ``target``: remove the temporary files of writers that died (in
        ``_tmp/``, and those older versions left in ``target``'s folder)."""
        if self.tmp_dir is None:
            return
        storage.sweep_temporary_files(Path(self.tmp_dir.path))
        storage.sweep_legacy_temporary_files(Path(target.path).parent)


def _unsegment(segment: str) -> str | None:
    return None if segment == UNPARTITIONED else segment


# -- the step -----------------------------------------------------------------------------------


def publish(
    context: dg.AssetExecutionContext,
    store: AssetStore,
    outputs: Mapping[dg.AssetKey, Mapping[str | None, Any]],
    audits: Sequence[Audit] = (),
    *,
    metadata: Mapping[dg.AssetKey, Mapping[str, Any]] | None = None,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Stage, audit and publish the step's outputs, partition by partition.

    ``outputs`` maps each asset key of the step to its frames by partition key (``None`` for an
    unpartitioned asset); every key must have the same partitions. Yields one
    ``MaterializeResult`` per asset (data version = content hash of what was staged; metadata
    says per partition whether it was published, and where rejected data went) and one check
    result per audit. A partition is published only if every audit passed on it; the step then
    fails (Dagster fails a step whose blocking check failed), after the good partitions of a
    ranged step were published.
    """
    publisher = store.publisher
    # A subset of a multi-asset (one asset picked in the UI or with `--select`): the outputs
    # not selected still reach the audits of those that are (labels are judged against the
    # day's transactions), but are neither staged nor published, and their own checks, not
    # selected either, do not run.
    selected = set(context.selected_asset_keys)
    companions = {k: frames for k, frames in outputs.items() if k not in selected}
    checks = set(context.selected_asset_check_keys)
    audits = [a for a in audits if a.spec.key in checks]
    unknown = [a.name for a in audits if a.asset_key not in outputs or a.asset_key not in selected]
    if unknown:
        raise ValueError(f"audits of assets this step does not write: {', '.join(unknown)}")
    outputs = {k: frames for k, frames in outputs.items() if k in selected}
    keys = list(outputs)
    partitions = sorted(
        {p for frames in outputs.values() for p in frames}, key=lambda p: (p is None, p or "")
    )
    for key, frames in {**outputs, **companions}.items():
        if set(frames) != set(partitions):
            raise ValueError(f"{key.to_user_string()}: every output needs the same partitions")
    run_id = context.run.run_id
    partitions_def = context.assets_def.partitions_def

    hashes: dict[dg.AssetKey, dict[str | None, str]] = {k: {} for k in keys}
    rows: dict[dg.AssetKey, dict[str | None, int]] = {k: {} for k in keys}
    previews: dict[dg.AssetKey, pa.Table] = {}
    results: dict[str, dict[str | None, SuiteResult]] = {a.name: {} for a in audits}
    verdicts: list[PartitionVerdict] = []
    # Temporary files of dead writers: once per step and asset folder, not once per partition.
    for key in keys:
        publisher.sweep_temporary(publisher.place(key, partitions[0]).published)
    for partition_key in partitions:
        places = [publisher.place(k, partition_key) for k in keys]
        for p in places:
            publisher.sweep(p.key, partition_key, context.instance)
        staged: dict[dg.AssetKey, pa.Table] = {}
        for place in places:
            table = storage.to_arrow(outputs[place.key][partition_key])
            hashes[place.key][partition_key] = publisher.stage(place, run_id, table)
            rows[place.key][partition_key] = table.num_rows
            previews.setdefault(place.key, table)
            # The audits read the staged bytes back: what is judged is what would be published.
            staged[place.key] = storage.read_parquet(place.staged(run_id))
        for key, frames in companions.items():
            staged[key] = storage.to_arrow(frames[partition_key])
        view = Staged(partition_key, partitions_def, staged, store)
        failed = []
        try:
            for a in audits:
                result = a.evaluate(view)
                results[a.name][partition_key] = result
                context.log.info(f"{_label(partition_key)} {a.name}: {_outcome(result)}")
                if not result.success:
                    failed.append(a.name)
        except BaseException:
            # An audit that could not be judged decides nothing: the staged files go, the
            # published version stays, and the step fails with the audit's error.
            for place in places:
                _remove(place.staged(run_id))
            raise
        verdict = PartitionVerdict(partition_key, published=not failed, failed_checks=failed)
        if failed:
            report = {
                "run_id": run_id,
                "partition": partition_key,
                "failed_checks": failed,
                "rejected_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            for place in places:
                verdict.quarantined[place.key.to_user_string()] = publisher.quarantine(
                    place, run_id, {**report, "asset": place.key.to_user_string()}
                )
            context.log.error(
                f"{_label(partition_key)} rejected by {', '.join(failed)}: the published version "
                f"is unchanged; the rejected data is in {', '.join(verdict.quarantined.values())}"
            )
        else:
            publisher.publish_together(places, run_id)
        verdicts.append(verdict)

    for key in keys:
        yield _materialization(
            publisher,
            key,
            hashes[key],
            rows[key],
            previews[key],
            verdicts,
            (metadata or {}).get(key, {}),
        )
    # A ranged step, even of one day (a single-run backfill of one partition), has no
    # partition key of its own: Dagster would record its check results without a partition.
    ranged = partitions != [None] and not context.has_partition_key
    targets = _materializations_of_run(context) if ranged else {}
    for a in audits:
        if ranged and a.spec.partitions_def is not None:
            yield from _partition_check_results(context, a, results[a.name], targets)
        else:
            yield _check_result(a, results[a.name])


def _label(partition_key: str | None) -> str:
    return f"partition {partition_key}:" if partition_key is not None else "table:"


def _outcome(result: SuiteResult) -> str:
    return "passed" if result.success else f"failed ({len(result.failures)} failing)"


def _materialization(
    publisher: Publisher,
    key: dg.AssetKey,
    hashes: Mapping[str | None, str],
    rows: Mapping[str | None, int],
    preview: pa.Table,
    verdicts: Sequence[PartitionVerdict],
    extra: Mapping[str, Any],
) -> dg.MaterializeResult:
    version = storage.combined_version(hashes)
    published = all(v.published for v in verdicts)
    meta: dict[str, Any] = {
        **reporting.table_metadata(preview),
        "dagster/row_count": dg.MetadataValue.int(sum(rows.values())),
        "data_version": dg.MetadataValue.text(version),
        "published": dg.MetadataValue.bool(published),
    }
    rejected = [v for v in verdicts if not v.published]
    if rejected:
        quarantined = [v.quarantined[key.to_user_string()] for v in rejected]
        meta["quarantine"] = dg.MetadataValue.text("\n".join(quarantined))
        meta["rejected_by"] = dg.MetadataValue.text(
            ", ".join(sorted({c for v in rejected for c in v.failed_checks}))
        )
        # What readers get meanwhile: the content hash of each rejected partition's published
        # file, or "none" when the partition was never published.
        meta["published_data_version"] = dg.MetadataValue.json(
            {
                str(v.partition_key): storage.content_hash(
                    publisher.place(key, v.partition_key).published
                )
                or "none"
                for v in rejected
            }
        )
    if len(verdicts) > 1:
        # Each partition's own version as readers see it: the new hash where it was published,
        # the file still published (or "none") where it was rejected.
        meta[storage.PARTITION_DATA_VERSIONS] = dg.MetadataValue.json(
            {
                str(v.partition_key): hashes[v.partition_key]
                if v.published
                else storage.content_hash(publisher.place(key, v.partition_key).published) or "none"
                for v in verdicts
            }
        )
        meta["partitions"] = dg.MetadataValue.md(
            reporting.markdown_table(
                [
                    {
                        "partition": v.partition_key,
                        "rows": rows[v.partition_key],
                        "data_version": hashes[v.partition_key],
                        "published": "yes" if v.published else "no: " + ", ".join(v.failed_checks),
                    }
                    for v in verdicts
                ],
                ["partition", "rows", "data_version", "published"],
            )
        )
    meta.update(extra)
    return dg.MaterializeResult(asset_key=key, metadata=meta, data_version=dg.DataVersion(version))


def _check_result(a: Audit, by_partition: Mapping[str | None, SuiteResult]) -> dg.AssetCheckResult:
    from mlops_assets.core.validation import asset_check_result, merge_partition_results

    result = merge_partition_results(a.name, by_partition)
    return asset_check_result(result, asset_key=a.asset_key, check_name=a.name)


def _materializations_of_run(context: dg.AssetExecutionContext) -> dict[tuple, Any]:
    """The materializations this run recorded, by asset key and partition: what each check
    evaluation of a ranged step points at (read once for all the step's checks)."""
    from mlops_assets.core.dagster_internals import AssetCheckEvaluationTargetMaterializationData

    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    targets = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        # Newest last: a partition written twice in one run (a retried step) points at the last.
        targets[(materialization.asset_key, materialization.partition)] = (
            AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
        )
    return targets


def _partition_check_results(
    context: dg.AssetExecutionContext,
    a: Audit,
    by_partition: Mapping[str | None, SuiteResult],
    targets: Mapping[tuple, Any],
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """One evaluation per partition of a ranged step, each recorded on its own partition.

    Dagster records an ``AssetCheckResult`` of a ranged step without a partition, so the UI
    would show the check as *skipped* on every day of a backfill although it judged each one.
    The step therefore yields the check's output once (it ran) and an evaluation per partition,
    each pointing at that partition's materialization of this run (``targets``).
    """
    from mlops_assets.core.validation import asset_check_result

    key = dg.AssetCheckKey(a.asset_key, a.name)
    output = next(
        name
        for name, spec in context.assets_def.check_specs_by_output_name.items()
        if spec.key == key
    )
    yield dg.Output(None, output_name=output)
    for partition, result in sorted(by_partition.items(), key=lambda kv: kv[0] or ""):
        check = asset_check_result(result, asset_key=a.asset_key, check_name=a.name)
        yield dg.AssetCheckEvaluation(
            asset_key=a.asset_key,
            check_name=a.name,
            passed=check.passed,
            metadata=check.metadata,
            target_materialization_data=targets.get((a.asset_key, partition)),
            severity=check.severity,
            description=check.description,
            blocking=True,
            partition=partition,
        )
