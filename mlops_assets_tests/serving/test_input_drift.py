"""Drift of the API's inputs: the request log read back into frames per model version, the
training rows each version is compared with, the verdict of a day and the retraining it asks for,
and the asset on a real heart champion (MLflow registry in a temp dir) over three days: requests
like the training patients, shifted ones, and none."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from mlops_assets.core import storage
from mlops_assets.core.asset_store import AssetStore, store_resources
from mlops_assets.core.monitoring.drift import DriftSummary, DriftThresholds
from mlops_assets.core.monitoring.retraining import RETRAINING_TRIGGER
from mlops_assets.core.monitoring.verdicts import drift_verdict
from mlops_assets.core.tracking import MlflowTracking, input_data_version_tag
from mlops_assets.heart import schema as heart_schema
from mlops_assets.housing.serving import values_seen
from mlops_assets.serving.assets import (
    INPUT_DRIFT,
    INPUTS_HAVE_NOT_DRIFTED,
    RETRAINING_JOBS,
    input_drift,
    predictions_log,
)
from mlops_assets.serving.drift import (
    DRIFT_COLUMNS,
    PREDICTION,
    LoggedRequests,
    ReferenceUnavailable,
    TrainedOn,
    VersionDrift,
    category_text,
    current_frame,
    day_outcome,
    judge_version,
    logged_requests,
    partition_input_version,
    stored_training_rows,
    trained_on,
)
from mlops_assets.serving.request_log import (
    batch_path,
    canonical_json,
    predictions_log_schema,
)
from mlops_assets_tests.fixtures.runs import failures, metadata
from mlops_assets_tests.fixtures.served_models import register

DAY = "2026-03-01"


def log_row(
    use_case: str,
    version: str | None,
    *,
    status: int = 200,
    request: Any = None,
    features: Any = None,
    prediction: float | None = 0.5,
    request_json: str | None = None,
    n: int = 0,
    day: str = DAY,
) -> dict[str, Any]:
    """One row of the request log as `read_day` returns it."""
    ts = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(seconds=n)
    return {
        "request_id": f"{use_case}-{n}",
        "ts": ts,
        "use_case": use_case,
        "model_name": f"{use_case}_model" if version else None,
        "model_version": version,
        "status": status,
        "latency_ms": 1.0,
        "prediction": prediction if status < 400 else None,
        "features_missing": 0,
        "error": None,
        "request_json": request_json if request_json is not None else canonical_json(request),
        "response_json": "{}",
        "features_json": canonical_json(features),
    }


# -- the log read back -----------------------------------------------------------------------------


def test_logged_requests_split_by_version_and_count_what_they_cannot_read() -> None:
    rows = [
        log_row("heart", "10", request={"age": 50}, n=1),
        log_row("heart", "9", request={"age": 60}, features={"risk": 1.0}, n=2),
        log_row("heart", "9", request={"age": 61}, n=3, prediction=None),
        log_row("heart", "9", status=422, request={"age": 999}, n=4),  # refused: not compared
        log_row("housing", "1", request={"beds": 2}, n=5),  # another use case
        log_row("heart", "9", request_json="{not json", n=6),
        log_row("heart", "9", request_json="[1, 2]", n=7),
        log_row("heart", None, request={"age": 70}, n=8),  # answered, yet no version
    ]

    day = logged_requests(pa.Table.from_pylist(rows, schema=predictions_log_schema()), "heart")

    # Versions are numbers: 9 before 10.
    assert [(b.model_version, b.rows) for b in day.batches] == [("9", 2), ("10", 1)]
    nine = day.batches[0]
    assert nine.values == ({"age": 60, "risk": 1.0}, {"age": 61})
    assert nine.predictions == (0.5, None)
    assert day.rows == 3
    assert day.unreadable == 3
    assert day.unreadable_reason.startswith("request heart-6: ")


def test_logged_requests_leave_out_the_predictions_scored_in_shadow() -> None:
    """During a rollout a request has a second row (role shadow, never sent): its inputs are
    the answer's, counted once; a canary answer counts under the version that answered."""
    rows = [
        log_row("heart", "9", request={"age": 50}, n=1),  # logged before roles: an answer
        {**log_row("heart", "9", request={"age": 60}, n=2), "role": "served", "alias": "champion"},
        {
            **log_row("heart", "10", request={"age": 60}, n=2),
            "role": "shadow",
            "alias": "candidate",
        },
        {
            **log_row("heart", "10", request={"age": 70}, n=3),
            "role": "served",
            "alias": "candidate",
        },
        {**log_row("heart", "9", request={"age": 70}, n=3), "role": "shadow", "alias": "champion"},
    ]
    table = pa.Table.from_pylist(rows, schema=predictions_log_schema())

    for log in (table, rows):  # an Arrow table, or rows as dicts
        day = logged_requests(log, "heart")
        assert [(b.model_version, b.values) for b in day.batches] == [
            ("9", ({"age": 50}, {"age": 60})),
            ("10", ({"age": 70},)),
        ]
        assert day.unreadable == 0


