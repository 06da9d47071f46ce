"""MlflowTracking: lineage tags, model logging, registry and aliases, on SQLite and on a server.

One tiny graph is materialized per backend: an unpartitioned ``reference`` asset and a daily
``raw`` asset feed ``classifier``, which trains a logistic regression inside
``MlflowTracking.start_run``, logs it and registers it as ``candidate``. The backends are the
local profile (SQLite under a temp home) and, marked ``stack``, an ``mlflow server`` with a
PostgreSQL backend and its artifacts in moto's S3.
"""

# No `from __future__ import annotations`: Dagster reads the context and resource annotations of
# the asset functions below at definition time.
import json
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.tracking import (
    CANDIDATE,
    TAG_ASSET_KEY,
    TAG_CODE_VERSION,
    TAG_PARTITION_KEY,
    TAG_RUN_ID,
    MlflowTracking,
    TrackingError,
    default_pip_requirements,
    input_data_version_tag,
)
from mlops_assets_tests.fixtures.mlflow_server import ARTIFACT_PREFIX
from mlops_assets_tests.fixtures.paths import REPO_ROOT
from mlops_assets_tests.fixtures.services import free_port

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01")
PARTITION = "2024-01-03"
USE_CASE = "tracking_test"
MODEL_NAME = "tracking_test.classifier"
FEATURES = ["amount", "velocity"]

# What the classifier asset trained, keyed by tracking URI, so tests can compare predictions of
# the registered model with the in-process ones.
_TRAINED_MODELS: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _quiet_mlflow():
    """No telemetry threads trying to reach the internet from the test process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield


def _frame(day: str):
    """A small, deterministic transactions frame for ``day``: fraud iff amount + velocity/2 > 0."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(int(day.replace("-", "")))
    amount = rng.normal(size=60)
    velocity = rng.normal(size=60)
    return pd.DataFrame(
        {
            "amount": amount,
            "velocity": velocity,
            "is_fraud": (amount + 0.5 * velocity + rng.normal(scale=0.3, size=60) > 0).astype(int),
        }
    )


@dg.asset(code_version="reference-v1")
def reference() -> dict:
    """Unpartitioned upstream: its data version is the input version recorded downstream."""
    return {"threshold": 0.5}


@dg.asset(partitions_def=DAYS, code_version="raw-v1")
def raw(context: dg.AssetExecutionContext):
    return _frame(context.partition_key)


@dg.asset(partitions_def=DAYS, code_version="model-v7")
def classifier(
    context: dg.AssetExecutionContext, tracking: MlflowTracking, raw, reference: dict
) -> dg.MaterializeResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.linear_model import LogisticRegression

    features, labels = raw[FEATURES], raw["is_fraud"]
    with tracking.start_run(context, use_case=USE_CASE) as run:
        model = LogisticRegression(C=1.0).fit(features, labels)
        run.log_params({"C": 1.0, "threshold": reference["threshold"]})
        run.log_metrics({"accuracy": model.score(features, labels)})
        run.log_dict({"rows": len(raw)}, "report.json")
        fig, ax = plt.subplots()
        ax.hist(model.predict_proba(features)[:, 1])
        run.log_figure(fig, "plots/scores.png")
        plt.close(fig)
        info = run.log_model(model, name="classifier", input_example=features.head(5))
        version = tracking.register(info, MODEL_NAME)
    _TRAINED_MODELS[tracking.tracking_uri] = (model, info)
    return dg.MaterializeResult(
        metadata=tracking.model_metadata(
            run.run_id,
            experiment_id=run.experiment_id,
            model_version=version,
            metrics=run.metrics,
        )
    )


@dataclass
class Trained:
    tracking: MlflowTracking
    reference_tags: dict[str, str]
    classifier_tags: dict[str, str]
    metadata: dict[str, Any]
    dagster_run_id: str
    model: Any
    model_info: Any
    global_uri_before: tuple[str | None, str | None]
    global_uri_after: tuple[str | None, str | None]


