"""Lineage: from a model version, or any materialization, back to the data and code that made it.

Dagster already records, on every materialization, the data version it produced
(``dagster/data_version``), the code version (``dagster/code_version``), the data version of each
input it read (``dagster/input_data_version/<key>``) and a pointer to the input's event that was
current when it ran (``dagster/input_event_pointer/<key>``: the storage id of the input's latest
event then). The MLflow run of a model names its Dagster run, asset and partition
(:func:`mlops_assets.core.tracking.lineage_tags`), and a versioned dataset's manifest names the
partitions it read with their versions. Nothing walked them; this module does.

* :func:`upstream` walks the event log from one materialization up through the asset graph: for
  each parent, the partitions the partition mapping names (or those a reader recorded itself, in
  ``reads``), each resolved to the materialization that existed when the child was made. The
  result is a tree of :class:`Link`: what was read then (data version, Dagster run, storage id)
  beside what is there now.
* :func:`changed_links` lists the links whose data changed since they were read: what a rebuild
  must refuse, by name.
* :func:`model_lineage` ties a registered model version to all of it: its aliases and their
  history, its MLflow run (params, metrics, code version), its training set's manifest and the
  chain of materializations above the model.

A link that cannot be found (a partition never materialized, an event log that lost the run, a
manifest that is gone) is kept with ``missing`` saying why: lineage with a silent hole looks
complete and is not. Each (asset, partition, storage id) is walked once, so a diamond (a bronze day
read by the training set and by the snapshots built on it) costs one walk, and the walk ends.

No use case is named here. A versioned dataset is recognized by its manifest
(:class:`~mlops_assets.core.storage.VersionedDataset`, ``source_data_versions``:
``{input name: {partition: data version}}`` in its extra fields), the training set of a model by
the run tags ``training_set.version`` (``dt=<partition>/run_id=<run>``) and
``training_set.data_version``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core.storage import PARTITION_DATA_VERSIONS, parse_version_name
from mlops_assets.core.tracking import (
    DAGSTER_DATA_VERSION_TAG,
    TAG_ASSET_KEY,
    TAG_CODE_VERSION,
    TAG_GIT_COMMIT,
    TAG_PARTITION_KEY,
    TAG_RUN_ID,
    TAG_TRAINING_SET_DATA_VERSION,
    TAG_TRAINING_SET_VERSION,
    RegistryError,
    as_version,
)

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
    from dagster._core.event_api import EventLogRecord

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.tracking import MlflowTracking

# Dagster's tags on a materialization event (dagster/_core/definitions/data_version.py).
DATA_VERSION_TAG = DAGSTER_DATA_VERSION_TAG
CODE_VERSION_TAG = "dagster/code_version"
INPUT_DATA_VERSION_PREFIX = "dagster/input_data_version/"
INPUT_EVENT_POINTER_PREFIX = "dagster/input_event_pointer/"
# What Dagster writes as the pointer of an input that had no event yet.
NULL_EVENT_POINTER = "NULL"

# The MLflow run tags that name the versioned training set a model was trained on.
TRAINING_SET_VERSION_TAG = TAG_TRAINING_SET_VERSION
TRAINING_SET_DATA_VERSION_TAG = TAG_TRAINING_SET_DATA_VERSION
# MLflow's standard tag for the source commit, the code version where no asset declares one.
GIT_COMMIT_TAG = TAG_GIT_COMMIT

# Event-log pages when looking for one record among a partition's materializations.
_PAGE = 100

CurrentVersion = Callable[[dg.AssetKey, str | None], str | None]


@dataclass(frozen=True)
class SelfRecorded:
    """What a materialization recorded about itself beyond Dagster's tags (a versioned dataset's
    manifest): the partitions it read with their versions (``reads``), and the data version of
    the very bytes it wrote, as they are now (``current``; None when they are gone)."""

    reads: Mapping[dg.AssetKey, Mapping[str | None, str]]
    current: str | None


# What a materialization (key, partition, Dagster run id) recorded itself, if anything.
ReadsOf = Callable[[dg.AssetKey, str | None, str], SelfRecorded | None]
# "Ask the event log for the current version" (None is a version: there is none now).
_LATEST = object()
Reads = Mapping[dg.AssetKey, Mapping[str | None, str]]


class LineageError(LookupError):
    """What was asked for does not exist (a model, a version, an alias): nothing to walk. The
    message says what was looked for and where."""


@dataclass(frozen=True)
class Link:
    """One materialization a downstream step read, as recorded then, and what is there now.

    ``data_version`` is the version that was read (recorded when the reader ran: by Dagster, or
    by the reader itself in a manifest), ``current_data_version`` the version of the latest
    materialization now (for a partition a reader recorded itself: the version of its data now,
    in the reader's own terms). ``run_id`` and ``storage_id`` name the Dagster run and the
    event-log record that made the recorded version. ``missing`` says why a link could not be
    found; it is never left out. ``parents`` are the links above it, ``code_version`` the code
    version Dagster recorded on the materialization.
    """

    asset_key: str
    partition: str | None
    data_version: str | None
    current_data_version: str | None
    run_id: str | None
    storage_id: int | None
    missing: str | None = None
    parents: tuple[Link, ...] = ()
    code_version: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the data changed since it was read: both versions known and different."""
        return (
            self.data_version is not None
            and self.current_data_version is not None
            and self.data_version != self.current_data_version
        )

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey.from_user_string(self.asset_key)

    def walk(self) -> Iterator[Link]:
        """This link and every link above it, depth first (a shared link once per path)."""
        yield self
        for parent in self.parents:
            yield from parent.walk()

    def to_dict(self) -> dict[str, Any]:
        """The link and its parents as plain JSON-able values."""
        return {
            "asset_key": self.asset_key,
            "partition": self.partition,
            "data_version": self.data_version,
            "current_data_version": self.current_data_version,
            "changed": self.changed,
            "run_id": self.run_id,
            "storage_id": self.storage_id,
            "code_version": self.code_version,
            "missing": self.missing,
            "parents": [p.to_dict() for p in self.parents],
        }


# --- the event log --------------------------------------------------------------------------------


def _materialization(record: EventLogRecord) -> dg.AssetMaterialization:
    materialization = record.asset_materialization
    assert materialization is not None  # fetch_materializations returns nothing else
    return materialization


def _tags(record: EventLogRecord) -> Mapping[str, str]:
    return _materialization(record).tags or {}


def _data_version(record: EventLogRecord, partition: str | None) -> str | None:
    """The data version of ``partition`` in ``record``: its own content hash when the step wrote
    several partitions (Dagster's tag then holds one hash over all of them, which a later run of
    that partition alone never reproduces), else Dagster's tag."""
    entry = _materialization(record).metadata.get(PARTITION_DATA_VERSIONS)
    if entry is not None and partition is not None:
        own = entry.value.get(partition) if isinstance(entry.value, Mapping) else None
        if own is not None:
            return str(own)
    return _tags(record).get(DATA_VERSION_TAG)


def _filter(
    key: dg.AssetKey, partition: str | None, before_storage_id: int | None = None
) -> dg.AssetRecordsFilter:
    return dg.AssetRecordsFilter(
        asset_key=key,
        asset_partitions=[partition] if partition is not None else None,
        before_storage_id=before_storage_id,
    )


def _records(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None
) -> Iterator[EventLogRecord]:
    """The materializations of ``key`` (its ``partition``; any, for None), newest first."""
    cursor = None
    while True:
        page = instance.fetch_materializations(_filter(key, partition), limit=_PAGE, cursor=cursor)
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def _latest(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partition: str | None,
    before_storage_id: int | None = None,
) -> EventLogRecord | None:
    """The newest materialization of (``key``, ``partition``), before ``before_storage_id``."""
    found = instance.fetch_materializations(
        _filter(key, partition, before_storage_id), limit=1
    ).records
    return found[0] if found else None


def find_materialization(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partition: str | None,
    *,
    data_version: str | None = None,
    run_id: str | None = None,
) -> EventLogRecord | None:
    """The latest materialization of ``key`` (its ``partition``) with ``data_version`` and made
    by ``run_id`` (either may be None: any); None when there is none."""
    for record in _records(instance, key, partition):
        if run_id is not None and record.run_id != run_id:
            continue
        if data_version is not None and _data_version(record, partition) != data_version:
            continue
        return record
    return None


# --- the walk -------------------------------------------------------------------------------------


def _partitioned(asset_graph: BaseAssetGraph, key: dg.AssetKey) -> bool:
    return asset_graph.has(key) and asset_graph.get(key).partitions_def is not None


def _parent_partitions(
    asset_graph: BaseAssetGraph, child: dg.AssetKey, partition: str | None, parent: dg.AssetKey
) -> tuple[list[str | None], list[str]]:
    """The partitions of ``parent`` that ``partition`` of ``child`` depends on by the graph's
    partition mapping, and those it maps to that do not exist (named as missing links)."""
    if not _partitioned(asset_graph, parent):
        return [None], []
    result = asset_graph.get_parent_partition_keys_for_child(partition, parent, child)
    keys: list[str | None] = sorted(result.partitions_subset.get_partition_keys())
    absent = sorted(result.required_but_nonexistent_subset.get_partition_keys())
    return keys, absent


class _Walker:
    """One walk: caches the latest version of each partition and the parents of each record."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        asset_graph: BaseAssetGraph,
        current_version: CurrentVersion | None,
        reads_of: ReadsOf | None = None,
    ) -> None:
        self.instance = instance
        self.asset_graph = asset_graph
        self.current_version = current_version
        self.reads_of = reads_of
        self._current: dict[tuple[dg.AssetKey, str | None], str | None] = {}
        self._parents: dict[tuple[dg.AssetKey, str | None, int], tuple[Link, ...]] = {}
        self._own: dict[int, SelfRecorded | None] = {}

    def own(
        self, key: dg.AssetKey, partition: str | None, record: EventLogRecord
    ) -> SelfRecorded | None:
        """What ``record``'s materialization recorded itself (``reads_of``), once per record."""
        if self.reads_of is None:
            return None
        if record.storage_id not in self._own:
            self._own[record.storage_id] = self.reads_of(key, partition, record.run_id)
        return self._own[record.storage_id]

    def current(self, key: dg.AssetKey, partition: str | None) -> str | None:
        """The data version of the latest materialization of (``key``, ``partition``) now."""
        if (key, partition) not in self._current:
            latest = _latest(self.instance, key, partition)
            self._current[key, partition] = (
                None if latest is None else _data_version(latest, partition)
            )
        return self._current[key, partition]

    def link(
        self,
        key: dg.AssetKey,
        partition: str | None,
        record: EventLogRecord | None,
        *,
        recorded: str | None = None,
        current: Any = _LATEST,
        missing: str | None = None,
        reads: Reads | None = None,
    ) -> Link:
        """The link of ``record`` (made by ``key``/``partition``) with its parents walked;
        ``recorded``/``current`` override its own data version and the latest one."""
        if record is None:
            return Link(
                asset_key=key.to_user_string(),
                partition=partition,
                data_version=recorded,
                current_data_version=self.current(key, partition)
                if current is _LATEST
                else current,
                run_id=None,
                storage_id=None,
                missing=missing or "never materialized in this Dagster instance",
            )
        tags = _tags(record)
        own = self.own(key, partition, record)
        if current is _LATEST:
            # A versioned dataset is never overwritten: its data now is that of the same version
            # (a later version of the partition is another dataset, read by other models).
            current = own.current if own is not None else self.current(key, partition)
        return Link(
            asset_key=key.to_user_string(),
            partition=partition,
            data_version=recorded if recorded is not None else _data_version(record, partition),
            current_data_version=current,
            run_id=record.run_id,
            storage_id=record.storage_id,
            missing=missing,
            parents=self.parents(key, partition, record, reads),
            # Without a declared code version Dagster records the run id: that says nothing.
            code_version=None
            if tags.get(CODE_VERSION_TAG) == record.run_id
            else tags.get(CODE_VERSION_TAG),
        )

    def parents(
        self,
        key: dg.AssetKey,
        partition: str | None,
        record: EventLogRecord,
        reads: Reads | None,
    ) -> tuple[Link, ...]:
        """The links above ``record``: each parent's partitions, as they were when it was made."""
        memo = (key, partition, record.storage_id)
        if memo in self._parents and not reads:
            return self._parents[memo]
        self._parents[memo] = ()  # a cycle (a self-dependency's history) stops here
        own = self.own(key, partition, record)
        if not reads and own is not None:
            reads = own.reads
        tags = _tags(record)
        parent_keys: list[dg.AssetKey] = []
        if self.asset_graph.has(key):
            parent_keys = [p for p in self.asset_graph.get(key).parent_keys if p != key]
        parent_keys += [p for p in (reads or {}) if p not in parent_keys]
        links: list[Link] = []
        for parent in sorted(parent_keys, key=lambda k: k.to_user_string()):
            links.extend(self._parent_links(key, partition, record, tags, parent, reads))
        result = tuple(links)
        self._parents[memo] = result
        return result

    def _parent_links(
        self,
        child: dg.AssetKey,
        partition: str | None,
        record: EventLogRecord,
        tags: Mapping[str, str],
        parent: dg.AssetKey,
        reads: Reads | None,
    ) -> Iterator[Link]:
        name = parent.to_user_string()
        # The parent's event that was latest when the child ran bounds what it could have read;
        # without the pointer (an older event, an input with no event then), the child's own
        # record does.
        pointer = tags.get(INPUT_EVENT_POINTER_PREFIX + name)
        if pointer == NULL_EVENT_POINTER:
            bound = None
        elif pointer is not None and pointer.isdigit():
            bound = int(pointer) + 1
        else:
            bound = record.storage_id
        recorded_by_reader = reads.get(parent) if reads else None
        if recorded_by_reader is not None:
            partitions: list[str | None] = sorted(recorded_by_reader, key=lambda p: p or "")
            absent: list[str] = []
        else:
            try:
                partitions, absent = _parent_partitions(self.asset_graph, child, partition, parent)
            except Exception as exc:  # a mapping that cannot map this partition: say so
                yield Link(
                    asset_key=name,
                    partition=None,
                    data_version=None,
                    current_data_version=None,
                    run_id=None,
                    storage_id=None,
                    missing=f"the partition mapping from {child.to_user_string()} "
                    f"{partition} fails: {type(exc).__name__}: {exc}",
                )
                return
        for absent_partition in absent:
            yield Link(
                asset_key=name,
                partition=absent_partition,
                data_version=None,
                current_data_version=None,
                run_id=None,
                storage_id=None,
                missing="the partition mapping names a partition that does not exist",
            )
        for parent_partition in partitions:
            if pointer == NULL_EVENT_POINTER and recorded_by_reader is None:
                yield self.link(
                    parent,
                    parent_partition,
                    None,
                    missing=f"{name} had no materialization when "
                    f"{child.to_user_string()} was made (run {record.run_id})",
                )
                continue
            then = _latest(self.instance, parent, parent_partition, bound)
            if recorded_by_reader is not None:
                recorded = recorded_by_reader[parent_partition]
                # Compared in the reader's own terms, never with Dagster's version of the
                # partition: a range materialized in one step shares one Dagster version.
                now = (
                    self.current_version(parent, parent_partition)
                    if self.current_version is not None
                    else None
                )
                yield self.link(
                    parent,
                    parent_partition,
                    then,
                    recorded=recorded,
                    current=now,
                    missing=None
                    if then is not None
                    else f"read by {child.to_user_string()} (run {record.run_id}) but no "
                    "materialization of it precedes that run in this Dagster instance",
                )
                continue
            recorded = None
            if parent_partition is None:
                # Unpartitioned: Dagster recorded the very version it read.
                recorded = tags.get(INPUT_DATA_VERSION_PREFIX + name)
            yield self.link(
                parent,
                parent_partition,
                then,
                recorded=recorded,
                missing=None
                if then is not None
                else f"no materialization of it precedes {child.to_user_string()} "
                f"{partition or ''} (run {record.run_id}) in this Dagster instance".replace(
                    "  ", " "
                ),
            )


def upstream(
    instance: dg.DagsterInstance,
    asset_graph: BaseAssetGraph,
    key: dg.AssetKey,
    partition: str | None,
    *,
    data_version: str | None = None,
    reads: Reads | None = None,
    run_id: str | None = None,
    current_version: CurrentVersion | None = None,
    reads_of: ReadsOf | None = None,
) -> Link:
    """The chain above one materialization of ``key`` (the one with ``data_version``, else the
    latest), walked through Dagster's event log: for each parent in the asset graph, the partitions
    the partition mapping names (or those in ``reads``, with the versions recorded there), each
    resolved to the materialization that existed when this one was made (Dagster's
    ``dagster/input_event_pointer/<key>`` tags / storage ids before this record), recursively.

    ``run_id`` narrows the materialization to the one that run made. ``reads``
    (``{parent key: {partition: data version}}``, as a reader recorded them in a manifest) apply
    to this materialization's parents only; a key there that is no parent in the graph is walked
    too. ``current_version(key, partition)`` gives the version of a partition in ``reads`` now, in
    the reader's terms (e.g. the content hash of its file); without it, nothing is said about
    whether those partitions changed. ``reads_of(key, partition, run_id)`` gives what any
    materialization of the walk recorded itself (:func:`manifest_reads`: a versioned dataset's
    manifest), so that a versioned dataset met on the way is walked by what it read rather than
    by the partition mapping, and judged by its own bytes now rather than by a later version.
    """
    walker = _Walker(instance, asset_graph, current_version, reads_of)
    record = find_materialization(
        instance, key, partition, data_version=data_version, run_id=run_id
    )
    if record is None:
        wanted = " ".join(
            part
            for part in (
                f"partition {partition}" if partition is not None else "",
                f"with data version {data_version}" if data_version else "",
                f"made by run {run_id}" if run_id else "",
            )
            if part
        )
        return walker.link(
            key,
            partition,
            None,
            recorded=data_version,
            missing=f"no materialization of {key.to_user_string()} {wanted} in this Dagster "
            "instance".replace("  ", " "),
        )
    # A run that made a range names no single partition: the record knows its own.
    return walker.link(key, partition or record.partition_key, record, reads=reads)


def changed_links(root: Link) -> list[Link]:
    """Every link of the tree (root included) whose data changed since it was read, deduplicated
    by (asset key, partition), sources first."""
    depth: dict[tuple[str, str | None], int] = {}
    first: dict[tuple[str, str | None], Link] = {}

    def visit(link: Link, level: int) -> None:
        if link.changed:
            ident = (link.asset_key, link.partition)
            first.setdefault(ident, link)
            depth[ident] = max(depth.get(ident, 0), level)
        for parent in link.parents:
            visit(parent, level + 1)

    visit(root, 0)
    return sorted(
        first.values(),
        key=lambda k: (-depth[k.asset_key, k.partition], k.asset_key, k.partition or ""),
    )


# --- models ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLineage:
    """A registered model version and everything it came from.

    ``aliases``: the aliases that point at it now; ``alias_history``: the moves of the champion
    alias of the model (:meth:`MlflowTracking.champion_history`). ``run_id``, ``params``,
    ``metrics``, ``tags``: its MLflow run. ``code_version``: the asset's code version the run
    recorded (or the source commit). ``training_set``: the manifest of the versioned training set
    it was trained on (``asset_key``, ``path``, ``dt``, ``run_id``, ``data_version``,
    ``row_count``, ``written_at`` and the manifest's extra fields, e.g. ``days`` and
    ``source_data_versions``), None when the run names none. ``model_materialization``: the
    Dagster materialization of the model asset, with the chain above it as its parents.
    ``missing``: why a part could not be found (a link is never silently dropped).
    """

    name: str
    version: str
    aliases: tuple[str, ...]
    alias_history: list[dict]
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    code_version: str | None
    training_set: dict | None
    model_materialization: Link | None
    missing: tuple[str, ...] = field(default=())

    def sources(self) -> list[Link]:
        """Every link of the chain, flattened (depth first, the model's materialization first)."""
        return list(self.model_materialization.walk()) if self.model_materialization else []

    def to_dict(self) -> dict[str, Any]:
        """The lineage as plain JSON-able values."""
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "alias_history": self.alias_history,
            "run_id": self.run_id,
            "params": self.params,
            "metrics": self.metrics,
            "tags": self.tags,
            "code_version": self.code_version,
            "training_set": self.training_set,
            "model_materialization": self.model_materialization.to_dict()
            if self.model_materialization
            else None,
            "missing": list(self.missing),
        }


