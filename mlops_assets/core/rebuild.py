"""Rebuilding a registered model version from its recorded lineage, and proving it the same.

``mlops rebuild <model> <version>`` answers "could we make this model again?" with evidence, not a
promise:

1. **What was recorded.** The registered version, its MLflow run (params, metrics, tags: the
   training set, the Dagster run and the input data versions it read).
2. **Is the data still the same?** The lineage of the version
   (:func:`mlops_assets.core.lineage.model_lineage`) is walked up to its bronze partitions; if
   any of them changed since the model was trained, the rebuild is refused, naming each changed
   asset and partition with its recorded and current data version: retraining on other data
   proves nothing. Nothing is trained and nothing is logged then.
3. **Rebuild.** The use case's :class:`Rebuilder` rebuilds the training data from the recorded
   lineage (checking each input it reads against the version recorded, a second guard) and
   retrains it with the recorded parameters and seeds, through the very functions the asset
   calls. The result is logged into a NEW MLflow run in the same experiment, tagged
   ``rebuild_of=<version>`` and ``rebuild_of_run=<run id>`` with the original's lineage tags;
   it is never registered and never given an alias, so nothing that serves can pick it up.
4. **Compare.** Every metric of the original run against the rebuilt one (equal within
   :data:`METRIC_TOLERANCE`), every recorded parameter, the training data's version, and the
   holdout predictions of the registered model (loaded from the registry) against the rebuilt
   model's: IDENTICAL, or the differences.

Exit codes (:data:`EXIT_IDENTICAL`, :data:`EXIT_DIFFERENT`, :data:`EXIT_REFUSED`): 0 identical,
1 different, 2 refused or failed (unknown model or version, no rebuilder, MLflow down).

``core`` knows no use case: the rebuilders are passed in (each use case's ``rebuild.py`` exports
``REBUILDERS``; :mod:`mlops_assets.tooling.rebuild` finds them through the use-case registry).
numpy and MLflow are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_assets.core import reporting

if TYPE_CHECKING:
    import dagster as dg
    import pyarrow as pa

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.feature_store import FeastFeatureStore
    from mlops_assets.core.tracking import Flavor, MlflowTracking, TrackedRun

# Two runs of the same code on the same data give the same floats; 1e-9 only forgives the last
# bits of a sum taken in another order, never a different model.
METRIC_TOLERANCE = 1e-9

EXIT_IDENTICAL = 0
EXIT_DIFFERENT = 1
EXIT_REFUSED = 2

# Tags of the rebuild's MLflow run: which registered version (and run) it rebuilt.
TAG_REBUILD_OF = "rebuild_of"
TAG_REBUILD_OF_RUN = "rebuild_of_run"
TAG_REBUILD_OF_MODEL = "rebuild_of_model"
TAG_REBUILD_IDENTICAL = "rebuild.identical"
# The comparison, as an artifact of the rebuild's run.
COMPARISON_ARTIFACT = "rebuild_comparison.json"


class RebuildError(Exception):
    """The rebuild could not be done; the message says why in one line (exit code 2)."""


@dataclass(frozen=True)
class Change:
    """One input whose data is not the one the model was trained on."""

    asset_key: str
    partition: str | None
    recorded: str | None
    current: str | None

    def describe(self) -> str:
        where = self.asset_key + (f" partition {self.partition}" if self.partition else "")
        return f"{where}: recorded {_short(self.recorded)}, now {_short(self.current)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_key": self.asset_key,
            "partition": self.partition,
            "recorded_data_version": self.recorded,
            "current_data_version": self.current,
        }


class RebuildRefused(RebuildError):
    """A source of the model changed since it was trained: rebuilding would prove nothing."""

    def __init__(self, name: str, version: str, changes: Sequence[Change]) -> None:
        self.name, self.version, self.changes = name, version, list(changes)
        lines = "\n".join(f"  {c.describe()}" for c in self.changes)
        super().__init__(
            f"{name} v{version} cannot be rebuilt: {len(self.changes)} source partition(s) "
            f"changed since it was trained:\n{lines}\nNothing was trained or logged."
        )


def _short(version: str | None) -> str:
    return "none" if version is None else version[:12]


# --- what was recorded, and what a rebuilder reads ----------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A registered version as recorded: its run's params (strings, as MLflow keeps them),
    metrics and tags, and the experiment the run belongs to."""

    name: str
    version: str
    run_id: str
    experiment_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    version_tags: dict[str, str] = field(default_factory=dict)

    def param(self, key: str) -> str:
        """The recorded value of ``key``; a run without it cannot be rebuilt (it would have to be
        guessed), which is said naming the parameter."""
        try:
            return self.params[key]
        except KeyError:
            raise RebuildError(
                f"{self.name} v{self.version}: its run {self.run_id} has no parameter {key!r}, "
                "which the rebuild needs"
            ) from None

    def tag(self, key: str) -> str:
        """The recorded run tag ``key`` (raises :class:`RebuildError` naming it when absent)."""
        try:
            return self.tags[key]
        except KeyError:
            raise RebuildError(
                f"{self.name} v{self.version}: its run {self.run_id} has no tag {key!r}, "
                "which the rebuild needs"
            ) from None


