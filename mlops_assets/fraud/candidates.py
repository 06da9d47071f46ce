"""The candidate models of a day: one MLflow run per model kind, trained on the day's approved
training set and validated on the chronologically last part of its window; the best by PR-AUC
is registered as the ``candidate`` the promotion gate judges (:mod:`mlops_assets.fraud.promotion`).

Every run is tagged with the training set version it read, so a registered version says which
data made it. The models themselves are :mod:`mlops_assets.fraud.training`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

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


def lineage_tags(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The run tags naming the training set version (its manifest) a model was trained on."""
    return {
        "training_set.version": f"dt={manifest['dt']}/run_id={manifest['run_id']}",
        "training_set.data_version": manifest["data_version"],
    }


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
    target, seed)."""
    from mlops_assets.fraud import training

    trained = {}
    for kind in kinds:
        with mlflow.start_run(
            context, use_case=use_case, run_name=f"{kind}-{day}", tags=tags
        ) as run:
            result = training.train_and_evaluate(frame, kind=kind, **options)
            run.log_params(result.params)
            run.log_metrics(result.metrics)
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
        "training_set": run.tags["training_set.version"],
    }