def resolve_version(tracking: MlflowTracking, name: str, ref: str) -> str:
    """The version ``ref`` names of model ``name``: a version (``3``, ``v3``) or an alias
    (``champion``). ``LineageError`` when the model, the version or the alias does not exist."""
    client = tracking.client
    try:
        registered = client.get_registered_model(name)
    except Exception as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise LineageError(f"model {name!r} is not registered") from None
        raise
    try:
        version = as_version(ref)
    except RegistryError:
        aliases = dict(registered.aliases or {})
        if ref not in aliases:
            shown = ", ".join(sorted(aliases)) or "none"
            raise LineageError(
                f"model {name!r} has no alias {ref!r} (its aliases: {shown})"
            ) from None
        return str(aliases[ref])
    _model_version(tracking, name, version)
    return version


def _model_version(tracking: MlflowTracking, name: str, version: str) -> Any:
    try:
        return tracking.client.get_model_version(name, version)
    except Exception as exc:
        if getattr(exc, "error_code", None) in (
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
        ):
            raise LineageError(f"model {name!r} has no version {version}") from None
        raise


def _training_set(
    asset_store: AssetStore,
    asset_graph: BaseAssetGraph,
    model_key: dg.AssetKey | None,
    tags: Mapping[str, str],
) -> tuple[dict | None, str | None]:
    """The manifest of the versioned dataset the run's tags name, looked for among the model
    asset's inputs (the graph's parents and the ``dagster.input.<key>.data_version`` tags); and
    why it is missing, when the run names one that cannot be found."""
    from mlops_assets.core.storage import VersionedDataset, read_pointer

    named = tags.get(TRAINING_SET_VERSION_TAG)
    if not named:
        return None, None
    parsed = parse_version_name(named)
    if parsed is None:
        return None, f"the run's tag {TRAINING_SET_VERSION_TAG}={named!r} names no dataset version"
    candidates: list[dg.AssetKey] = []
    if model_key is not None and asset_graph.has(model_key):
        candidates += sorted(
            asset_graph.get(model_key).parent_keys, key=lambda k: k.to_user_string()
        )
    for tag in sorted(tags):
        if tag.startswith("dagster.input.") and tag.endswith(".data_version"):
            key = dg.AssetKey.from_user_string(tag[len("dagster.input.") : -len(".data_version")])
            if key not in candidates:
                candidates.append(key)
    for key in candidates:
        dataset = VersionedDataset(asset_store.folder(key))
        folder = dataset.version_dir(*parsed)
        manifest = read_pointer(folder / VersionedDataset.MANIFEST)
        if manifest is None:
            continue
        extra = manifest.pop("extra", None) or {}
        return {
            "asset_key": key.to_user_string(),
            "path": str(folder),
            **manifest,
            **extra,
        }, None
    shown = ", ".join(k.to_user_string() for k in candidates) or "none"
    return None, (
        f"training set {named} (the run's {TRAINING_SET_VERSION_TAG}) has no manifest under any "
        f"input of the model ({shown}) in {asset_store.base}"
    )