@dataclass(frozen=True)
class Sources:
    """The deployment's resources a rebuilder reads: the same objects the assets get."""

    tracking: MlflowTracking
    asset_store: AssetStore
    feature_store: FeastFeatureStore


@dataclass
class Rebuilt:
    """What a rebuilder made, before anything is logged.

    ``params`` and ``metrics`` are those the asset would log (compared with the original run's);
    ``model`` the fitted model, in the form ``flavor`` loads the registered version in;
    ``predict(model, holdout)`` scores either model on ``holdout`` the way serving or the
    promotion gate does; ``log(run)`` logs the model, figures and artifacts into the rebuild's
    run (params and metrics are logged by :func:`rebuild`); ``data`` says what the training data
    was rebuilt from, and ``data_version`` / ``recorded_data_version`` are the rebuilt training
    data's version and the one recorded (None where the use case records none)."""

    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    model: Any
    holdout: Any
    flavor: Flavor
    predict: Callable[[Any, Any], Any]
    log: Callable[[TrackedRun], None]
    data: dict[str, Any] = field(default_factory=dict)
    data_version: str | None = None
    recorded_data_version: str | None = None
    # Metrics that measure the training run, not the model (energy, duration): logged and
    # shown, but no rebuild reproduces them, so they do not decide IDENTICAL.
    measurements: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rebuilder:
    """How one use case rebuilds its registered models.

    ``model_name``: the registered model it rebuilds; with ``per_entity`` it is a prefix (one
    model per entity: ``demand_forecaster_<respondent>``). ``rebuild(recorded, sources)`` returns
    :class:`Rebuilt`, raising :class:`RebuildRefused` if an input it reads changed since.
    """

    use_case: str
    model_name: str
    rebuild: Callable[[Recorded, Sources], Rebuilt]
    per_entity: bool = False

    def rebuilds(self, name: str) -> bool:
        return name.startswith(self.model_name) if self.per_entity else name == self.model_name


def rebuilder_for(name: str, rebuilders: Sequence[Rebuilder]) -> Rebuilder:
    """The rebuilder of model ``name`` (an exact name before a prefix)."""
    exact = [r for r in rebuilders if not r.per_entity and r.rebuilds(name)]
    prefixed = [r for r in rebuilders if r.per_entity and r.rebuilds(name)]
    for found in (exact, prefixed):
        if found:
            return found[0]
    known = ", ".join(
        sorted(r.model_name + ("<entity>" if r.per_entity else "") for r in rebuilders)
    )
    raise RebuildError(
        f"no use case rebuilds model {name!r}; rebuildable models: {known or 'none'}"
    )


def read_input(
    asset_store: AssetStore, key: dg.AssetKey, partitions: Sequence[str | None] = (None,)
) -> tuple[pa.Table, dict[str | None, str]]:
    """The published data of ``key`` (its ``partitions``, concatenated in order) and each one's
    data version (the sha256 of its bytes, which is what the IO manager records)."""
    return asset_store.read_partitions(key, list(partitions))  # type: ignore[arg-type]