def test_logged_requests_of_an_empty_log_have_no_batch() -> None:
    day = logged_requests(predictions_log_schema().empty_table(), "heart")

    assert (day.batches, day.unreadable, day.rows) == ((), 0, 0)


def test_current_frame_types_the_columns_and_counts_features_the_log_lacks() -> None:
    batch = LoggedRequests(
        "heart",
        "heart_disease",
        "3",
        values=(
            {"age": 50, "chol": "abc", "thal": 3, "age_group": "senior"},
            {"age": None, "chol": 200.0, "thal": 7.0},  # no age_group at all
            {"age": 70.5, "thal": None, "age_group": None},  # no chol; nulls are not absences
        ),
        predictions=(0.1, None, 0.9),
    )

    frame, absent = current_frame(batch, ["age", "chol"], ["thal", "age_group"])

    assert list(frame.columns) == ["age", "chol", "thal", "age_group", PREDICTION]
    assert frame["age"].tolist()[0::2] == [50.0, 70.5] and math.isnan(frame["age"][1])
    assert math.isnan(frame["chol"][0]) and frame["chol"][1] == 200.0  # text is not a number
    assert frame["thal"].tolist() == ["3", "7", None]
    assert frame["age_group"].tolist() == ["senior", None, None]
    assert frame[PREDICTION].tolist()[0::2] == [0.1, 0.9]
    assert absent == {"chol": 1, "age_group": 1}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (3.0, "3"),
        (2.5, "2.5"),
        (True, "1"),
        (" senior ", "senior"),
        ("02139", "02139"),  # text keeps its leading zero
        ("", None),
        (None, None),
        (float("nan"), None),
        (pd.NA, None),
    ],
)
def test_category_text_writes_a_code_the_same_whatever_its_number_type(value, text) -> None:
    assert category_text(value) == text


def test_housing_reads_a_zipcode_as_inference_does() -> None:
    assert values_seen({"zipcode": 2139, "beds": 3}, None) == {"zipcode": "02139", "beds": 3}
    assert values_seen({"zipcode": "2139"}, None) == {"zipcode": "02139"}
    assert values_seen({"zipcode": "94110"}, None) == {"zipcode": "94110"}
    assert values_seen({"city": "Boston"}, None) == {"city": "Boston"}


# -- the training rows -----------------------------------------------------------------------------


def test_stored_training_rows_say_whether_they_are_the_rows_the_version_read(
    tmp_path: Path,
) -> None:
    store = AssetStore(root=str(tmp_path))
    key = dg.AssetKey(["uc", "features"])
    table = pa.table({"x": [1.0, 2.0, 3.0]})
    written = storage.write_parquet(store.path(key), table)
    tag = input_data_version_tag(key)

    def trained(tags: dict[str, str]) -> TrainedOn:
        return TrainedOn("uc_model", "4", run_tags=tags)

    frame, exact, note = stored_training_rows(store, key, trained({tag: written}))
    assert (frame["x"].tolist(), exact) == ([1.0, 2.0, 3.0], True)
    assert note == f"uc/features at data version {written[:12]}, the one uc_model v4 read"

    _, exact, note = stored_training_rows(store, key, trained({tag: "f" * 64}))
    assert not exact
    assert "uc_model v4 was trained on data version ffffffffffff, which the store no longer" in note

    _, exact, note = stored_training_rows(store, key, trained({}))
    assert not exact
    assert f"uc_model v4 recorded no data version of uc/features (run tag {tag})" in note

    # A partition read as an input is recorded as Dagster's hash over its data version.
    storage.write_parquet(store.path(key, "v1"), table)
    version_tags = {tag: partition_input_version(written)}
    _, exact, _ = stored_training_rows(
        store, key, TrainedOn("uc_model", "4", version_tags=version_tags), partition="v1"
    )
    assert exact

    with pytest.raises(ReferenceUnavailable, match="uc/features partition v2 is not in the store"):
        stored_training_rows(store, key, trained({}), partition="v2")


