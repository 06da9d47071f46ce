"""The candidate models of a day: one MLflow run per model kind, trained on the day's approved
training set and validated on the chronologically last part of its window; the best by PR-AUC
is registered as the ``candidate`` the promotion gate judges (:mod:`mlops_assets.fraud.promotion`).

Every run is tagged with the training set version it read, and logs that version as its MLflow
datasets (the rows it was fitted on as ``training``, the validation period as ``evaluation``),
so a registered version says which data made it, in the tags and on MLflow's run page. The
models themselves are :mod:`mlops_assets.fraud.training`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.core.storage import parse_version_name, version_name
from mlops_assets.core.tracking import TAG_TRAINING_SET_DATA_VERSION, TAG_TRAINING_SET_VERSION
from mlops_assets.fraud.schema import CASE

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

    from mlops_assets.core.asset_store import AssetStore
    from mlops_assets.core.tracking import MlflowTracking, TrackedRun
    from mlops_assets.fraud.training import TrainingResult

# The metric the kinds compete on: fraud is rare, so precision-recall, not ROC.
SELECTION_METRIC = "pr_auc"


@dataclass(frozen=True)
class Candidate:
    """One kind trained in its own MLflow run, and the model logged there."""

    kind: str
    result: TrainingResult
    run: TrackedRun
    info: ModelInfo


# The run tags naming the training set version a model was trained on.
VERSION_TAG = TAG_TRAINING_SET_VERSION
DATA_VERSION_TAG = TAG_TRAINING_SET_DATA_VERSION


def lineage_tags(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The run tags naming the training set version (its manifest) a model was trained on."""
    return {
        VERSION_TAG: version_name(manifest["dt"], manifest["run_id"]),
        DATA_VERSION_TAG: manifest["data_version"],
    }


def training_set_uri(store: AssetStore, tags: Mapping[str, str]) -> str:
    """The URI of the training set version named by ``tags`` (:func:`lineage_tags`): its
    ``dt=<day>/run_id=<run>`` folder, which holds ``data.parquet`` and ``manifest.json``."""
    from mlops_assets.core.tracking import dataset_uri

    parsed = parse_version_name(tags[VERSION_TAG])
    if parsed is None:
        raise ValueError(f"{VERSION_TAG}={tags[VERSION_TAG]!r} is not dt=<day>/run_id=<run>")
    folder = store.versioned(CASE.key("training_set")).version_dir(*parsed)
    return dataset_uri(folder)


def log_training_set(
    run: TrackedRun, result: TrainingResult, frame: pd.DataFrame, uri: str, tags: Mapping[str, str]
) -> None:
    """The training set version as the run's MLflow datasets: the transactions before the
    chronological split as ``training``, those from it on as ``evaluation``. The digest is the
    version's data version (its manifest's), so MLflow, the manifest and Dagster agree."""
    from mlops_assets.core.tracking import frame_schema
    from mlops_assets.fraud.training import TIME_COLUMN

    name = f"{CASE.key('training_set').to_user_string()} {tags[VERSION_TAG]}"
    boundary = result.params["split_boundary"]
    common = {"source": uri, "digest": tags[DATA_VERSION_TAG], "schema": frame_schema(frame)}
    run.log_dataset(
        name=name,
        context="training",
        rows=result.params["n_train"],
        selection=f"{TIME_COLUMN} < {boundary}",
        **common,
    )
    run.log_dataset(
        name=name,
        context="evaluation",
        rows=result.params["n_validation"],
        selection=f"{TIME_COLUMN} >= {boundary}",
        profile={"validation_end": result.params["validation_end"]},
        **common,
    )


def train(
    context: dg.AssetExecutionContext,
    mlflow: MlflowTracking,
    frame: pd.DataFrame,
    *,
    use_case: str,
    day: str,
    kinds: Sequence[str],
    tags: Mapping[str, str],
    **options: Any,
) -> dict[str, Candidate]:
    """Train each of ``kinds`` on ``frame`` in its own run (named ``<kind>-<day>``): its params,
    validation metrics, figures and model logged. ``options`` go to
    :func:`~mlops_assets.fraud.training.train_and_evaluate` (validation fraction, precision
    target, seed).

    ``tags`` are the training set's :func:`lineage_tags`; its version folder is found in the
    asset store the model asset reads it from (``context.resources.asset_store``)."""
    from mlops_assets.fraud import training

    uri = training_set_uri(context.resources.asset_store, tags)
    trained = {}
    for kind in kinds:
        with mlflow.start_run(
            context, use_case=use_case, run_name=f"{kind}-{day}", tags=tags
        ) as run:
            result = training.train_and_evaluate(frame, kind=kind, **options)
            run.log_params(result.params)
            run.log_metrics(result.metrics)
            log_training_set(run, result, frame, uri, tags)
            for name, figure in result.figures.items():
                run.log_figure(figure, f"{name}.png")
            info = run.log_model(
                result.pipeline, name="model", input_example=result.input_example, flavor="sklearn"
            )
            trained[kind] = Candidate(kind, result, run, info)
    return trained


def best(trained: Mapping[str, Candidate]) -> Candidate:
    """The candidate with the highest validation PR-AUC."""
    return max(trained.values(), key=lambda c: c.result.metrics[SELECTION_METRIC])


def metadata(
    mlflow: MlflowTracking,
    trained: Mapping[str, Candidate],
    chosen: Candidate,
    version: ModelVersion,
    alias: str,
) -> dict[str, Any]:
    """The model asset's metadata: the chosen run and registered version, every kind's metrics
    side by side, and the chosen kind's PR curve."""
    from mlops_assets.core import reporting

    comparison = [
        {"kind": kind, **{m: round(v, 4) for m, v in c.result.metrics.items()}}
        for kind, c in trained.items()
    ]
    run = chosen.run
    return {
        **mlflow.model_metadata(
            run.run_id,
            experiment_id=run.experiment_id,
            model_version=version,
            alias=alias,
            metrics=chosen.result.metrics,
        ),
        "kind": chosen.kind,
        "comparison": dg.MetadataValue.md(
            reporting.markdown_table(comparison, list(comparison[0]))
        ),
        "pr_curve": reporting.figure_markdown(chosen.result.figures["pr_curve"], alt="PR curve"),
        "training_set": run.tags[VERSION_TAG],
    }