def check_inputs(
    name: str,
    version: str,
    recorded: Mapping[tuple[str, str | None], str | None],
    current: Mapping[tuple[str, str | None], str | None],
) -> None:
    """Refuse (:class:`RebuildRefused`) if any input ``(asset key, partition)`` read now has
    another data version than the one recorded when the model was trained."""
    changes = [
        Change(key, partition, was, current.get((key, partition)))
        for (key, partition), was in recorded.items()
        if was is not None and current.get((key, partition)) != was
    ]
    if changes:
        raise RebuildRefused(name, version, changes)


def parquet_roundtrip(frame: Any) -> tuple[str, pa.Table]:
    """``frame`` as its stored version would be: the data version (sha256 of the bytes of the
    parquet file :func:`mlops_assets.core.storage.write_parquet` writes for it, with its fixed
    writer options, so the same table always gives the same bytes) and the table read back
    from those bytes, as the asset that reads the stored version gets it."""
    import io

    import pyarrow.parquet as pq

    from mlops_assets.core import storage

    buffer = io.BytesIO()
    pq.write_table(storage.to_arrow(frame), buffer, **storage.PARQUET_WRITE_OPTIONS)
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest(), pq.read_table(io.BytesIO(data))


# --- the comparison -----------------------------------------------------------------------------


