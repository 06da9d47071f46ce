"""What an MLflow run shows of its lineage: the data it read as MLflow datasets, MLflow's source
tags, and the model asset's metadata that links the same chain in Dagster.

One tiny graph on the local profile's stores (parquet asset store, SQLite MLflow): an
unpartitioned ``reference`` and a statically partitioned ``features`` feed ``model``, which opens
its run and logs the partition it trained on as ``training`` and the reference as
``evaluation``; nothing is fitted, since only what the run records is under test.
"""

# No `from __future__ import annotations`: Dagster reads the context and resource annotations of
# the asset functions below at definition time.
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.core.asset_store import AssetStore, store_resources
from mlops_assets.core.io_managers import frame_input
from mlops_assets.core.profiles import load_settings
from mlops_assets.core.tracking import (
    DATASET_CONTEXT_TAG,
    GIT_COMMIT_ENV,
    TAG_GIT_COMMIT,
    TAG_SOURCE_NAME,
    TAG_SOURCE_TYPE,
    MlflowTracking,
    dataset_uri,
    frame_schema,
    git_commit,
)
from mlops_assets_tests.fixtures.paths import REPO_ROOT

VERSIONS = dg.StaticPartitionsDefinition(["v1"])
USE_CASE = "lineage_test"
MODEL_NAME = "lineage_test.model"
HELD_OUT = 2


@pytest.fixture(scope="module", autouse=True)
def _quiet_mlflow():
    """No telemetry threads trying to reach the internet from the test process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield


@dg.asset
def reference():
    import pandas as pd

    return pd.DataFrame({"threshold": [0.5, 0.7]})


@dg.asset(partitions_def=VERSIONS)
def features():
    import pandas as pd

    return pd.DataFrame({"amount": [1.5, 2.0, 3.25, 4.0, 8.5], "count": [1, 2, 3, 4, 5]})


@dg.asset(
    partitions_def=VERSIONS,
    code_version="model-v3",
    ins={
        "features": frame_input(dg.AssetKey("features"), load_as="pandas"),
        "reference": frame_input(dg.AssetKey("reference"), load_as="pandas"),
    },
)
def model(
    context: dg.AssetExecutionContext,
    tracking: MlflowTracking,
    asset_store: AssetStore,
    features,
    reference,
) -> dg.MaterializeResult:
    from mlflow.entities.model_registry import ModelVersion

    with tracking.start_run(context, use_case=USE_CASE) as run:
        run.log_input_asset(
            context,
            asset_store,
            dg.AssetKey("features"),
            context="training",
            partition=context.partition_key,
            rows=len(features) - HELD_OUT,
            schema=frame_schema(features),
            selection=f"all but the last {HELD_OUT} rows",
        )
        run.log_input_asset(
            context, asset_store, dg.AssetKey("reference"), context="evaluation", rows=2
        )
    # What a registration returns, without logging a model: only the metadata is under test.
    version = ModelVersion(name=MODEL_NAME, version="3", creation_timestamp=0)
    return dg.MaterializeResult(
        metadata=tracking.model_metadata(run.run_id, model_version=version, alias="candidate")
    )


@dataclass
class Materialized:
    tracking: MlflowTracking
    store: AssetStore
    run: Any  # the MLflow run, as the client returns it
    metadata: dict[str, Any]
    versions: dict[str, str]  # asset -> the data version its materialization recorded


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> Materialized:
    home = tmp_path_factory.mktemp("home")
    tracking = MlflowTracking.from_settings(
        load_settings("local", environ={"MLOPS_HOME": str(home)})
    )
    resources = {"tracking": tracking, **store_resources(str(home / "data"))}
    instance = dg.DagsterInstance.ephemeral()
    # Unpartitioned and partitioned assets cannot share one run: the reference first.
    first = dg.materialize([reference], instance=instance, resources=resources)
    second = dg.materialize(
        [reference, features, model],
        selection=[features, model],
        partition_key="v1",
        instance=instance,
        resources=resources,
    )
    (ref_mat,) = first.asset_materializations_for_node("reference")
    (features_mat,) = second.asset_materializations_for_node("features")
    (model_mat,) = second.asset_materializations_for_node("model")
    metadata = {k: v.value for k, v in model_mat.metadata.items()}
    return Materialized(
        tracking=tracking,
        store=resources["asset_store"],
        run=tracking.client.get_run(metadata["mlflow_run_id"]),
        metadata=metadata,
        versions={
            "reference": ref_mat.tags["dagster/data_version"],
            "features": features_mat.tags["dagster/data_version"],
        },
    )


def _inputs(run: Any) -> dict[str, Any]:
    """The run's dataset inputs by their context tag."""
    return {
        next(t.value for t in i.tags if t.key == DATASET_CONTEXT_TAG): i
        for i in run.inputs.dataset_inputs
    }


