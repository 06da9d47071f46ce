"""The heart deployment package, built from a real MLflow model logged to a SQLite store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.tracking import default_pip_requirements
from mlops_assets.heart import packaging
from mlops_assets.heart.features import ENGINEERED
from mlops_assets.heart.packaging import (
    MANIFEST,
    PackageManifest,
    build_package,
    verify_package,
)
from mlops_assets.heart.schema import INPUTS, RANGES
from mlops_assets.heart.training import build_pipeline, score
from mlops_assets_tests.fixtures.heart_data import AWKWARD_ROWS, synthetic_cohort

METRICS = {
    "cv": {"roc_auc": 0.85, "accuracy": 0.8, "roc_auc_std": 0.03},
    "holdout": {"roc_auc": 0.83, "f1": 0.79},
}
DATA_SUMMARY = {"rows": 400, "prevalence": 0.55, "source": "synthetic", "dt": "2024-05-01"}
CONFIG = {"kind": "logistic_regression", "seed": 0}


@dataclass(frozen=True)
class Logged:
    pipeline: object
    model_dir: Path


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    import mlflow

    cohort = synthetic_cohort(300)
    pipeline = build_pipeline("logistic_regression").fit(cohort[list(INPUTS)], cohort["target"])
    root = tmp_path_factory.mktemp("mlflow")
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        try:
            experiment = mlflow.create_experiment("heart", artifact_location=str(root / "art"))
            with mlflow.start_run(experiment_id=experiment):
                info = mlflow.sklearn.log_model(
                    pipeline,
                    name="model",
                    serialization_format="cloudpickle",
                    pip_requirements=default_pip_requirements("sklearn", pipeline),
                )
            local = Path(
                mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / "dl"))
            )
        finally:
            mlflow.set_tracking_uri(previous)
    assert (local / "MLmodel").is_file()
    return Logged(pipeline=pipeline, model_dir=local)


def _build(destination, logged: Logged) -> PackageManifest:
    return build_package(
        destination,
        model_dir=logged.model_dir,
        model_name="heart.classifier",
        model_version="3",
        metrics=METRICS,
        data_summary=DATA_SUMMARY,
        config=CONFIG,
    )


def test_package_holds_model_lock_config_card_and_a_manifest_that_verifies(
    tmp_path: Path, logged: Logged
) -> None:
    package = tmp_path / "packages" / "v3"
    manifest = _build(package, logged)
    paths = [f.path for f in manifest.files]
    assert paths == sorted(paths)
    assert {"environment.lock", "config.json", "model_card.md", "model/MLmodel"} <= set(paths)
    assert MANIFEST not in paths
    assert manifest.model_name == "heart.classifier" and manifest.model_version == "3"
    assert manifest.created_from == "models:/heart.classifier/3"
    # The model folder is a byte copy of the downloaded one.
    copied = sorted(p.relative_to(package / "model") for p in (package / "model").rglob("*"))
    assert copied == sorted(p.relative_to(logged.model_dir) for p in logged.model_dir.rglob("*"))
    assert verify_package(package) == manifest
    on_disk = json.loads((package / MANIFEST).read_text())
    assert on_disk["model_name"] == "heart.classifier" and len(on_disk["files"]) == len(paths)
    # No staging folder left beside the package.
    assert [p.name for p in package.parent.iterdir()] == ["v3"]

    lock = (package / "environment.lock").read_text().splitlines()
    assert lock[0].startswith(f"# python {sys.version_info.major}.{sys.version_info.minor}.")
    pins = lock[1:]
    assert pins == sorted(pins, key=lambda p: p.split("==")[0].lower().replace("_", "-"))
    import sklearn

    assert f"scikit-learn=={sklearn.__version__}" in pins
    assert all("==" in p for p in pins)

    config = json.loads((package / "config.json").read_text())
    assert config["model_name"] == "heart.classifier" and config["model_version"] == "3"
    assert [i["name"] for i in config["inputs"]] == list(INPUTS)
    by_name = {i["name"]: i for i in config["inputs"]}
    assert by_name["chol"]["range"] == list(RANGES["chol"]) and by_name["chol"]["kind"] == "numeric"
    assert by_name["thal"]["codes"] == [3, 6, 7] and by_name["thal"]["kind"] == "categorical"
    assert config["decision_threshold"] == 0.5
    assert config["engineered_features"] == list(ENGINEERED)
    assert config["training"] == CONFIG

    card = (package / "model_card.md").read_text()
    for heading in (
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Metrics",
        "## Limitations and ethical considerations",
    ):
        assert heading in card
    assert "- rows: 400" in card and "- prevalence: 0.5500" in card and "synthetic" in card
    assert "| roc_auc | 0.8500 |" in card and "| roc_auc | 0.8300 |" in card
    assert "Cleveland" in card and "Not a diagnostic device" in card and "Sex imbalance" in card


def test_tampered_missing_or_extra_files_fail_verification(tmp_path: Path, logged: Logged) -> None:
    package = tmp_path / "pkg"
    _build(package, logged)
    config = package / "config.json"
    original = config.read_bytes()
    config.write_bytes(original.replace(b'"decision_threshold": 0.5', b'"decision_threshold": 0.1'))
    with pytest.raises(ValueError, match=r"config\.json: sha256 does not match"):
        verify_package(package)
    config.write_bytes(original + b" ")
    with pytest.raises(ValueError, match=r"config\.json: \d+ bytes, manifest says \d+"):
        verify_package(package)
    config.write_bytes(original)
    verify_package(package)

    (package / "model" / "MLmodel").unlink()
    with pytest.raises(ValueError, match="missing: model/MLmodel"):
        verify_package(package)

    other = tmp_path / "other"
    _build(other, logged)
    (other / "model" / "backdoor.py").write_text("print('hi')\n")
    with pytest.raises(ValueError, match=re.escape("not in MANIFEST.json: model/backdoor.py")):
        verify_package(other)
    (other / MANIFEST).unlink()
    with pytest.raises(ValueError, match=r"no MANIFEST\.json"):
        verify_package(other)


def test_an_existing_destination_is_refused(tmp_path: Path, logged: Logged) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        _build(package, logged)
    assert list(package.iterdir()) == []
    with pytest.raises(ValueError, match="not an MLflow model folder"):
        build_package(
            tmp_path / "new",
            model_dir=tmp_path,
            model_name="m",
            model_version="1",
            metrics={},
            data_summary={},
            config={},
        )


def test_a_crash_mid_build_leaves_nothing(
    tmp_path: Path, logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    # After the model has been copied and the lock and config written.
    monkeypatch.setattr(packaging, "model_card", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _build(tmp_path / "pkg", logged)
    assert list(tmp_path.iterdir()) == []


def test_package_in_s3_uploads_the_manifest_last(
    aws_env, logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_assets.core.storage import make_upath

    root = make_upath(f"s3://{aws_env.bucket}/heart-packages", aws_env.endpoint_url)
    manifest = _build(root / "v3", logged)
    assert verify_package(root / "v3") == manifest
    with pytest.raises(FileExistsError):
        _build(root / "v3", logged)

    uploaded: list[str] = []
    real = packaging.atomic_write

    def flaky(path, write):
        if len(uploaded) == 3:
            raise ConnectionError("network gone")
        uploaded.append(path.name)
        real(path, write)

    monkeypatch.setattr(packaging, "atomic_write", flaky)
    with pytest.raises(ConnectionError):
        _build(root / "v4", logged)
    assert MANIFEST not in uploaded
    with pytest.raises(ValueError, match=r"no MANIFEST\.json"):
        verify_package(root / "v4")
    # The files uploaded before the failure were removed again.
    assert not (root / "v4").exists()


def test_the_package_predicts_the_same_in_a_fresh_process(tmp_path: Path, logged: Logged) -> None:
    """pyfunc's predict gives the class labels of a sklearn classifier, so the labels are compared
    through pyfunc and the probabilities through ``mlflow.sklearn.load_model``."""
    package = tmp_path / "pkg"
    _build(package, logged)
    rows = pd.concat([synthetic_cohort(2, seed=9)[list(INPUTS)], AWKWARD_ROWS[list(INPUTS)]])
    rows = rows.reset_index(drop=True).astype(float)
    assert len(rows) == 5
    rows_path = tmp_path / "rows.json"
    rows_path.write_text(rows.to_json(orient="records"))
    script = textwrap.dedent(
        f"""
        import json, sys
        import mlflow.pyfunc, mlflow.sklearn, pandas as pd
        from mlops_assets.heart.packaging import verify_package
        from pathlib import Path
        verify_package(Path({str(package)!r}))
        rows = pd.DataFrame(json.loads(Path({str(rows_path)!r}).read_text()))
        labels = mlflow.pyfunc.load_model({str(package / "model")!r}).predict(rows)
        model = mlflow.sklearn.load_model({str(package / "model")!r})
        proba = model.predict_proba(rows)[:, 1]
        print(json.dumps({{"labels": [int(x) for x in labels], "proba": proba.tolist()}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true", "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = score(logged.pipeline, rows)
    np.testing.assert_allclose(out["proba"], expected, rtol=0, atol=1e-12)
    assert out["labels"] == logged.pipeline.predict(rows).tolist()