def test_housing_compares_the_train_sales_of_its_splits_without_their_date(tmp_path: Path) -> None:
    from mlops_assets.housing import schema as housing_schema
    from mlops_assets.housing.serving import training_rows

    store = AssetStore(root=str(tmp_path))
    key = housing_schema.CASE.key("splits")
    splits = pd.DataFrame(
        {
            "sale_id": ["a", "b", "c"],
            "sale_date": pd.to_datetime(["2015-01-02", "2016-03-04", "2021-05-06"]).date,
            "city": ["Boston", "Austin", "Boston"],
            "zipcode": ["02130", "78701", "02130"],
            "property_type": ["condo", "condo", "townhouse"],
            "beds": [2, 3, 4],
            "baths": [1.0, 2.0, 2.5],
            "living_area_sqft": [900.0, 1500.0, 2000.0],
            "lot_sqft": [None, 4000.0, 5000.0],
            "year_built": [1990, 2001, 1975],
            "condition": [3, 4, 5],
            "price": [300_000.0, 450_000.0, 600_000.0],
            "split": ["train", "train", "holdout"],
        }
    )
    written = storage.write_parquet(store.path(key), pa.Table.from_pandas(splits))
    trained = TrainedOn("housing_price", "2", version_tags={input_data_version_tag(key): written})

    reference = training_rows(store, trained)

    assert reference.exact
    assert reference.frame["zipcode"].tolist() == ["02130", "78701"]  # the train period only
    assert "sale_date" in reference.frame  # to price the rows, never compared
    assert "sale_date" not in (*reference.numeric, *reference.categorical)
    assert reference.categorical == ("city", "zipcode", "property_type")
    assert reference.note.endswith("; its 2 train sales")


def test_athletes_compare_the_training_athletes_of_the_tagged_feature_version(
    tmp_path: Path,
) -> None:
    from mlops_assets.athletes import schema as athletes_schema
    from mlops_assets.athletes.serving import training_rows
    from mlops_assets.athletes.training import is_validation

    store = AssetStore(root=str(tmp_path))
    key = athletes_schema.CASE.key("features")
    ids = pd.Series(range(1, 41), dtype="int64")
    frame = pd.DataFrame(
        {
            "athlete_id": ids,
            "age": 20.0 + ids % 10,
            "height": 65.0 + ids % 5,
            "weight": 150.0 + ids,
            "is_male": (ids % 2).astype(float),
            "total_lift": 800.0 + ids,
        }
    )
    written = storage.write_parquet(store.path(key, "v1"), pa.Table.from_pandas(frame))
    trained = TrainedOn(
        "athletes_total_lift",
        "5",
        version_tags={"feature_version": "v1"},
        run_tags={input_data_version_tag(key): partition_input_version(written)},
        params={"validation_share": "0.25"},
    )

    reference = training_rows(store, trained)

    expected = frame[~is_validation(ids, 0.25)]
    assert 0 < len(expected) < len(frame)
    assert reference.frame["weight"].tolist() == expected["weight"].tolist()
    assert (reference.numeric, reference.categorical) == (("age", "height", "weight"), ("is_male",))
    assert reference.exact
    with pytest.raises(ReferenceUnavailable, match="feature_version=None"):
        training_rows(store, TrainedOn("athletes_total_lift", "6"))


# -- the verdict of a day --------------------------------------------------------------------------


