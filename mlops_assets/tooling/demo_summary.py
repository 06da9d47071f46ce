"""What ``mlops demo`` prints once every step succeeded: what it made, where it lives, and what to
run next.

Facts are read where they are recorded, never assumed from the demo's steps: the materialized
assets and partitions from the Dagster instance, each champion (the ``champion`` alias of a
registered model) and its headline metric from the MLflow registry. :func:`collect` reads them;
:func:`render` turns them into text and is pure, so the wording is tested on facts made by hand.
Heavy libraries (MLflow, Dagster's instance) are imported inside functions.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_assets.core.profiles import Settings

CHAMPION_ALIAS = "champion"
# The metric each use case's promotion gate compares, by the prefix of its registered model
# (`demand_forecaster_ciso`, `heart_disease`...). A run logs it under one of several names
# (`holdout_roc_auc`, `val_rmse`, `rmse_mean`): see :func:`headline_metric`.
HEADLINE_METRICS = {
    "fraud": "pr_auc",
    "heart": "roc_auc",
    "housing": "rmse",
    "athletes": "rmse",
    "demand": "rmse",
}
# Where a metric is measured, best evidence first: held-out data before cross-validation.
_METRIC_PREFIXES = ("", "holdout_", "test_", "eval_", "val_", "cv_")
PARTITIONS_SHOWN = 3  # more are summed up as "first … last"


@dataclass(frozen=True)
class Champion:
    """The ``champion`` version of a registered model and its headline metric (None: its run
    logged none of the use case's)."""

    model: str
    version: str
    metric: str | None = None
    value: float | None = None


@dataclass(frozen=True)
class DemoFacts:
    """Everything the summary says, read from the instance, the registry and the settings."""

    materialized: Mapping[str, Sequence[str]]  # asset key "a/b" -> partitions (empty: none)
    champions: Sequence[Champion]
    data_root: str
    mlflow_uri: str
    dagster_home: str
    serve_url: str = "http://127.0.0.1:8000"
    dagster_url: str = "http://127.0.0.1:3000"
    # The request of the curl example: a valid heart patient (HeartRequest's own example).
    heart_example: Mapping[str, float] = field(default_factory=dict)


def headline_metric(model: str, metrics: Mapping[str, float]) -> tuple[str, float] | None:
    """The metric that sums up ``model``'s run: its use case's (:data:`HEADLINE_METRICS`), under
    the first name of :data:`_METRIC_PREFIXES` it was logged with, or a mean of it; None when the
    run has none of them or the use case is not known."""
    base = HEADLINE_METRICS.get(model.split("_", 1)[0])
    if base is None:
        return None
    names = [f"{p}{base}" for p in _METRIC_PREFIXES] + [f"{p}{base}_mean" for p in _METRIC_PREFIXES]
    for name in names:
        if name in metrics:
            return name, float(metrics[name])
    return None


def _partitions(keys: Sequence[str]) -> str:
    if not keys:
        return ""
    if len(keys) <= PARTITIONS_SHOWN:
        return ", ".join(keys)
    return f"{len(keys)} partitions, {keys[0]} … {keys[-1]}"


def render(facts: DemoFacts) -> str:
    """The summary as lines of text for a newcomer: what, where, and the next commands."""
    lines = [f"Demo done: {len(facts.materialized)} assets materialized."]
    by_group: dict[str, list[str]] = {}
    for key in sorted(facts.materialized):
        group, _, name = key.rpartition("/")
        shown = name if group else key
        parts = _partitions(list(facts.materialized[key]))
        by_group.setdefault(group or "(no group)", []).append(
            f"{shown} [{parts}]" if parts else shown
        )
    for group, assets in by_group.items():
        lines.append(f"  {group}: {', '.join(assets)}")

    lines += ["", "Champions (MLflow registry, alias @champion):"]
    if not facts.champions:
        lines.append("  none registered")
    for c in sorted(facts.champions, key=lambda c: c.model):
        metric = f"{c.metric} = {c.value:.4g}" if c.metric is not None else "no headline metric"
        lines.append(f"  {c.model} v{c.version}: {metric}")

    lines += [
        "",
        "Where it lives:",
        f"  data:          {facts.data_root}",
        f"  MLflow store:  {facts.mlflow_uri}",
        f"  Dagster home:  {facts.dagster_home}",
        "",
        "Next:",
        f"  mlops dev      the Dagster UI at {facts.dagster_url} (Ctrl-C stops it)",
        f"  mlops serve    the prediction API at {facts.serve_url} (docs: {facts.serve_url}/docs)",
    ]
    if facts.heart_example:
        body = json.dumps(dict(facts.heart_example), separators=(",", ":"))
        lines += [
            "  then, in another shell:",
            f"  curl -s -X POST {facts.serve_url}/predict/heart "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}",
        ]
    return "\n".join(lines)


def read_materialized(instance) -> dict[str, list[str]]:
    """Every asset with a materialization in ``instance`` (a ``DagsterInstance``), as
    ``{"a/b": [partitions, sorted]}``."""
    found = {}
    for key in instance.get_asset_keys():
        if instance.get_latest_materialization_event(key) is None:
            continue  # observed or checked only
        found[key.to_user_string()] = sorted(instance.get_materialized_partitions(key))
    return found


def read_champions(tracking_uri: str) -> list[Champion]:
    """The ``champion`` version of every registered model of ``tracking_uri``, with its run's
    headline metric."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    champions = []
    for model in client.search_registered_models():
        if CHAMPION_ALIAS not in (model.aliases or {}):
            continue
        version = client.get_model_version_by_alias(model.name, CHAMPION_ALIAS)
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
        headline = headline_metric(model.name, metrics)
        metric, value = headline if headline else (None, None)
        champions.append(Champion(model.name, str(version.version), metric, value))
    return champions


def collect(settings: Settings, dagster_home: Path) -> DemoFacts:
    """The facts of the deployment of ``settings``, its instance in ``dagster_home``."""
    import os

    import dagster as dg

    from mlops_assets.heart.serving import HeartRequest
    from mlops_assets.serving.config import ServingConfig

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            materialized = read_materialized(instance)
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    serving = ServingConfig.from_env(settings.home)
    return DemoFacts(
        materialized=materialized,
        champions=read_champions(settings.mlflow_tracking_uri),
        data_root=settings.data_root,
        mlflow_uri=settings.mlflow_tracking_uri,
        dagster_home=str(dagster_home),
        serve_url=f"http://{serving.host}:{serving.port}",
        heart_example=HeartRequest.model_config["json_schema_extra"]["examples"][0],
    )


def demo_summary(settings: Settings, dagster_home: Path) -> str:
    """:func:`render` of :func:`collect`: what ``mlops demo`` prints at its end."""
    return render(collect(settings, dagster_home))