def _global_uri_state() -> tuple[str | None, str | None]:
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    assert mlflow  # imported for its side effect of loading the module
    return tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("server", marks=pytest.mark.stack)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The resource under test: local profile (SQLite) or an MLflow server (stack)."""
    if request.param == "sqlite":
        home = tmp_path_factory.mktemp("home")
        return MlflowTracking.from_settings(
            load_settings("local", environ={"MLOPS_HOME": str(home)})
        )
    return MlflowTracking(tracking_uri=request.getfixturevalue("mlflow_server"))


@pytest.fixture(scope="module")
def trained(backend: MlflowTracking, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Materialize reference, then one partition of raw and classifier, on one instance."""
    instance = dg.DagsterInstance.ephemeral()
    io_manager = dg.FilesystemIOManager(base_dir=str(tmp_path_factory.mktemp("assets")))
    resources = {"tracking": backend, "io_manager": io_manager}
    before = _global_uri_state()

    # Unpartitioned and partitioned assets cannot share one run: materialize the reference first.
    ref_result = dg.materialize([reference], instance=instance, resources=resources)
    result = dg.materialize(
        [reference, raw, classifier],
        selection=[raw, classifier],
        partition_key=PARTITION,
        instance=instance,
        resources=resources,
    )
    (ref_mat,) = ref_result.asset_materializations_for_node("reference")
    (clf_mat,) = result.asset_materializations_for_node("classifier")
    model, info = _TRAINED_MODELS[backend.tracking_uri]
    return Trained(
        tracking=backend,
        reference_tags=dict(ref_mat.tags or {}),
        classifier_tags=dict(clf_mat.tags or {}),
        metadata={k: v.value for k, v in clf_mat.metadata.items()},
        dagster_run_id=result.run_id,
        model=model,
        model_info=info,
        global_uri_before=before,
        global_uri_after=_global_uri_state(),
    )