def _judged(use_case: str, version: str, status: str, psi: float | None) -> VersionDrift:
    thresholds = DriftThresholds()
    summary = DriftSummary(
        status=status,
        reason=f"worst x PSI {psi}" if psi is not None else "insufficient data: 3 current rows",
        table=None,
        reference_rows=500,
        current_rows=300,
        worst_feature="x" if psi is not None else None,
        worst_psi=psi,
    )
    verdict = drift_verdict(summary, thresholds=thresholds)
    return VersionDrift(use_case, f"{use_case}_model", version, 300, verdict, summary)


def test_a_day_fails_on_its_worst_use_case_and_asks_one_retraining_per_failing_use_case() -> None:
    judged = {
        "heart": [_judged("heart", "2", "error", 0.4), _judged("heart", "3", "error", 0.3)],
        "housing": [_judged("housing", "1", "ok", 0.02)],
        "athletes": [],
    }

    outcome = day_outcome(
        judged,
        {"athletes": (2, "request a-1: bad")},
        day=DAY,
        jobs=RETRAINING_JOBS,
        check=INPUTS_HAVE_NOT_DRIFTED,
        asset="serving/input_drift",
    )

    assert outcome.verdict.status == "failed"
    assert {u: v.status for u, v in outcome.by_use_case.items()} == {
        "athletes": "insufficient data",
        "heart": "failed",
        "housing": "ok",
    }
    assert outcome.by_use_case["athletes"].reason == (
        f"athletes: no answered request on {DAY} (2 logged requests unreadable, first: "
        "request a-1: bad)"
    )
    # One trigger for heart, for the latest of its failing versions, naming heart's job.
    [trigger] = outcome.triggers
    assert (trigger.job, trigger.partition, trigger.model_version, trigger.day) == (
        "heart_training",
        None,
        "3",
        DAY,
    )
    assert (trigger.check, trigger.asset, trigger.metric) == (
        INPUTS_HAVE_NOT_DRIFTED,
        "serving/input_drift",
        "psi",
    )


def test_a_day_without_requests_is_insufficient_data_and_triggers_nothing() -> None:
    outcome = day_outcome(
        {"heart": [], "housing": [_judged("housing", "1", "insufficient data", None)]},
        {},
        day=DAY,
        jobs=RETRAINING_JOBS,
        check=INPUTS_HAVE_NOT_DRIFTED,
        asset="serving/input_drift",
    )

    assert outcome.verdict.status == "insufficient data"
    assert outcome.verdict.reason.startswith(f"heart: no answered request on {DAY}; ")
    assert outcome.triggers == ()


def _batch(rows: int) -> LoggedRequests:
    return LoggedRequests("heart", "heart_disease", "7", ({"age": 50.0},) * rows, (0.5,) * rows)


def test_a_version_with_too_few_requests_is_not_compared_nor_loaded() -> None:
    def load():
        raise AssertionError("a quiet day must not load a model")

    judged = judge_version(
        _batch(99), load, thresholds=DriftThresholds(min_rows=100), fail_on="error"
    )

    assert (judged.verdict.status, judged.summary) == ("insufficient data", None)
    assert judged.verdict.reason == (
        "heart v7: 99 answered requests, fewer than the 100 needed to judge drift"
    )


def test_a_version_without_a_reference_is_insufficient_data() -> None:
    def load():
        raise ReferenceUnavailable("heart_disease v7 is no longer in the registry")

    judged = judge_version(
        _batch(100), load, thresholds=DriftThresholds(min_rows=100), fail_on="error"
    )

    assert judged.verdict.status == "insufficient data"
    assert judged.verdict.reason == (
        "heart v7: no reference, heart_disease v7 is no longer in the registry"
    )
    assert (
        judged.verdict.trigger(
            check="c",
            asset="a",
            model_name="m",
            model_version="7",
            day=DAY,
            job="j",
            partition=None,
        )
        is None
    )


# -- the asset on a real heart champion ------------------------------------------------------------

REQUESTS = 800


