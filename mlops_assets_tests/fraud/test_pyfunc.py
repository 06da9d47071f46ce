"""The registered fraud model through plain MLflow pyfunc, as a user loads it: it takes the rows
of its own training set (int64 counts, tz-aware event times) and returns fraud probabilities,
the very numbers the Pipeline, batch scoring and the promotion gate compute."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlops_assets.core.profiles import load_settings
from mlops_assets.core.tracking import (
    CHAMPION,
    MlflowTracking,
    TrackedRun,
    _global_tracking_uri,
)
from mlops_assets.fraud import features, schema, sources, training
from mlops_assets.fraud.serving import MODEL_NAME

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(4)]
GENERATOR = sources.GeneratorConfig(
    n_cards=300, n_merchants=40, tx_per_day=600, fraud_rate=0.05, max_chargeback_days=2
)


def generated_training_set() -> pl.DataFrame:
    """Labelled payments of the generator with their card and merchant features, typed as the
    training set is (polars: Int64 counts, Float64 amounts, UTC event times in microseconds).

    Each row gets the features computed at its own payment: what the point-in-time join picks
    for it, without Feast.
    """
    tables = [sources.generate_day(day, GENERATOR) for day in DAYS]
    tx = pl.concat([pl.from_arrow(t) for t, _ in tables])
    labels = pl.concat([pl.from_arrow(lab) for _, lab in tables])
    start = datetime.combine(DAYS[0], datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=len(DAYS))
    card = features.card_features(tx, start, end)
    merchant = features.merchant_features(tx, labels, start, end)
    return (
        tx.join(labels.select("tx_id", "is_fraud"), on="tx_id")
        .join(card.select("tx_id", *schema.card_feature_columns()), on="tx_id")
        .join(merchant.select("tx_id", *schema.merchant_feature_columns()), on="tx_id")
        .sort("event_ts", "tx_id")
    )


class Logged:
    """Each kind trained and logged as fraud/model does, and the last one registered."""

    def __init__(self, tracking: MlflowTracking, rows: pd.DataFrame) -> None:
        self.tracking = tracking
        self.rows = rows
        self.results: dict[str, training.TrainingResult] = {}
        self.uris: dict[str, str] = {}


@pytest.fixture(scope="module")
def training_frame() -> pl.DataFrame:
    return generated_training_set()


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, training_frame: pl.DataFrame) -> Logged:
    home = tmp_path_factory.mktemp("home")
    tracking = MlflowTracking.from_settings(
        load_settings("local", environ={"MLOPS_HOME": str(home)})
    )
    # What a user gets reading the training set's parquet with polars, then pandas.
    out = Logged(tracking, training_frame.to_pandas())
    experiment_id = tracking.experiment_id(schema.USE_CASE)
    for kind in training.MODEL_KINDS:
        created = tracking.client.create_run(experiment_id, run_name=kind)
        run = TrackedRun(tracking, created.info.run_id, experiment_id, {})
        # The calls of fraud/model, one for one.
        result = training.train_and_evaluate(training_frame.to_pandas(), kind=kind)
        info = run.log_model(
            result.pipeline, name="model", input_example=result.input_example, flavor="sklearn"
        )
        tracking.client.set_terminated(run.run_id)
        out.results[kind] = result
        out.uris[kind] = info.model_uri
    # The last kind is the champion the user loads by alias.
    version = tracking.register(info, MODEL_NAME, alias=CHAMPION)
    assert version.aliases == [CHAMPION] or CHAMPION in version.aliases
    return out


def _pyfunc_predict(logged: Logged, uri: str, rows: pd.DataFrame) -> np.ndarray:
    import mlflow.pyfunc

    with _global_tracking_uri(logged.tracking.tracking_uri):
        model = mlflow.pyfunc.load_model(uri)
    return np.asarray(model.predict(rows))


def test_the_training_rows_have_the_types_that_were_refused(logged: Logged) -> None:
    # The rows of the finding: int64 counts and tz-aware event times straight from the set.
    dtypes = logged.rows.dtypes
    assert dtypes["merchant_tx_count_1d"] == np.int64
    assert dtypes["card_tx_count_1h"] == np.int64
    assert str(dtypes["event_ts"]) == "datetime64[us, UTC]"
    assert logged.rows["is_fraud"].nunique() == 2


def test_the_champion_pyfunc_returns_fraud_probabilities_of_training_rows(logged: Logged) -> None:
    rows = logged.rows
    predicted = _pyfunc_predict(logged, f"models:/{MODEL_NAME}@{CHAMPION}", rows)
    pipeline = logged.results[training.MODEL_KINDS[-1]].pipeline
    expected = pipeline.predict_proba(rows[training.MODEL_INPUT_COLUMNS])[:, 1]

    assert predicted.shape == (len(rows),)
    assert predicted.dtype == np.float64
    assert ((predicted >= 0) & (predicted <= 1)).all()
    # Probabilities, not 0/1 labels.
    assert len(np.unique(predicted)) > 100
    assert ((predicted > 0.01) & (predicted < 0.99)).any()
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", training.MODEL_KINDS)
def test_every_kind_scores_through_pyfunc_as_the_gate_does(logged: Logged, kind: str) -> None:
    import mlflow.sklearn

    rows = logged.rows
    predicted = _pyfunc_predict(logged, logged.uris[kind], rows)
    # The promotion gate and batch scoring load the sklearn flavor and call training.score.
    with _global_tracking_uri(logged.tracking.tracking_uri):
        pipeline = mlflow.sklearn.load_model(logged.uris[kind])
    np.testing.assert_allclose(predicted, training.score(pipeline, rows), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        predicted,
        logged.results[kind].pipeline.predict_proba(rows[training.MODEL_INPUT_COLUMNS])[:, 1],
        rtol=0,
        atol=1e-12,
    )


def test_json_like_rows_score_the_same(logged: Logged) -> None:
    # As a payload brings them: ISO times, None for a missing value, ints for counts.
    rows = logged.rows.head(200)
    payload = json.loads(rows.to_json(orient="records", date_format="iso"))
    frame = pd.DataFrame(payload)
    assert frame["event_ts"].map(type).eq(str).all()
    assert frame["card_amount_mean_1h"].isna().any()
    uri = logged.uris["logreg"]
    expected = logged.results["logreg"].pipeline.predict_proba(rows[training.MODEL_INPUT_COLUMNS])[
        :, 1
    ]
    np.testing.assert_allclose(_pyfunc_predict(logged, uri, frame), expected, rtol=0, atol=1e-12)


def test_a_missing_model_column_is_refused_by_name(logged: Logged) -> None:
    rows = logged.rows.head(5).drop(columns=["merchant_tx_count_1d", "channel"])
    with pytest.raises(ValueError, match=r"2 model-input column\(s\) missing: .*channel"):
        _pyfunc_predict(logged, logged.uris["logreg"], rows)


def test_one_record_scores_as_its_row(logged: Logged) -> None:
    row = logged.rows.iloc[7]
    record = {c: row[c] for c in training.MODEL_INPUT_COLUMNS}
    expected = logged.results["logreg"].pipeline.predict_proba(logged.rows.iloc[[7]])[:, 1]
    np.testing.assert_allclose(
        _pyfunc_predict(logged, logged.uris["logreg"], record), expected, rtol=0, atol=1e-12
    )


def test_the_model_keeps_its_sklearn_flavor_and_declares_a_probability_output(
    logged: Logged, tmp_path: Path
) -> None:
    import mlflow.artifacts
    import yaml

    with _global_tracking_uri(logged.tracking.tracking_uri):
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=logged.uris["logreg"], dst_path=str(tmp_path)
            )
        )
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    # No input schema: MLflow's strict types would refuse int64 counts and tz-aware times.
    assert "inputs" not in mlmodel["signature"] or mlmodel["signature"]["inputs"] is None
    [output] = json.loads(mlmodel["signature"]["outputs"])
    assert output["tensor-spec"] == {"dtype": "float64", "shape": [-1]}
    example = json.loads((local / "input_example.json").read_text())
    assert example["columns"] == training.MODEL_INPUT_COLUMNS
    # The sklearn flavor is unchanged (the assets and the API load the Pipeline from it); only
    # the pyfunc loads through the wrapper.
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlops_assets.core.tracking"
    assert "predict_fn" not in pyfunc
