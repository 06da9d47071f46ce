"""The summary `mlops demo` ends with: facts read from a real (ephemeral) Dagster instance and a
local MLflow sqlite registry, and the text a newcomer acts on."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.heart.serving import HeartRequest
from mlops_assets.tooling.demo_summary import (
    Champion,
    DemoFacts,
    headline_metric,
    read_champions,
    read_materialized,
    render,
)


def test_materialized_assets_and_partitions_come_from_the_instance() -> None:
    days = dg.StaticPartitionsDefinition(["2024-01-01", "2024-01-02", "2024-01-03"])

    @dg.asset(key=["toy", "raw"])
    def raw() -> int:
        return 1

    @dg.asset(key=["toy", "daily"], partitions_def=days)
    def daily() -> int:
        return 2

    @dg.asset(key=["toy", "never"])
    def never() -> int:
        return 3

    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize([raw], instance=instance)
        for day in ("2024-01-02", "2024-01-01"):
            dg.materialize([daily], instance=instance, partition_key=day)
        assert read_materialized(instance) == {
            "toy/raw": [],
            "toy/daily": ["2024-01-01", "2024-01-02"],
        }


@pytest.fixture
def registry(tmp_path: Path) -> str:
    """A local MLflow store (sqlite, artifacts under ``tmp_path``) with three models: two with a
    champion, one with a candidate only."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("demo", artifact_location=str(tmp_path / "artifacts"))
    runs = {
        "heart_disease": {"cv_roc_auc": 0.94, "holdout_roc_auc": 0.93, "holdout_f1": 0.8},
        "housing_price": {"eval_rmse": 41250.5, "eval_mae": 30000.0},
        "fraud_classifier": {"pr_auc": 0.5},
    }
    for model, metrics in runs.items():
        run = client.create_run(experiment)
        for name, value in metrics.items():
            client.log_metric(run.info.run_id, name, value)
        client.set_terminated(run.info.run_id)
        client.create_registered_model(model)
        for _ in range(2):
            version = client.create_model_version(
                model, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
            )
        alias = "candidate" if model == "fraud_classifier" else "champion"
        client.set_registered_model_alias(model, alias, version.version)
    return uri


def test_champions_and_their_headline_metric_come_from_the_registry(registry: str) -> None:
    champions = sorted(read_champions(registry), key=lambda c: c.model)
    assert champions == [
        Champion("heart_disease", "2", "holdout_roc_auc", 0.93),
        Champion("housing_price", "2", "eval_rmse", 41250.5),
    ]


@pytest.mark.parametrize(
    ("model", "metrics", "expected"),
    [
        ("fraud_classifier", {"pr_auc": 0.61, "roc_auc": 0.9}, ("pr_auc", 0.61)),
        ("heart_disease", {"cv_roc_auc": 0.94, "holdout_roc_auc": 0.93}, ("holdout_roc_auc", 0.93)),
        ("athletes_total_lift", {"val_mae": 20.0, "val_rmse": 31.5}, ("val_rmse", 31.5)),
        ("demand_forecaster_ciso", {"rmse_mean": 812.0, "mae_mean": 600.0}, ("rmse_mean", 812.0)),
        ("heart_disease", {"holdout_f1": 0.8}, None),
        ("someone_elses_model", {"rmse": 1.0}, None),
    ],
)
def test_headline_metric(model: str, metrics: dict[str, float], expected: tuple | None) -> None:
    assert headline_metric(model, metrics) == expected


def _facts(**overrides) -> DemoFacts:
    facts = {
        "materialized": {
            "heart/raw": [],
            "heart/champion": [],
            "fraud/bronze": [f"2024-01-0{d}" for d in range(1, 6)],
            "athletes/models": ["v1", "v2"],
        },
        "champions": [
            Champion("heart_disease", "3", "holdout_roc_auc", 0.928672),
            Champion("demand_forecaster_ciso", "1"),
        ],
        "data_root": "/home/me/mlops/.data",
        "mlflow_uri": "sqlite:////home/me/mlops/.mlflow/mlflow.db",
        "dagster_home": "/home/me/mlops/.dagster",
        "serve_url": "http://127.0.0.1:8000",
        "dagster_url": "http://127.0.0.1:3000",
        "heart_example": HeartRequest.model_config["json_schema_extra"]["examples"][0],
    }
    return DemoFacts(**{**facts, **overrides})


def test_render_says_what_where_and_what_next() -> None:
    lines = render(_facts()).splitlines()
    assert lines[0] == "Demo done: 4 assets materialized."
    assert "  athletes: models [v1, v2]" in lines
    assert "  fraud: bronze [5 partitions, 2024-01-01 … 2024-01-05]" in lines
    assert "  heart: champion, raw" in lines
    assert "  demand_forecaster_ciso v1: no headline metric" in lines
    assert "  heart_disease v3: holdout_roc_auc = 0.9287" in lines
    assert "  data:          /home/me/mlops/.data" in lines
    assert "  MLflow store:  sqlite:////home/me/mlops/.mlflow/mlflow.db" in lines
    assert "  Dagster home:  /home/me/mlops/.dagster" in lines
    assert "  mlops dev      the Dagster UI at http://127.0.0.1:3000 (Ctrl-C stops it)" in lines
    assert lines[-3].startswith("  mlops serve    the prediction API at http://127.0.0.1:8000")


def test_the_curl_of_the_summary_sends_a_valid_heart_request() -> None:
    curl = render(_facts()).splitlines()[-1]
    args = shlex.split(curl)
    assert args[:5] == ["curl", "-s", "-X", "POST", "http://127.0.0.1:8000/predict/heart"]
    body = json.loads(args[args.index("-d") + 1])
    assert HeartRequest.model_validate(body).age == 63  # the API accepts it as it is


def test_render_without_champions_or_example() -> None:
    text = render(_facts(champions=[], heart_example={}))
    assert "Champions (MLflow registry, alias @champion):\n  none registered" in text
    assert "curl" not in text