@pytest.fixture(scope="module")
def heart_world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A data root holding heart/features of 1,000 generated patients, and an MLflow registry
    whose heart_disease v1 (the champion) was fitted on the rows outside the holdout of that
    file, with the lineage and split parameters heart/models records."""
    from mlops_assets.heart import sources
    from mlops_assets.heart.features import engineer_features
    from mlops_assets.heart.training import build_pipeline, split_holdout

    root = tmp_path_factory.mktemp("input_drift")
    store = AssetStore(root=str(root / "data"))
    key = heart_schema.CASE.key("features")
    patients = sources.generate_patients(sources.GeneratorConfig(n_patients=1000, seed=42))
    features = engineer_features(patients.to_pandas())
    data_version = storage.write_parquet(
        store.path(key), pa.Table.from_pandas(features, preserve_index=False)
    )
    train, _ = split_holdout(
        features[[heart_schema.KEY, *heart_schema.INPUTS, heart_schema.TARGET]], 0.2, 0
    )
    pipeline = build_pipeline("logistic_regression", seed=0).fit(
        train[list(heart_schema.INPUTS)], train[heart_schema.TARGET]
    )
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{root}/mlflow.db")
    version = register(
        tracking,
        heart_schema.CASE.model_name,
        pipeline,
        run_tags={input_data_version_tag(key): data_version},
    )
    run_id = tracking.client.get_model_version(heart_schema.CASE.model_name, version).run_id
    tracking.client.log_param(run_id, "holdout_fraction", "0.2")
    tracking.client.log_param(run_id, "seed", "0")
    return SimpleNamespace(
        root=root / "data", tracking=tracking, version=version, pipeline=pipeline
    )


def write_heart_day(world: SimpleNamespace, day: str, *, seed: int, shift: bool) -> None:
    """A day of answered heart requests as the API logs them: the validated request, the
    engineered values and the probability; ``shift``: older, with more cholesterol and a lower
    heart rate than any training cohort."""
    from mlops_assets.heart import sources
    from mlops_assets.heart.features import ENGINEERED, engineer_features
    from mlops_assets.heart.training import score

    patients = sources.generate_patients(
        sources.GeneratorConfig(n_patients=REQUESTS, seed=seed)
    ).to_pandas()[list(heart_schema.INPUTS)]
    if shift:
        patients["age"] = (patients["age"] + 20).clip(upper=100)
        patients["chol"] = patients["chol"] * 1.5
        patients["thalach"] = patients["thalach"] - 30
    engineered = engineer_features(patients)[list(ENGINEERED)]
    probabilities = score(world.pipeline, patients)
    rows = []
    for n, (request, features) in enumerate(
        zip(patients.to_dict("records"), engineered.to_dict("records"), strict=True)
    ):
        request = {k: None if v != v else v for k, v in request.items()}
        features = {k: None if isinstance(v, float) and v != v else v for k, v in features.items()}
        row = log_row(
            "heart",
            world.version,
            request=request,
            features=features,
            prediction=float(probabilities[n]),
            n=n,
            day=day,
        )
        rows.append({**row, "model_name": heart_schema.CASE.model_name})
    table = pa.Table.from_pylist(rows, schema=predictions_log_schema())
    storage.write_parquet(batch_path(world.root, day, "segment-1"), table)


def materialize_day(
    world: SimpleNamespace, day: str, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [predictions_log, input_drift],
        selection=[INPUT_DRIFT],
        resources={**store_resources(str(world.root)), "mlflow": world.tracking},
        partition_key=day,
        run_config={"ops": {"serving__input_drift": {"config": {"min_rows": 100}}}},
        instance=instance,
        raise_on_error=False,
    )


def drift_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == INPUTS_HAVE_NOT_DRIFTED
    ]
    return evaluation


def stored_table(world: SimpleNamespace, day: str) -> pd.DataFrame:
    return pd.read_parquet(world.root / "serving" / "input_drift" / f"{day}.parquet")


def test_requests_like_the_training_patients_pass_with_a_linked_report(heart_world) -> None:
    from mlops_assets.heart.training import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    day = "2026-03-02"
    write_heart_day(heart_world, day, seed=7, shift=False)

    result = materialize_day(heart_world, day)

    assert result.success, failures(result)
    check = drift_check(result)
    assert check.passed
    assert check.metadata["status"].value == "ok"
    table = stored_table(heart_world, day)
    assert list(table.columns) == list(DRIFT_COLUMNS)
    assert set(table["use_case"]) == {"heart"}
    assert set(table["feature"]) == {*NUMERIC_FEATURES, *CATEGORICAL_FEATURES, PREDICTION}
    assert table["current_rows"].unique().tolist() == [REQUESTS]
    assert table["reference_rows"].unique().tolist() == [800]  # 1,000 less the 20 % holdout
    assert table["reference_exact"].all()
    assert (table["status"] == "ok").all() and not table["drifted"].any()
    meta = metadata(result, "serving/input_drift")
    assert RETRAINING_TRIGGER not in meta
    report = heart_world.root / "serving" / "input_drift" / day / "heart.html"
    assert meta["report_heart"] == str(report)
    page = report.read_bytes()
    assert b"</html>" in page and b"<h2>heart v1: API inputs of 2026-03-02 against" in page
    assert meta["drift_heart"].startswith("![PSI per feature of heart v1](data:image/png;base64,")
    assert "heart_disease v1 read" in meta["reasons"]  # the reference is the exact training set
    # The use cases without traffic say so, and pass.
    by_use_case = check.metadata["by_use_case"].value
    assert by_use_case["housing"] == {
        "status": "insufficient data",
        "reason": f"housing: no answered request on {day}",
    }


def test_shifted_requests_fail_the_check_and_ask_for_heart_training(heart_world) -> None:
    from mlops_assets.definitions import defs

    day = "2026-03-03"
    write_heart_day(heart_world, day, seed=7, shift=True)

    with dg.instance_for_test() as instance:
        result = materialize_day(heart_world, day, instance)

        assert result.success, failures(result)
        check = drift_check(result)
        assert not check.passed
        assert check.severity == dg.AssetCheckSeverity.ERROR
        assert check.metadata["status"].value == "failed"
        table = stored_table(heart_world, day)
        worst = table.sort_values("psi", ascending=False)["feature"].head(3).tolist()
        assert {"age", "chol", "thalach"} & set(worst)
        assert (table["status"] == "failed").all()
        meta = metadata(result, "serving/input_drift")
        [trigger] = meta[RETRAINING_TRIGGER]
        assert trigger["job"] == "heart_training"
        assert (trigger["model_name"], trigger["model_version"], trigger["day"]) == (
            "heart_disease",
            heart_world.version,
            day,
        )
        assert trigger["partition"] is None
        assert (heart_world.root / "serving" / "input_drift" / day / "heart.html").exists()

        # The code location's sensor turns it into one run request of heart's retraining.
        sensor = defs.resolve_sensor_def("serving_retrain_on_drift")
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        [request] = sensor.evaluate_tick(context).run_requests
        assert (request.job_name, request.partition_key, request.run_key) == (
            "heart_training",
            None,
            f"retrain:heart_disease:{heart_world.version}:{day}",
        )
        assert request.tags["mlops/trigger_check"] == INPUTS_HAVE_NOT_DRIFTED


def test_a_day_without_requests_is_insufficient_data_and_passes(heart_world) -> None:
    day = "2026-03-04"

    result = materialize_day(heart_world, day)

    assert result.success, failures(result)
    check = drift_check(result)
    assert check.passed
    assert check.metadata["status"].value == "insufficient data"
    assert stored_table(heart_world, day).empty
    meta = metadata(result, "serving/input_drift")
    assert RETRAINING_TRIGGER not in meta
    assert not any(k.startswith("report_") for k in meta)
    assert not (heart_world.root / "serving" / "input_drift" / day).exists()
    assert meta["versions"] == "no answered request of a watched use case on this day"


def test_the_registry_says_what_a_version_was_trained_on_and_when_it_is_gone(heart_world) -> None:
    trained = trained_on(heart_world.tracking, "heart_disease", heart_world.version)

    assert trained is not None
    key = input_data_version_tag(heart_schema.CASE.key("features"))
    # The lineage is copied from the run onto the version at registration; the split is a param.
    assert trained.version_tags[key] == trained.run_tags[key]
    assert (trained.params["holdout_fraction"], trained.params["seed"]) == ("0.2", "0")
    assert trained_on(heart_world.tracking, "heart_disease", "99") is None
    assert trained_on(heart_world.tracking, "no_such_model", "1") is None
