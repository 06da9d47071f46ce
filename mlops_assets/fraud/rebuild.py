"""Rebuilding a registered ``fraud_classifier`` version (``mlops rebuild fraud_classifier 3``).

A version is the best kind of one day's candidates: its MLflow run recorded the kind, the seed,
the validation fraction and the precision target (params), and the training set version it read
(tags ``training_set.version`` = ``dt=<day>/run_id=<run>`` and ``training_set.data_version``).
That version's manifest names the window of days and the data version of every bronze and
snapshot partition the set was joined from.

The rebuild reads those partitions again, refusing by name any whose data changed since, joins
them with :func:`mlops_assets.fraud.training_sets.build` (the asset's own join), checks the
rebuilt set has the recorded data version, and trains the recorded kind with
:func:`mlops_assets.fraud.training.train_and_evaluate` (the function the candidates run), with
the recorded settings. The holdout is the promotion gate's: the latest part of the window.

polars, pandas and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_assets.core.rebuild import (
    Rebuilder,
    RebuildError,
    Rebuilt,
    check_inputs,
    parquet_roundtrip,
)
from mlops_assets.core.tracking import TAG_TRAINING_SET_DATA_VERSION, TAG_TRAINING_SET_VERSION
from mlops_assets.fraud.schema import CASE

if TYPE_CHECKING:
    from mlops_assets.core.rebuild import Recorded, Sources
    from mlops_assets.core.tracking import TrackedRun

TRAINING_SET_VERSION_TAG = TAG_TRAINING_SET_VERSION
TRAINING_SET_DATA_VERSION_TAG = TAG_TRAINING_SET_DATA_VERSION


def _manifest(recorded: Recorded, sources: Sources) -> dict[str, Any]:
    """The manifest of the training set version the run read."""
    from mlops_assets.core import storage

    version = recorded.tag(TRAINING_SET_VERSION_TAG)
    parsed = storage.parse_version_name(version)
    if parsed is None:
        raise RebuildError(
            f"{recorded.name} v{recorded.version}: tag {TRAINING_SET_VERSION_TAG}={version!r} is "
            "not dt=<day>/run_id=<run>"
        )
    dataset = sources.asset_store.versioned(CASE.key("training_set"))
    manifest = storage.read_pointer(dataset.version_dir(*parsed) / dataset.MANIFEST)
    if manifest is None:
        raise RebuildError(
            f"{recorded.name} v{recorded.version}: the training set version {version} it was "
            f"trained on is gone from {dataset.root}"
        )
    return manifest


def rebuild(recorded: Recorded, sources: Sources) -> Rebuilt:
    """Rebuild the version's training set from the partitions its manifest names and retrain
    the recorded kind on it (see the module)."""
    import polars as pl

    from mlops_assets.fraud import candidates, promotion, training, training_sets

    manifest = _manifest(recorded, sources)
    extra = manifest.get("extra") or {}
    day, days = manifest["dt"], list(extra.get("days") or [])
    recorded_reads: dict[str, dict[str, str]] = extra.get("source_data_versions") or {}
    if not days or not recorded_reads:
        raise RebuildError(
            f"{recorded.name} v{recorded.version}: the manifest of its training set records no "
            "window or source versions (written before lineage was kept)"
        )
    # What the training_set asset read, read again; every partition's version is checked
    # before anything is joined or trained.
    read = {
        name: sources.asset_store.read_partitions(CASE.key(name), days)
        for name in training_sets.INPUTS
    }
    check_inputs(
        recorded.name,
        recorded.version,
        {
            (CASE.key(name).to_user_string(), partition): version
            for name, versions in recorded_reads.items()
            for partition, version in versions.items()
        },
        {
            (CASE.key(name).to_user_string(), partition): version
            for name, (_, versions) in read.items()
            for partition, version in versions.items()
        },
    )
    frames = {name: pl.from_arrow(table) for name, (table, _) in read.items()}
    built = training_sets.build(sources.feature_store, frames, day, days)
    # The model asset reads the set back from its parquet file: so does the rebuild, so that the
    # frame (types, order) is the one the candidates were trained on.
    data_version, table = parquet_roundtrip(built.frame)
    frame = pl.from_arrow(table).to_pandas()

    recorded_data_version = (
        recorded.tags.get(TRAINING_SET_DATA_VERSION_TAG) or manifest["data_version"]
    )

    kind = recorded.param("kind")
    validation_fraction = float(recorded.param("validation_fraction"))
    result = training.train_and_evaluate(
        frame,
        kind=kind,  # type: ignore[arg-type]
        validation_fraction=validation_fraction,
        precision_target=float(recorded.param("precision_target")),
        seed=int(recorded.param("seed")),
    )

    def log(run: TrackedRun) -> None:
        # What candidates.train logs besides params and metrics: the training set as the run's
        # MLflow datasets (only when the rebuilt set is the recorded version, which they name),
        # the figures and the model.
        if data_version == recorded_data_version:
            uri = candidates.training_set_uri(sources.asset_store, recorded.tags)
            candidates.log_training_set(run, result, frame, uri, recorded.tags)
        for name, figure in result.figures.items():
            run.log_figure(figure, f"{name}.png")
        run.log_model(
            result.pipeline, name="model", input_example=result.input_example, flavor="sklearn"
        )

    return Rebuilt(
        params=result.params,
        metrics=result.metrics,
        model=result.pipeline,
        holdout=promotion.holdout(frame, validation_fraction),
        flavor="sklearn",
        predict=training.score,
        log=log,
        data={
            "training set": f"{CASE.key('training_set').to_user_string()} "
            f"{recorded.tags[TRAINING_SET_VERSION_TAG]}: {built.frame.height} rows, transaction "
            f"days {days[0]} .. {days[-1]}, rebuilt from "
            f"{sum(len(v) for v in recorded_reads.values())} source partitions",
            "kind": kind,
        },
        data_version=data_version,
        recorded_data_version=recorded_data_version,
    )


REBUILDERS = [Rebuilder(CASE.name, CASE.model_name, rebuild)]
