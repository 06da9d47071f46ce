"""The registered heart model through plain MLflow pyfunc, as a user loads it: it takes the
patients of its training set (and ints, text numbers, gaps, as a payload brings them) and returns
P(heart disease), the numbers the Pipeline and the promotion gate compute, not 0/1 labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.tracking import CHAMPION, MlflowTracking, TrackedRun, _global_tracking_uri
from mlops_assets.heart import schema, training
from mlops_assets.heart.features import engineer_features
from mlops_assets.heart.serving import MODEL_NAME
from mlops_assets.heart.sources import GeneratorConfig, generate_patients
from mlops_assets_tests.fixtures.heart_data import AWKWARD_ROWS


class Logged:
    """Every kind compared, trained and logged as heart/models does; the best registered."""

    def __init__(self, tracking: MlflowTracking, features: pd.DataFrame) -> None:
        self.tracking = tracking
        self.features = features
        self.results: dict[str, training.KindResult] = {}
        self.uris: dict[str, str] = {}
        self.best = ""


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    home = tmp_path_factory.mktemp("home")
    tracking = MlflowTracking.from_settings(
        load_settings("local", environ={"MLOPS_HOME": str(home)})
    )
    # heart/raw → heart/features, read back as a user reads the parquet (polars, then pandas).
    raw = pl.from_arrow(generate_patients(GeneratorConfig(n_patients=300, seed=3))).to_pandas()
    features = pl.from_pandas(engineer_features(raw)).to_pandas()
    out = Logged(tracking, features)
    # The calls of heart/models, one for one (fewer folds: the same code, a faster test).
    frame = features[[schema.KEY, *schema.INPUTS, schema.TARGET]]
    out.results = training.compare_models(frame, n_folds=3)
    experiment_id = tracking.experiment_id(schema.USE_CASE)
    infos = {}
    for kind, result in out.results.items():
        created = tracking.client.create_run(experiment_id, run_name=kind)
        run = TrackedRun(tracking, created.info.run_id, experiment_id, {})
        infos[kind] = run.log_model(
            result.pipeline,
            name="model",
            input_example=frame[list(schema.INPUTS)].head(5),
            flavor="sklearn",
        )
        tracking.client.set_terminated(run.run_id)
        out.uris[kind] = infos[kind].model_uri
    out.best = training.best_kind(out.results)
    tracking.register(infos[out.best], MODEL_NAME, alias=CHAMPION)
    return out


def _pyfunc_predict(logged: Logged, uri: str, rows: object) -> np.ndarray:
    import mlflow.pyfunc

    with _global_tracking_uri(logged.tracking.tracking_uri):
        model = mlflow.pyfunc.load_model(uri)
    return np.asarray(model.predict(rows))


def test_the_champion_pyfunc_returns_disease_probabilities_of_training_rows(
    logged: Logged,
) -> None:
    rows = logged.features
    assert rows[schema.TARGET].nunique() == 2 and rows[list(schema.INPUTS)].isna().any().any()
    predicted = _pyfunc_predict(logged, f"models:/{MODEL_NAME}@{CHAMPION}", rows)
    pipeline = logged.results[logged.best].pipeline
    expected = pipeline.predict_proba(rows[list(schema.INPUTS)])[:, 1]

    assert predicted.shape == (len(rows),)
    assert predicted.dtype == np.float64
    assert ((predicted >= 0) & (predicted <= 1)).all()
    assert len(np.unique(predicted)) > 50  # probabilities, not 0/1 labels
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", training.MODEL_KINDS)
def test_every_kind_scores_through_pyfunc_as_the_gate_does(logged: Logged, kind: str) -> None:
    import mlflow.sklearn

    rows = logged.features
    predicted = _pyfunc_predict(logged, logged.uris[kind], rows)
    with _global_tracking_uri(logged.tracking.tracking_uri):
        pipeline = mlflow.sklearn.load_model(logged.uris[kind])
    # The promotion gate loads the sklearn flavor and calls training.score.
    np.testing.assert_allclose(predicted, training.score(pipeline, rows), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        predicted, training.score(logged.results[kind].pipeline, rows), rtol=0, atol=1e-12
    )


def test_integer_inputs_score_as_their_float_values(logged: Logged) -> None:
    # A JSON payload or a typed table brings ints for the float columns of the training set.
    rows = logged.features[list(schema.INPUTS)].dropna().head(40)
    as_ints = rows.astype({c: "int64" for c in schema.INPUTS if (rows[c] % 1 == 0).all()})
    assert (as_ints.dtypes == np.int64).sum() >= 10
    uri = f"models:/{MODEL_NAME}@{CHAMPION}"
    expected = training.score(logged.results[logged.best].pipeline, rows)
    np.testing.assert_allclose(_pyfunc_predict(logged, uri, as_ints), expected, rtol=0, atol=1e-12)


def test_awkward_rows_and_records_score_as_the_pipeline_scores_them(logged: Logged) -> None:
    # Gaps, unseen codes, ints, a number as text and an extra column, as a frame and as records.
    uri = logged.uris["logistic_regression"]
    expected = training.score(logged.results["logistic_regression"].pipeline, AWKWARD_ROWS)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(_pyfunc_predict(logged, uri, AWKWARD_ROWS), expected, atol=1e-12)
    records = AWKWARD_ROWS.to_dict("records")
    np.testing.assert_allclose(_pyfunc_predict(logged, uri, records), expected, atol=1e-12)


def test_a_missing_input_is_refused_by_name(logged: Logged) -> None:
    rows = logged.features.drop(columns=["thal"]).head(3)
    with pytest.raises(ValueError, match=r"1 model-input column\(s\) missing: thal"):
        _pyfunc_predict(logged, logged.uris["svm"], rows)