def _reads_of(
    asset_graph: BaseAssetGraph, key: dg.AssetKey, manifest: Mapping[str, Any]
) -> dict[dg.AssetKey, dict[str | None, str]]:
    """The manifest's ``source_data_versions`` (``{input name: {partition: version}}``) by asset
    key: a name is the parent of ``key`` whose key ends with it (or spells it), else the asset of
    that name beside ``key``."""
    sources = manifest.get("source_data_versions") or {}
    parents = list(asset_graph.get(key).parent_keys) if asset_graph.has(key) else []
    reads: dict[dg.AssetKey, dict[str | None, str]] = {}
    for name, versions in sorted(sources.items()):
        found = next(
            (p for p in parents if p.to_user_string() == name or p.path[-1] == name),
            dg.AssetKey([*key.path[:-1], name]),
        )
        reads[found] = {str(p): str(v) for p, v in versions.items()}
    return reads


def manifest_reads(asset_store: AssetStore, asset_graph: BaseAssetGraph) -> ReadsOf:
    """What a versioned dataset's materialization recorded in its manifest: the version the run
    wrote (``<key>/dt=<partition>/run_id=<run>/manifest.json``), its ``source_data_versions`` by
    asset key, and the content hash of its data file now. None for anything else."""
    from mlops_assets.core.storage import VersionedDataset, content_hash, read_pointer

    def reads_of(key: dg.AssetKey, partition: str | None, run_id: str) -> SelfRecorded | None:
        if partition is None:
            return None
        folder = VersionedDataset(asset_store.folder(key)).version_dir(partition, run_id)
        manifest = read_pointer(folder / VersionedDataset.MANIFEST)
        if not manifest:
            return None
        extra = manifest.get("extra") or {}
        return SelfRecorded(
            reads=_reads_of(asset_graph, key, extra),
            current=content_hash(folder / VersionedDataset.DATA),
        )

    return reads_of