def _checkout_head() -> str | None:
    if not (REPO_ROOT / ".git").exists():
        return None
    done = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def test_the_run_shows_its_training_and_evaluation_data_by_uri_and_data_version(
    materialized: Materialized,
):
    import mlflow.data

    inputs = _inputs(materialized.run)
    assert sorted(inputs) == ["evaluation", "training"]

    training = inputs["training"].dataset
    partition_file = materialized.store.path(dg.AssetKey("features"), "v1")
    version = materialized.versions["features"]
    # The partition's own data version: the content hash of the file the source names.
    assert version == hashlib.sha256(Path(partition_file.path).read_bytes()).hexdigest()
    assert training.name == f"features v1 [all but the last {HELD_OUT} rows]"
    assert (training.source_type, json.loads(training.source)) == (
        "local",
        {"uri": Path(partition_file.path).as_uri()},
    )
    # MLflow's digest holds 36 characters; the profile keeps the whole version.
    assert training.digest == version[:36]
    assert json.loads(training.profile) == {
        "data_version": version,
        "rows": 3,
        "selection": f"all but the last {HELD_OUT} rows",
    }
    assert json.loads(training.schema) == {
        "mlflow_colspec": [
            {"type": "double", "name": "amount", "required": True},
            {"type": "long", "name": "count", "required": True},
        ]
    }
    # MLflow itself resolves the source back to the file.
    assert mlflow.data.get_source(inputs["training"]).uri == Path(partition_file.path).as_uri()

    evaluation = inputs["evaluation"].dataset
    reference_file = materialized.store.path(dg.AssetKey("reference"))
    assert evaluation.name == "reference"
    assert json.loads(evaluation.source) == {"uri": Path(reference_file.path).as_uri()}
    assert evaluation.digest == materialized.versions["reference"][:36]
    assert json.loads(evaluation.profile)["data_version"] == materialized.versions["reference"]


def test_the_run_carries_mlflow_source_tags_of_the_code_that_trained_it(
    materialized: Materialized,
):
    tags = materialized.run.data.tags

    assert tags[TAG_SOURCE_NAME] == f"{__name__}:model"
    assert tags[TAG_SOURCE_TYPE] == "JOB"
    head = _checkout_head()
    if head is None:  # not run from a git checkout: no commit is claimed
        assert TAG_GIT_COMMIT not in tags
    else:
        assert tags[TAG_GIT_COMMIT] == head


def test_the_pinned_commit_of_an_image_overrides_the_checkout(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(GIT_COMMIT_ENV, "0123456789abcdef0123456789abcdef01234567")
    assert git_commit() == "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv(GIT_COMMIT_ENV, " ")
    assert git_commit() == _checkout_head()


def test_model_metadata_links_data_code_and_the_lineage_command(materialized: Materialized):
    meta, versions = materialized.metadata, materialized.versions
    features_uri = dataset_uri(materialized.store.path(dg.AssetKey("features"), "v1"))
    reference_uri = dataset_uri(materialized.store.path(dg.AssetKey("reference")))

    assert meta["training_data"] == (
        f"- `{features_uri}` data version `{versions['features']}`, 3 rows "
        f"(features v1 [all but the last {HELD_OUT} rows])"
    )
    assert meta["evaluation_data"] == (
        f"- `{reference_uri}` data version `{versions['reference']}`, 2 rows (reference)"
    )
    # The input versions Dagster recorded for this materialization: the reference's own, and
    # for the partitioned input Dagster's hash over the versions of the partitions read.
    assert meta["input_data_versions"] == {
        "features": hashlib.sha256(versions["features"].encode()).hexdigest(),
        "reference": versions["reference"],
    }
    assert meta["code_version"] == "model-v3"
    assert meta.get("git_commit") == _checkout_head()
    assert meta["mlflow_source"] == f"{__name__}:model"
    assert meta["lineage_command"] == f"mlops lineage model {MODEL_NAME}@3"


def test_dataset_uris_name_local_files_and_bucket_objects(tmp_path: Path):
    from mlops_assets.core.tracking import _dataset_source

    folder = tmp_path / "dt=2024-01-03" / "run_id=r1"
    assert dataset_uri(folder) == f"file://{tmp_path.as_posix()}/dt=2024-01-03/run_id=r1"
    assert dataset_uri(tmp_path / "a b#1.parquet") == (tmp_path / "a b#1.parquet").as_uri()
    assert dataset_uri("s3://bucket/fraud/training_set/dt=2024-01-03/run_id=r1") == (
        "s3://bucket/fraud/training_set/dt=2024-01-03/run_id=r1"
    )
    assert _dataset_source("s3://bucket/k.parquet") == ("s3", '{"uri": "s3://bucket/k.parquet"}')
    assert _dataset_source("file:///d/k.parquet") == ("local", '{"uri": "file:///d/k.parquet"}')