@dataclass
class Comparison:
    """The rebuilt model against the registered one."""

    name: str
    version: str
    run_id: str
    rebuild_run_id: str
    experiment_id: str
    metrics: list[dict[str, Any]]
    params: list[dict[str, Any]]
    predictions: dict[str, Any]
    data: dict[str, Any]
    data_version: str | None
    recorded_data_version: str | None
    notes: list[str] = field(default_factory=list)
    rebuild_run_url: str = ""

    @property
    def metric_differences(self) -> list[dict[str, Any]]:
        return [m for m in self.metrics if not m["equal"]]

    @property
    def param_differences(self) -> list[dict[str, Any]]:
        return [p for p in self.params if not p["equal"]]

    @property
    def data_identical(self) -> bool:
        return self.recorded_data_version is None or self.data_version == self.recorded_data_version

    @property
    def identical(self) -> bool:
        return (
            not self.metric_differences
            and not self.param_differences
            and self.predictions["differing_rows"] == 0
            and self.predictions["rows_original"] == self.predictions["rows_rebuilt"]
            and self.data_identical
        )

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON (what ``--json`` prints and the rebuild's run keeps); a NaN
        or infinite number becomes its text ("nan", "inf"), which strict JSON can carry."""
        return reporting.json_safe(
            {
                "status": "identical" if self.identical else "different",
                "identical": self.identical,
                "model": self.name,
                "version": self.version,
                "run_id": self.run_id,
                "rebuild_run_id": self.rebuild_run_id,
                "rebuild_run_url": self.rebuild_run_url,
                "experiment_id": self.experiment_id,
                "training_data": {
                    **self.data,
                    "recorded_data_version": self.recorded_data_version,
                    "rebuilt_data_version": self.data_version,
                    "identical": self.data_identical,
                },
                "metric_tolerance": METRIC_TOLERANCE,
                "metrics": self.metrics,
                "params": self.params,
                "predictions": self.predictions,
                "notes": self.notes,
            }
        )

    def render(self) -> str:
        """The comparison for a person: what was rebuilt from what, then IDENTICAL or each
        difference."""
        lines = [
            f"{self.name} v{self.version} (run {self.run_id}) rebuilt in run "
            f"{self.rebuild_run_id}, tagged {TAG_REBUILD_OF}={self.version}",
        ]
        if self.rebuild_run_url:
            lines.append(f"  run: {self.rebuild_run_url}")
        for key, value in self.data.items():
            lines.append(f"  {key}: {value}")
        if self.recorded_data_version is not None:
            same = "same" if self.data_identical else "DIFFERENT"
            lines.append(
                f"  training data version: recorded {_short(self.recorded_data_version)}, "
                f"rebuilt {_short(self.data_version)} ({same})"
            )
        metric_diffs, param_diffs = self.metric_differences, self.param_differences
        measured = [m["name"] for m in self.metrics if m.get("measurement")]
        lines.append(
            f"  metrics: {len(self.metrics) - len(measured)} compared, "
            + (
                f"all within {METRIC_TOLERANCE:g}"
                if not metric_diffs
                else f"{len(metric_diffs)} differ"
            )
        )
        if measured:
            lines.append(f"  not compared (measure the run, not the model): {', '.join(measured)}")
        lines.append(
            f"  params: {len(self.params)} compared, "
            + ("all equal" if not param_diffs else f"{len(param_diffs)} differ")
        )
        p = self.predictions
        lines.append(
            f"  holdout predictions: {p['rows_original']} rows, max abs diff "
            f"{p['max_abs_diff']:.3g}, {p['differing_rows']} differ"
        )
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.identical:
            lines.append("IDENTICAL")
            return "\n".join(lines)
        lines.append("DIFFERENT")
        for m in metric_diffs:
            lines.append(
                f"  metric {m['name']}: original {_number(m['original'])}, rebuilt "
                f"{_number(m['rebuilt'])}, abs diff {_number(m['abs_diff'])}"
            )
        for q in param_diffs:
            lines.append(f"  param {q['name']}: original {q['original']}, rebuilt {q['rebuilt']}")
        if p["differing_rows"] or p["rows_original"] != p["rows_rebuilt"]:
            lines.append(
                f"  predictions: {p['differing_rows']} of {p['rows_original']} holdout rows "
                f"differ (rebuilt: {p['rows_rebuilt']} rows), max abs diff {p['max_abs_diff']:.6g}"
            )
        if not self.data_identical:
            lines.append(
                f"  training data: recorded {self.recorded_data_version}, "
                f"rebuilt {self.data_version}"
            )
        return "\n".join(lines)


def _number(value: float | None) -> str:
    return "missing" if value is None else f"{value:.12g}"


def compare_metrics(
    original: Mapping[str, float],
    rebuilt: Mapping[str, float],
    tolerance: float = METRIC_TOLERANCE,
    *,
    measurements: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Every metric of either run, by name: both values, the absolute difference and whether it
    is within ``tolerance`` (NaN equals NaN: an undefined metric stays undefined). A metric of
    only one run is a difference. ``measurements`` (energy, duration: the run's, not the
    model's) are listed with ``"measurement": True`` and count as equal whatever their values."""
    rows = []
    for name in sorted(set(original) | set(rebuilt)):
        a, b = original.get(name), rebuilt.get(name)
        if a is None or b is None:
            diff, equal = None, False
        else:
            a, b = float(a), float(b)
            both_nan = math.isnan(a) and math.isnan(b)
            diff = 0.0 if both_nan else abs(a - b)
            equal = both_nan or diff <= tolerance
        row = {"name": name, "original": a, "rebuilt": b, "abs_diff": diff, "equal": equal}
        if name in measurements:
            row.update(equal=True, measurement=True)
        rows.append(row)
    return rows


def compare_params(original: Mapping[str, str], rebuilt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every parameter of either run, compared as the text MLflow keeps (``str(value)``)."""
    text = {str(k): str(v) for k, v in rebuilt.items()}
    return [
        {
            "name": name,
            "original": original.get(name),
            "rebuilt": text.get(name),
            "equal": original.get(name) == text.get(name),
        }
        for name in sorted(set(original) | set(text))
    ]


def compare_predictions(original: Any, rebuilt: Any) -> dict[str, Any]:
    """The registered and the rebuilt model's predictions on the same holdout rows: how many
    rows, the largest absolute difference and how many rows differ at all (exactly: the same
    model gives the same floats)."""
    import numpy as np

    a = np.asarray(original, dtype=np.float64).ravel()
    b = np.asarray(rebuilt, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return {
            "rows_original": int(a.size),
            "rows_rebuilt": int(b.size),
            "max_abs_diff": math.inf,
            "differing_rows": int(max(a.size, b.size)),
        }
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.abs(a - b)
    diff[same] = 0.0
    return {
        "rows_original": int(a.size),
        "rows_rebuilt": int(b.size),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "differing_rows": int((~same).sum()),
    }


# --- the procedure ------------------------------------------------------------------------------


def recorded_version(tracking: MlflowTracking, name: str, version: str) -> Recorded:
    """The registered version ``name`` ``version`` and its run, as recorded in MLflow."""
    version = str(version).removeprefix("v")
    if not version.isdigit():
        raise RebuildError(f"a model version is a number (e.g. 3), not {version!r}")
    client = tracking.client
    try:
        model_version = client.get_model_version(name, version)
    except Exception as exc:
        raise RebuildError(_mlflow_problem(tracking, f"find {name} v{version}", exc)) from None
    if not model_version.run_id:
        raise RebuildError(f"{name} v{version} has no MLflow run: it was not trained here")
    try:
        run = client.get_run(model_version.run_id)
    except Exception as exc:
        raise RebuildError(
            _mlflow_problem(tracking, f"read run {model_version.run_id}", exc)
        ) from None
    return Recorded(
        name=name,
        version=version,
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        version_tags=dict(model_version.tags or {}),
    )


def _mlflow_problem(tracking: MlflowTracking, action: str, exc: Exception) -> str:
    from mlops_assets.core.profiles import redact_url

    text = str(exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    if "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower():
        return f"MLflow could not {action}: {detail}"
    hint = ""
    if "Connection refused" in text or "Max retries exceeded" in text:
        hint = " Is the MLflow tracking server running and reachable at that address?"
    where = f"MLFLOW_TRACKING_URI={redact_url(tracking.tracking_uri)}"
    return f"MLflow could not {action} ({where}): {detail}{hint}"


def lineage_changes(
    recorded: Recorded, sources: Sources, instance: dg.DagsterInstance, asset_graph: Any
) -> tuple[list[Change], list[str]]:
    """The sources of the version whose data changed since it was trained, from its recorded
    lineage (:func:`mlops_assets.core.lineage.model_lineage`), and notes on the links that could
    not be found (a missing link is named, never skipped; the rebuilder checks what it reads)."""
    from mlops_assets.core import lineage

    try:
        found = lineage.model_lineage(
            recorded.name,
            recorded.version,
            tracking=sources.tracking,
            asset_store=sources.asset_store,
            instance=instance,
            asset_graph=asset_graph,
        )
    except lineage.LineageError as exc:
        raise RebuildError(f"the lineage of {recorded.name} v{recorded.version}: {exc}") from None
    if found.model_materialization is None:
        return [], [
            "lineage: no Dagster materialization of the model was found in this instance; "
            "its inputs were checked against the run's records only"
        ]
    root = found.model_materialization
    # The model's own materialization is left out: a later training of the same asset makes a
    # new one, which is no reason to refuse rebuilding an older version from its own data.
    changes = [
        Change(link.asset_key, link.partition, link.data_version, link.current_data_version)
        for link in lineage.changed_links(root)
        if link is not root
    ]
    notes = sorted(
        {
            f"lineage: {link.asset_key}"
            + (f" partition {link.partition}" if link.partition else "")
            + f" not found ({link.missing})"
            for link in found.sources()
            if link.missing
        }
    )
    return changes, notes


@contextlib.contextmanager
def _rebuild_run(
    tracking: MlflowTracking, recorded: Recorded, tags: Mapping[str, str]
) -> Iterator[TrackedRun]:
    """A new run in the original's experiment; FINISHED at the end, FAILED on an error."""
    from mlops_assets.core.tracking import TrackedRun

    run_name = f"rebuild-of-{recorded.name}-v{recorded.version}"
    try:
        run = tracking.client.create_run(recorded.experiment_id, tags=dict(tags), run_name=run_name)
    except Exception as exc:
        raise RebuildError(_mlflow_problem(tracking, "start the rebuild's run", exc)) from None
    tracked = TrackedRun(tracking, run.info.run_id, recorded.experiment_id, tags)
    try:
        yield tracked
    except BaseException:
        with contextlib.suppress(Exception):
            tracking.client.set_terminated(tracked.run_id, status="FAILED")
        raise
    tracking.client.set_terminated(tracked.run_id, status="FINISHED")


def rebuild_tags(recorded: Recorded) -> dict[str, str]:
    """The rebuild run's tags: the original's own tags (its lineage: training set, Dagster run,
    input data versions, code version), minus MLflow's bookkeeping of that run, plus which
    version and run it rebuilds."""
    from mlops_assets.core.tracking import (
        SOURCE_TYPE_JOB,
        TAG_GIT_COMMIT,
        TAG_SOURCE_NAME,
        TAG_SOURCE_TYPE,
        git_commit,
    )

    inherited = {k: v for k, v in recorded.tags.items() if not k.startswith("mlflow.")}
    # MLflow's source tags name the code that made this run: the rebuild command, at this
    # checkout's commit (the original's commit stays on the original run).
    source = {
        TAG_SOURCE_NAME: "mlops_assets.core.rebuild:rebuild",
        TAG_SOURCE_TYPE: SOURCE_TYPE_JOB,
    }
    commit = git_commit()
    if commit:
        source[TAG_GIT_COMMIT] = commit
    return {
        **inherited,
        **source,
        TAG_REBUILD_OF: recorded.version,
        TAG_REBUILD_OF_RUN: recorded.run_id,
        TAG_REBUILD_OF_MODEL: recorded.name,
    }


def rebuild(
    name: str,
    version: str,
    *,
    sources: Sources,
    rebuilders: Sequence[Rebuilder],
    instance: dg.DagsterInstance | None = None,
    asset_graph: Any = None,
) -> Comparison:
    """Rebuild ``name`` ``version`` and compare it with the registered one (see the module).

    Raises :class:`RebuildRefused` when a source changed since (nothing trained, nothing logged)
    and :class:`RebuildError` when the version, its run or its rebuilder cannot be found.
    Without ``instance`` the Dagster lineage is not walked, and only the rebuilder's own checks of
    what it reads guard the data (said in the notes).
    """
    tracking = sources.tracking
    recorded = recorded_version(tracking, name, version)
    rebuilder = rebuilder_for(name, rebuilders)
    notes: list[str] = []
    if instance is not None and asset_graph is not None:
        changes, notes = lineage_changes(recorded, sources, instance, asset_graph)
        if changes:
            raise RebuildRefused(recorded.name, recorded.version, changes)
    else:
        notes.append("lineage: not walked (no Dagster instance given)")

    rebuilt = rebuilder.rebuild(recorded, sources)
    with _rebuild_run(tracking, recorded, rebuild_tags(recorded)) as run:
        run.log_params(rebuilt.params)
        run.log_metrics(rebuilt.metrics)
        rebuilt.log(run)
        # The registered version as it is served: loaded from the registry, not from memory.
        registered = tracking.load_model_version(name, recorded.version, flavor=rebuilt.flavor)
        comparison = Comparison(
            name=name,
            version=recorded.version,
            run_id=recorded.run_id,
            rebuild_run_id=run.run_id,
            experiment_id=recorded.experiment_id,
            metrics=compare_metrics(
                recorded.metrics, rebuilt.metrics, measurements=rebuilt.measurements
            ),
            params=compare_params(recorded.params, rebuilt.params),
            predictions=compare_predictions(
                rebuilt.predict(registered, rebuilt.holdout),
                rebuilt.predict(rebuilt.model, rebuilt.holdout),
            ),
            data=rebuilt.data,
            data_version=rebuilt.data_version,
            recorded_data_version=rebuilt.recorded_data_version,
            notes=notes,
            rebuild_run_url=run.url,
        )
        run.set_tags({TAG_REBUILD_IDENTICAL: str(comparison.identical).lower()})
        run.log_dict(comparison.to_dict(), COMPARISON_ARTIFACT)
    return comparison
