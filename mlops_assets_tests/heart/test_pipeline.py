"""The heart pipeline: generated patients end to end on the local profile (and the registered
version rebuilt IDENTICAL), the real Cleveland file with its `?` values, the deployment package in
a fresh process, and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.rebuild import EXIT_IDENTICAL, TAG_REBUILD_OF, TAG_REBUILD_OF_RUN
from mlops_assets.definitions import resources_for
from mlops_assets.heart import schema
from mlops_assets.heart.assets import MODEL_NAME
from mlops_assets.heart.definitions import ASSETS
from mlops_assets.tooling.rebuild import rebuild_command
from mlops_assets_tests.fixtures import deployment
from mlops_assets_tests.fixtures.runs import check_verdicts, failures, metadata

ALL = [
    "heart/raw",
    "heart/quality_report",
    "heart/features",
    "heart/models",
    "heart/champion",
    "heart/deployment_package",
]
CLEVELAND = Path(__file__).parent / "data" / "processed.cleveland.data"
# The instance `mlops rebuild` opens (DAGSTER_HOME of the test's local profile).
deployment_instance = deployment.deployment_instance


def _materialize(keys=ALL, raw_config=None, **kwargs) -> dg.ExecuteInProcessResult:
    selection = dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys])
    return dg.materialize(
        ASSETS,
        selection=selection,
        raise_on_error=False,
        run_config={
            "ops": {"heart__raw": {"config": raw_config or {"n_patients": 400}}}
            if "heart/raw" in keys
            else {}
        },
        **kwargs,
    )


@pytest.fixture
def resources(local_home: Path) -> dict:
    return resources_for(load_settings())


def test_real_cleveland_file_end_to_end(resources: dict, local_home: Path) -> None:
    """The UCI file as published (303 patients, `?` in ca and thal): the checks pass, the
    models reach the ROC-AUC the literature reports for it, and the package predicts in a fresh
    process exactly as in this one."""
    run = _materialize(raw_config={"source": "uci", "path": str(CLEVELAND)}, resources=resources)
    assert run.success, failures(run)
    assert check_verdicts(run) == {
        "patients_meet_expectations": True,
        "record_id_is_unique": True,
        "patients_are_not_repeated": True,
    }
    report = metadata(run, "heart/quality_report")
    assert report["patients"] == 303
    assert report["missing_values"] == {"ca": 4, "thal": 2}

    models = metadata(run, "heart/models")
    assert 0.85 <= models["metric/cv_roc_auc"] <= 0.93, models["metric/cv_roc_auc"]
    assert models["kind"] in {"random_forest", "logistic_regression", "gradient_boosting", "svm"}

    tracking = resources["mlflow"]
    champion = tracking.get_version_by_alias(MODEL_NAME, "champion")
    assert champion is not None and champion.tags["kind"] == models["kind"]

    package = metadata(run, "heart/deployment_package")
    folder = Path(package["path"])
    assert package["built"] is True and package["model_version"] == str(champion.version)
    assert {"MANIFEST.json", "model_card.md", "config.json", "environment.lock"} <= {
        p.name for p in folder.iterdir()
    }

    rows = pd.read_csv(CLEVELAND, header=None, names=[*schema.INPUTS, "num"], na_values="?")
    rows = rows[list(schema.INPUTS)].head(8)
    code = (
        "import json, sys, mlflow.sklearn, pandas as pd; "
        f"m = mlflow.sklearn.load_model({str(folder / 'model')!r}); "
        "rows = pd.DataFrame(json.loads(sys.stdin.read())); "
        "print(json.dumps(m.predict_proba(rows)[:, 1].tolist()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=rows.to_json(orient="records"),
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    served = tracking.load_model(MODEL_NAME, "champion").predict_proba(rows)[:, 1]
    assert fresh == pytest.approx(served.tolist(), abs=1e-12)

    # Same data, same seed: the same candidate scores, so the gate keeps the champion, and the
    # package of the serving version is verified, not rebuilt.
    again = _materialize(
        ["heart/models", "heart/champion", "heart/deployment_package"], resources=resources
    )
    assert again.success, failures(again)
    assert metadata(again, "heart/champion")["promotion/decision"] == "kept"
    assert metadata(again, "heart/deployment_package")["built"] is False


def test_generated_patients_end_to_end(
    resources: dict,
    local_home: Path,
    deployment_instance: dg.DagsterInstance,
    capsys: pytest.CaptureFixture,
) -> None:
    """Generated patients through every asset, into the deployment's instance; then `mlops
    rebuild` of the registered version: the best kind retrained from the recorded features and
    settings is the registered model, metric for metric and prediction for prediction."""
    run = _materialize(resources=resources, instance=deployment_instance)
    assert run.success, failures(run)
    features = pd.read_parquet(local_home / ".data" / "heart" / "features.parquet")
    assert {"age_group", "risk_score", "cp_exang_interaction"} <= set(features.columns)
    assert len(features) == 400
    assert metadata(run, "heart/models")["metric/cv_roc_auc"] > 0.75

    tracking = resources["mlflow"]
    version = tracking.get_version_by_alias(MODEL_NAME, "champion")
    capsys.readouterr()
    code = rebuild_command(load_settings(), MODEL_NAME, str(version.version), as_json=True)
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert code == EXIT_IDENTICAL, out
    assert report["status"] == "identical" and report["run_id"] == version.run_id
    # The lineage was walked in the instance the run wrote to: nothing missing, nothing changed.
    assert not [note for note in report["notes"] if note.startswith("lineage:")], report["notes"]
    # Every metric the original run logged (cv_ and holdout_), each compared.
    names = {m["name"] for m in report["metrics"]}
    assert {"cv_roc_auc", "cv_f1", "holdout_roc_auc", "holdout_brier"} <= names
    assert all(m["equal"] and m["abs_diff"] <= 1e-9 for m in report["metrics"])
    assert report["predictions"]["rows_original"] == 80  # the 20% stratified holdout of 400
    assert report["predictions"]["max_abs_diff"] == 0.0

    # A new run beside the original, tagged with what it rebuilt; nothing registered or moved.
    rebuilt = tracking.client.get_run(report["rebuild_run_id"])
    original = tracking.client.get_run(version.run_id)
    assert rebuilt.info.experiment_id == original.info.experiment_id
    assert rebuilt.data.tags[TAG_REBUILD_OF] == str(version.version)
    assert rebuilt.data.tags[TAG_REBUILD_OF_RUN] == version.run_id
    assert rebuilt.data.tags["dagster.run_id"] == original.data.tags["dagster.run_id"] == run.run_id
    assert rebuilt.data.params == original.data.params
    versions = tracking.client.search_model_versions(f"name='{MODEL_NAME}'")
    assert [v.version for v in versions] == [version.version]
    for alias in ("candidate", "champion"):
        assert tracking.get_version_by_alias(MODEL_NAME, alias).version == version.version


def test_a_malformed_uci_file_fails_before_anything_is_built(
    resources: dict, local_home: Path
) -> None:
    lines = CLEVELAND.read_text().splitlines()
    lines[4] = lines[4].replace("130.0", "abc", 1)
    bad = local_home / "bad.data"
    bad.write_text("\n".join(lines) + "\n")
    run = _materialize(
        ["heart/raw", "heart/features"],
        raw_config={"source": "uci", "path": str(bad)},
        resources=resources,
    )
    assert not run.success
    assert "trestbps" in failures(run)
    assert not (local_home / ".data" / "heart" / "raw.parquet").exists()


def _step_failure(run: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in run.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert error.cls_name == "Failure", error.to_string()
    return error.message


def test_a_header_only_file_is_refused_before_anything_is_built(
    resources: dict, local_home: Path
) -> None:
    empty = local_home / "empty.csv"
    empty.write_text(",".join([*schema.INPUTS, "num"]) + "\n")
    run = _materialize(
        ["heart/raw", "heart/features"],
        raw_config={"source": "uci", "path": str(empty)},
        resources=resources,
    )
    assert not run.success
    message = _step_failure(run)
    assert str(empty) in message and "no rows" in message, message
    assert not (local_home / ".data" / "heart").exists()


def test_copies_of_one_patient_are_blocked_and_nothing_is_published(
    resources: dict, local_home: Path
) -> None:
    lines = CLEVELAND.read_text().splitlines()
    copied = local_home / "copied.data"
    copied.write_text("\n".join([*lines[:50], *[lines[7]] * 20]) + "\n")
    run = _materialize(
        ["heart/raw", "heart/features"],
        raw_config={"source": "uci", "path": str(copied)},
        resources=resources,
    )
    assert not run.success
    verdicts = check_verdicts(run)
    assert verdicts["record_id_is_unique"] is True  # the line number: it cannot see copies
    assert verdicts["patients_are_not_repeated"] is False
    [check] = [
        e for e in run.get_asset_check_evaluations() if e.check_name == "patients_are_not_repeated"
    ]
    assert "20 unexpected" in check.description, check.description
    assert metadata(run, "heart/raw")["published"] is False
    samples = json.dumps(check.metadata["samples"].value)
    assert "record_id 8, 51, 52" in samples, samples
    data = local_home / ".data" / "heart"
    assert not (data / "raw.parquet").exists() and not (data / "features.parquet").exists()


def test_a_csv_with_target_and_no_num_is_supported(resources: dict, local_home: Path) -> None:
    """The Kaggle layout: a header, the 13 inputs and `target` only. The severity is unknown
    (`num` null), the checks pass and the features are built from it."""
    rows = pd.read_csv(CLEVELAND, header=None, names=[*schema.INPUTS, "num"], na_values="?")
    rows["target"] = (rows.pop("num") > 0).astype(int)
    kaggle = local_home / "heart.csv"
    rows.to_csv(kaggle, index=False)
    run = _materialize(
        ["heart/raw", "heart/quality_report", "heart/features"],
        raw_config={"source": "uci", "path": str(kaggle)},
        resources=resources,
    )
    assert run.success, failures(run)
    assert all(check_verdicts(run).values()), check_verdicts(run)
    raw = pd.read_parquet(local_home / ".data" / "heart" / "raw.parquet")
    assert len(raw) == 303 and raw["num"].isna().all()
    assert raw["target"].tolist() == rows["target"].tolist()