def test_run_is_tagged_with_the_dagster_lineage_of_the_materialization(trained: Trained):
    client = trained.tracking.client
    run = client.get_run(trained.metadata["mlflow_run_id"])
    tags = run.data.tags

    assert tags[TAG_RUN_ID] == trained.dagster_run_id
    assert tags[TAG_ASSET_KEY] == "classifier"
    assert tags[TAG_PARTITION_KEY] == PARTITION
    assert tags[TAG_CODE_VERSION] == "model-v7"
    # The unpartitioned input's version is exactly the data version its materialization recorded.
    reference_version = trained.reference_tags["dagster/data_version"]
    assert tags[input_data_version_tag(dg.AssetKey("reference"))] == reference_version
    # Both inputs carry what Dagster recorded as this materialization's provenance.
    for upstream in ("reference", "raw"):
        assert (
            tags[input_data_version_tag(dg.AssetKey(upstream))]
            == trained.classifier_tags[f"dagster/input_data_version/{upstream}"]
        )
    assert run.info.status == "FINISHED"
    assert run.data.params == {"C": "1.0", "threshold": "0.5"}
    assert run.data.metrics["accuracy"] == pytest.approx(trained.metadata["metric/accuracy"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == f"mlops-assets/{USE_CASE}"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.json", "plots"} <= artifacts


def test_registered_version_is_candidate_and_carries_the_run_lineage(trained: Trained):
    tracking = trained.tracking
    candidate = tracking.get_version_by_alias(MODEL_NAME, CANDIDATE)

    assert candidate is not None
    assert str(candidate.version) == str(trained.metadata["model_version"])
    assert candidate.status == "READY"
    assert candidate.run_id == trained.metadata["mlflow_run_id"]
    assert candidate.tags[TAG_RUN_ID] == trained.dagster_run_id
    assert candidate.tags[TAG_PARTITION_KEY] == PARTITION
    assert tracking.champion(MODEL_NAME) is None
    assert tracking.get_version_by_alias(MODEL_NAME, "no-such-alias") is None
    assert tracking.get_version_by_alias("no-such-model", CANDIDATE) is None


def test_materialization_metadata_links_the_run_and_the_model_version(trained: Trained):
    meta = trained.metadata
    run_id = meta["mlflow_run_id"]
    experiment_id = trained.tracking.client.get_run(run_id).info.experiment_id

    assert meta["model_name"] == MODEL_NAME
    assert meta["model_alias"] == CANDIDATE
    assert meta["model_uri"] == f"models:/{MODEL_NAME}/{meta['model_version']}"
    assert 0.5 < meta["metric/accuracy"] <= 1.0
    if trained.tracking.is_server:
        assert meta["mlflow_run_url"] == (
            f"{trained.tracking.tracking_uri}/#/experiments/{experiment_id}/runs/{run_id}"
        )
    else:
        assert meta["mlflow_run_url"] == f"runs:/{run_id}"
        assert f"#/experiments/{experiment_id}/runs/{run_id}" in meta["mlflow_ui"]


def test_logging_a_model_leaves_mlflow_global_tracking_uri_as_it_was(trained: Trained):
    assert trained.global_uri_after == trained.global_uri_before


def test_logged_model_has_signature_input_example_and_pinned_requirements(
    trained: Trained, tmp_path: Path
):
    import mlflow.artifacts
    import yaml

    version = trained.metadata["model_version"]
    client = trained.tracking.client
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(MODEL_NAME, str(version)),
            dst_path=str(tmp_path),
            tracking_uri=trained.tracking.tracking_uri,
        )
    )
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    example = json.loads((local / "input_example.json").read_text())
    requirements = (local / "requirements.txt").read_text().split()

    assert example["columns"] == FEATURES
    # A binary classifier's pyfunc: no input schema (MLflow's strict types would refuse int64
    # or tz-aware columns of a training set), one float64 per row out, P(positive class).
    assert mlmodel["signature"].get("inputs") is None
    assert json.loads(mlmodel["signature"]["outputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}
    ]
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlops_assets.core.tracking"
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert set(default_pip_requirements("sklearn")) <= set(requirements)


def test_candidate_loads_in_a_fresh_process_and_predicts_the_same(trained: Trained, tmp_path: Path):
    scoring = _frame("2024-01-09")[FEATURES]
    scoring.to_parquet(tmp_path / "scoring.parquet")
    expected = trained.model.predict_proba(scoring)[:, 1].tolist()
    code = (
        "import json, sys; import mlflow.pyfunc, pandas as pd; "
        # What a serving process does first: keeps MLflow's REST client from importing Feast.
        "from mlops_assets.core.tracking import skip_feast_request_header_provider; "
        "skip_feast_request_header_provider(); "
        "model = mlflow.pyfunc.load_model(sys.argv[1]); "
        "frame = pd.read_parquet(sys.argv[2]); "
        "pyfunc = [float(v) for v in model.predict(frame)]; "
        "labels = [int(v) for v in model.get_raw_model().predict(frame)]; "
        "proba = model.get_raw_model().predict_proba(frame)[:, 1].tolist(); "
        "print(json.dumps({'pyfunc': pyfunc, 'labels': labels, 'proba': proba}))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained.tracking.tracking_uri}
    # Served artifacts are proxied by the tracking server: the client needs no S3 settings.
    for var in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
        env.pop(var, None)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            f"models:/{MODEL_NAME}@{CANDIDATE}",
            str(tmp_path / "scoring.parquet"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])

    assert loaded["proba"] == expected
    # A classifier's pyfunc returns the probability of the positive class, not the label.
    assert loaded["pyfunc"] == expected
    assert loaded["labels"] == trained.model.predict(scoring).tolist()


@pytest.mark.stack
@pytest.mark.parametrize("backend", ["server"], indirect=True)
def test_server_artifacts_land_in_the_s3_bucket(trained: Trained, s3_server):
    response = s3_server.client().list_objects_v2(
        Bucket=s3_server.bucket, Prefix=f"{ARTIFACT_PREFIX}/"
    )
    keys = [obj["Key"] for obj in response.get("Contents", [])]
    run_id = trained.metadata["mlflow_run_id"]
    model_id = trained.model_info.model_id

    assert any(k.endswith(f"{run_id}/artifacts/report.json") for k in keys), keys
    assert any(k.endswith(f"{run_id}/artifacts/plots/scores.png") for k in keys), keys
    assert any(model_id in k and k.endswith("/MLmodel") for k in keys), keys
    assert any(model_id in k and k.endswith("/model.pkl") for k in keys), keys


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_failed_alias_deletes_the_new_version_and_raises_a_clear_error(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
):
    tracking = trained.tracking
    client = tracking.client
    name = "tracking_test.half_registered"

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("alias store is down")

    monkeypatch.setattr(client, "set_registered_model_alias", refuse)
    with pytest.raises(TrackingError) as raised:
        tracking.register(trained.model_info, name, alias=CANDIDATE)

    message = str(raised.value)
    assert f"version 1 of model {name!r}" in message
    assert "setting alias 'candidate' failed" in message
    assert "alias store is down" in message
    assert "Version 1 was deleted again" in message
    assert client.search_model_versions(f"name='{name}'") == []
    assert tracking.get_version_by_alias(name, CANDIDATE) is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_failing_asset_body_ends_its_run_failed_and_fails_the_step(backend: MlflowTracking):
    @dg.asset
    def broken(context: dg.AssetExecutionContext, tracking: MlflowTracking) -> None:
        with tracking.start_run(context, use_case=USE_CASE):
            raise ValueError("training data is empty")

    result = dg.materialize([broken], resources={"tracking": backend}, raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "ValueError: training data is empty" in _failure_text(failure)
    client = backend.client
    runs = client.search_runs(
        [backend.experiment_id(USE_CASE)],
        filter_string=f"tags.`{TAG_RUN_ID}` = '{result.run_id}'",
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    assert runs[0].data.tags[TAG_ASSET_KEY] == "broken"


def test_unreachable_tracking_server_fails_the_step_fast_naming_the_env_var(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    tracking = MlflowTracking(tracking_uri=uri)

    @dg.asset
    def needs_mlflow(context: dg.AssetExecutionContext, tracking: MlflowTracking) -> None:
        with tracking.start_run(context, use_case=USE_CASE):
            pass

    started = time.monotonic()
    result = dg.materialize([needs_mlflow], resources={"tracking": tracking}, raise_on_error=False)
    elapsed = time.monotonic() - started

    assert not result.success
    (failure,) = result.get_step_failure_events()
    # TrackingError is a dagster.Failure: its description is what the UI shows for the step.
    description = failure.step_failure_data.user_failure_data.description
    assert f"MLFLOW_TRACKING_URI={uri}" in description
    assert "could not get or create experiment 'mlops-assets/tracking_test'" in description
    assert "Is the MLflow tracking server running" in description
    assert elapsed < 20
    with pytest.raises(TrackingError, match=f"MLFLOW_TRACKING_URI={uri}"):
        tracking.get_version_by_alias(MODEL_NAME, CANDIDATE)


def _failure_text(event: dg.DagsterEvent) -> str:
    """The messages of a step failure's error and of every error that caused it."""
    texts, error = [], event.step_failure_data.error
    while error is not None:
        texts.append(error.to_string())
        error = error.cause
    return "\n".join(texts)


def _ensure_in_child(uri: str, artifact_root: str) -> None:
    try:
        tracking = MlflowTracking(tracking_uri=uri, artifact_root=artifact_root)
        tracking.ensure_backend()
        tracking.experiment_id(f"child-{os.getpid()}")
    except BaseException:
        os._exit(1)
    os._exit(0)


def test_processes_preparing_a_fresh_sqlite_database_at_once_all_succeed(tmp_path: Path):
    import mlflow  # noqa: F401  (imported before forking, so the children start at once)

    uri = f"sqlite:///{tmp_path}/nested/mlflow.db"
    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(target=_ensure_in_child, args=(uri, str(tmp_path / "artifacts")))
        for _ in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)

    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    experiments = MlflowTracking(tracking_uri=uri).client.search_experiments()
    assert sum(e.name.startswith("mlops-assets/child-") for e in experiments) == 4
    assert (tmp_path / "nested" / "mlflow.db.lock").exists()


def test_a_fresh_sqlite_backend_copied_from_the_cached_tables_is_mlflows_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A new home starts from the cached copy of MLflow's tables: the same tables and schema
    revision as MLflow's own creation, and a Default experiment under this home's artifacts."""
    import sqlalchemy

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def tables(uri: str) -> dict[str, list[str]]:
        engine = sqlalchemy.create_engine(uri)
        inspector = sqlalchemy.inspect(engine)
        with engine.connect() as conn:
            revision = conn.execute(sqlalchemy.text("select version_num from alembic_version"))
            shape = {
                t: sorted(c["name"] for c in inspector.get_columns(t))
                for t in inspector.get_table_names()
            }
            shape["alembic_version"] = [row[0] for row in revision]
        engine.dispose()
        return shape

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    own = f"sqlite:///{tmp_path}/own/mlflow.db"
    (tmp_path / "own").mkdir()
    SqlAlchemyStore(own, str(tmp_path / "own-artifacts"))
    homes = []
    for name in ("first", "second"):
        tracking = MlflowTracking(
            tracking_uri=f"sqlite:///{tmp_path}/{name}/mlflow.db",
            artifact_root=str(tmp_path / name / "artifacts"),
        )
        tracking.ensure_backend()
        homes.append(tracking)
    assert len(list((tmp_path / "cache" / "mlops_assets" / "mlflow").glob("tables-*.db"))) == 1
    assert tables(homes[0].tracking_uri) == tables(own)
    for tracking, name in zip(homes, ("first", "second"), strict=True):
        [default] = tracking.client.search_experiments()
        assert default.name == "Default"
        assert str(tmp_path / name / "artifacts") in default.artifact_location


def test_default_pip_requirements_pin_installed_versions_of_nested_estimators():
    import importlib.metadata

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    pipeline = make_pipeline(StandardScaler(), XGBClassifier(n_estimators=2))
    requirements = default_pip_requirements("sklearn", pipeline)

    assert f"xgboost=={importlib.metadata.version('xgboost')}" in requirements
    assert f"scikit-learn=={importlib.metadata.version('scikit-learn')}" in requirements
    assert f"cloudpickle=={importlib.metadata.version('cloudpickle')}" in requirements
    assert not any(r.startswith(("mlflow", "mlops")) for r in requirements)
    assert requirements == sorted(requirements, key=str.lower)


def test_module_imports_without_loading_mlflow_or_sklearn():
    code = (
        "import sys, mlops_assets.core.tracking; "
        "print([m for m in ('mlflow', 'sklearn', 'pandas') if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