def content_versions(asset_store: AssetStore) -> CurrentVersion:
    """The version of a partition now as readers record it (``AssetStore.read_partitions``):
    the sha256 of its published file; None when there is none."""
    from mlops_assets.core.storage import content_hash

    return lambda key, partition: content_hash(asset_store.path(key, partition))


def model_lineage(
    name: str,
    version: str,
    *,
    tracking: MlflowTracking,
    asset_store: AssetStore,
    instance: dg.DagsterInstance,
    asset_graph: BaseAssetGraph,
) -> ModelLineage:
    """The lineage of version ``version`` (or an alias) of registered model ``name``: its aliases and their
    history, its MLflow run, the training set its run names, and the chain of Dagster
    materializations above the model's own (the training set's reads taken from its manifest).

    ``LineageError`` when the model or the version does not exist.
    """
    version = resolve_version(tracking, name, str(version))
    found = _model_version(tracking, name, version)
    missing: list[str] = []
    try:
        history = tracking.champion_history(name)
    except RegistryError as exc:
        history, missing = [], [f"alias history: {exc}"]
    run_id = found.run_id
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    if run_id:
        try:
            run = tracking.client.get_run(run_id)
            params, metrics, tags = (
                dict(run.data.params),
                dict(run.data.metrics),
                dict(run.data.tags),
            )
        except Exception as exc:
            missing.append(f"MLflow run {run_id}: {type(exc).__name__}: {exc}")
    else:
        missing.append(f"version {version} of {name!r} names no MLflow run")
    if not tags:  # the registry copies the run's lineage onto the version
        tags = {k: v for k, v in (found.tags or {}).items()}
    code_version = tags.get(TAG_CODE_VERSION) or tags.get(GIT_COMMIT_TAG)

    model_key = (
        dg.AssetKey.from_user_string(tags[TAG_ASSET_KEY]) if tags.get(TAG_ASSET_KEY) else None
    )
    training_set, why = _training_set(asset_store, asset_graph, model_key, tags)
    if why:
        missing.append(why)

    materialization: Link | None = None
    if model_key is None:
        missing.append(
            f"the MLflow run names no Dagster asset (tag {TAG_ASSET_KEY}): no materialization "
            "to walk from"
        )
    else:
        materialization = upstream(
            instance,
            asset_graph,
            model_key,
            tags.get(TAG_PARTITION_KEY),
            run_id=tags.get(TAG_RUN_ID),
            current_version=content_versions(asset_store),
            reads_of=manifest_reads(asset_store, asset_graph),
        )
        if training_set is not None:
            materialization = _with_training_set(
                instance, asset_graph, asset_store, materialization, training_set
            )
    aliases = tuple(sorted(getattr(found, "aliases", None) or ()))
    return ModelLineage(
        name=name,
        version=version,
        aliases=aliases,
        alias_history=history,
        run_id=run_id or "",
        params=params,
        metrics=metrics,
        tags=tags,
        code_version=code_version,
        training_set=training_set,
        model_materialization=materialization,
        missing=tuple(missing),
    )


def _with_training_set(
    instance: dg.DagsterInstance,
    asset_graph: BaseAssetGraph,
    asset_store: AssetStore,
    model: Link,
    training_set: Mapping[str, Any],
) -> Link:
    """``model`` with its link to the training set replaced by the version the run names (the
    one the model read: the day's current version, not necessarily the latest written), walked
    with the partitions and versions its manifest recorded."""
    key = dg.AssetKey.from_user_string(training_set["asset_key"])
    link = upstream(
        instance,
        asset_graph,
        key,
        training_set.get("dt"),
        data_version=training_set.get("data_version"),
        run_id=training_set.get("run_id"),
        reads=_reads_of(asset_graph, key, training_set),
        current_version=content_versions(asset_store),
        reads_of=manifest_reads(asset_store, asset_graph),
    )
    others = tuple(p for p in model.parents if p.asset_key != link.asset_key)
    return dataclasses.replace(model, parents=(link, *others))
