"""The compiled fraud scorer: proven equal to the pipeline it was compiled from, or not used."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.fraud import scoring
from mlops_assets.fraud.scoring import (
    TOLERANCES,
    CompiledScorer,
    compile_pipeline,
    probe_rows,
    verified_scorer,
)
from mlops_assets.fraud.training import (
    CATEGORICAL_FEATURES,
    MODEL_INPUT_COLUMNS,
    NUMERIC_FEATURES,
    _as_float,
    build_pipeline,
    input_example,
)
from mlops_assets_tests.fixtures.fraud_data import make_training_set

EMPTY_FEATURE = "merchant_fraud_count_30d"  # null in every training row: a window never filled
KINDS = ["logreg", "xgboost", "xgboost-sparse"]


def _training_set() -> pd.DataFrame:
    """600 labelled payments (~10% fraud) with gaps: missing numbers, one feature never filled,
    missing categories."""
    frame = make_training_set(600, seed=0, fraud_rate=0.1)
    assert EMPTY_FEATURE in NUMERIC_FEATURES
    frame[EMPTY_FEATURE] = np.nan
    frame.loc[frame.index[::17], "channel"] = None
    frame.loc[frame.index[5::23], "merchant_category"] = np.nan
    return frame


def _fit(kind: str, frame: pd.DataFrame) -> Any:
    pipeline = build_pipeline("xgboost" if kind.startswith("xgboost") else kind)  # type: ignore[arg-type]
    if kind == "xgboost-sparse":
        # Sparse ColumnTransformer output: XGBoost then reads every zero as missing.
        pipeline.named_steps["preprocess"].set_params(sparse_threshold=1.0)
    return pipeline.fit(frame[MODEL_INPUT_COLUMNS], frame["is_fraud"])


@pytest.fixture(scope="module")
def training_set() -> pd.DataFrame:
    return _training_set()


@pytest.fixture(scope="module")
def pipelines(training_set: pd.DataFrame) -> dict[str, Any]:
    return {kind: _fit(kind, training_set) for kind in KINDS}


@pytest.fixture(scope="module")
def scorers(pipelines: dict[str, Any], training_set: pd.DataFrame) -> dict[str, CompiledScorer]:
    out = {}
    for kind, pipeline in pipelines.items():
        scorer, reason = verified_scorer(pipeline, input_example(training_set))
        assert scorer is not None, reason
        out[kind] = scorer
    return out


def _tolerance(kind: str) -> float:
    return TOLERANCES["xgboost" if kind.startswith("xgboost") else kind]


def _expected(pipeline: Any, frame: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(frame)[:, 1].astype(np.float64)


# --- _as_float's fast path ---------------------------------------------------------------------


def _per_column(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-column coercion, as _as_float did it before the fast path."""
    return pd.DataFrame(
        {c: pd.to_numeric(frame[c], errors="raise").astype("float64") for c in frame.columns},
        index=frame.index,
    )


def test_as_float_fast_path_gives_the_per_column_result() -> None:
    frame = pd.DataFrame(
        {
            "f64": [1.5, np.nan, -2.0, 1e12],
            "f32": np.array([0.1, np.nan, 3.0, -1.0], dtype=np.float32),
            "i64": [1, 2, -3, 2**53],
            "u8": np.array([0, 1, 255, 7], dtype=np.uint8),
            "flag": [True, False, True, False],
        },
        index=[10, 11, 12, 13],
    )
    out = _as_float(frame)
    pd.testing.assert_frame_equal(out, _per_column(frame))
    assert (out.dtypes == "float64").all()
    # Never a view of the caller's frame: the pipeline's imputer writes into its input.
    assert not np.shares_memory(out.to_numpy(), frame["f64"].to_numpy())
    # The same values through the per-column path (objects, None, pd.NA) give the same frame.
    objects = frame.astype(object)
    objects.loc[11, "i64"] = None
    ints = frame.assign(i64=pd.array([1, None, -3, 2**53], dtype="Int64"))
    expected = _per_column(frame).assign(i64=[1.0, np.nan, -3.0, float(2**53)])
    pd.testing.assert_frame_equal(_as_float(objects), expected)
    pd.testing.assert_frame_equal(_as_float(ints), expected)


def test_as_float_still_names_a_non_numeric_column() -> None:
    with pytest.raises(ValueError, match="column 'amount' must be numeric"):
        _as_float(pd.DataFrame({"amount": ["twelve"], "count": [1]}))


# --- the proof ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_compiles_and_is_proven_equal_at_load(
    pipelines: dict[str, Any], training_set: pd.DataFrame, kind: str
) -> None:
    scorer, reason = verified_scorer(pipelines[kind], input_example(training_set))
    assert scorer is not None
    assert scorer.kind == ("xgboost" if kind.startswith("xgboost") else kind)
    assert scorer.input_columns == tuple(MODEL_INPUT_COLUMNS)
    assert reason.startswith("compiled scorer equals the pipeline on ")
    n_rows = int(reason.split(" on ")[1].split()[0])
    assert n_rows >= len(probe_rows(input_example(training_set)))
    # Without an example the proof still runs, on the generated probe rows alone.
    assert verified_scorer(pipelines[kind])[0] is not None


def test_probe_rows_exercise_every_branch(training_set: pd.DataFrame) -> None:
    example = input_example(training_set)
    probe = probe_rows(example)
    assert list(probe.columns) == MODEL_INPUT_COLUMNS
    pd.testing.assert_frame_equal(
        probe.head(len(example))[NUMERIC_FEATURES], example[NUMERIC_FEATURES]
    )
    hours = probe["event_ts"].dt.hour
    assert set(hours.dropna().astype(int)) == set(range(24))
    assert probe["event_ts"].isna().any()  # a missing event time
    assert probe[NUMERIC_FEATURES].isna().all(axis=1).any()  # every number missing
    assert probe[CATEGORICAL_FEATURES].isna().all(axis=1).any()  # every category missing
    assert (probe["country"] == scoring._UNSEEN).any()  # a category never seen in training
    assert probe["amount"].max() >= 1e9 and probe["amount"].min() < 0
    assert len(probe_rows(None)) == len(probe) - len(example)
    pd.testing.assert_frame_equal(probe_rows(example, seed=3), probe_rows(example, seed=3))


@pytest.mark.parametrize("kind", KINDS)
def test_scores_equal_the_pipeline_on_fresh_rows(
    pipelines: dict[str, Any], scorers: dict[str, CompiledScorer], kind: str
) -> None:
    rng = np.random.default_rng(7)
    rows = make_training_set(200, seed=7, fraud_rate=0.1)[MODEL_INPUT_COLUMNS]
    rows.loc[rng.random(200) < 0.2, "amount"] = np.nan
    rows.loc[rng.random(200) < 0.1, EMPTY_FEATURE] = 3.0  # a value where training saw none
    rows.loc[rng.random(200) < 0.1, "country"] = "ZZ"  # never seen
    rows.loc[rng.random(200) < 0.1, "channel"] = None
    rows.loc[rng.random(200) < 0.05, "event_ts"] = pd.NaT
    expected = _expected(pipelines[kind], rows)
    scorer = scorers[kind]
    np.testing.assert_allclose(scorer.score(rows), expected, rtol=0, atol=_tolerance(kind))
    by_row = [scorer.score_row(r) for r in rows.to_dict("records")]
    np.testing.assert_allclose(by_row, expected, rtol=0, atol=_tolerance(kind))


# --- one row, as the API sends it --------------------------------------------------------------

KNOWN = {
    "merchant_category": ["grocery", "travel", "electronics", "missing"],
    "channel": ["pos", "ecom", "atm"],
    "country": ["FR", "US", "XX"],
}
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
naive_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
aware_times = st.builds(lambda t, tz: t.replace(tzinfo=tz), naive_times, offsets)
event_times = st.one_of(
    st.none(),
    st.just(pd.NaT),
    naive_times,
    aware_times,
    aware_times.map(pd.Timestamp),
    aware_times.map(datetime.isoformat),
    naive_times.map(datetime.isoformat),
    aware_times.map(lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
)
numbers = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.integers(-(10**6), 10**6),
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
)


def _category(column: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.just(float("nan")), st.sampled_from(KNOWN[column]), st.text(max_size=6)
    )


rows = st.fixed_dictionaries(
    {
        **dict.fromkeys(NUMERIC_FEATURES, numbers),
        **{c: _category(c) for c in CATEGORICAL_FEATURES},
        "event_ts": event_times,
    }
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=rows)
def test_a_row_scores_as_the_pipeline_scores_it(
    pipelines: dict[str, Any], scorers: dict[str, CompiledScorer], kind: str, row: dict
) -> None:
    expected = _expected(pipelines[kind], pd.DataFrame([row], columns=MODEL_INPUT_COLUMNS))[0]
    assert scorers[kind].score_row(row) == pytest.approx(expected, rel=0, abs=_tolerance(kind))


@pytest.mark.parametrize(
    "event_ts",
    [
        datetime(2024, 5, 6, 2, 30, tzinfo=UTC),
        datetime(2024, 5, 6, 2, 30),  # naive: UTC
        pd.Timestamp("2024-05-06 04:30", tz="Europe/Paris"),
        "2024-05-06T02:30:00Z",
        "2024-05-06T08:00:00+05:30",
        "2024-05-06 02:30",
    ],
)
def test_every_form_of_event_time_is_the_same_utc_hour(
    pipelines: dict[str, Any], scorers: dict[str, CompiledScorer], event_ts: Any
) -> None:
    row = dict(make_training_set(1, seed=1)[MODEL_INPUT_COLUMNS].iloc[0])
    at_two = scorers["logreg"].score_row({**row, "event_ts": pd.Timestamp("2024-05-06 02:00Z")})
    assert scorers["logreg"].score_row({**row, "event_ts": event_ts}) == at_two
    expected = _expected(pipelines["logreg"], pd.DataFrame([{**row, "event_ts": event_ts}]))
    assert at_two == pytest.approx(expected[0], rel=0, abs=1e-9)


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NaT])
def test_a_missing_event_time_encodes_no_hour(
    scorers: dict[str, CompiledScorer], missing: Any
) -> None:
    scorer = scorers["logreg"]
    row = dict(make_training_set(1, seed=1)[MODEL_INPUT_COLUMNS].iloc[0])
    features = scorer.features_row({**row, "event_ts": missing})
    assert not features[list(scorer.hour.positions.values())].any()


def test_unusual_numbers_are_coerced_or_refused_as_the_pipeline_does(
    pipelines: dict[str, Any], scorers: dict[str, CompiledScorer]
) -> None:
    row = dict(make_training_set(1, seed=1)[MODEL_INPUT_COLUMNS].iloc[0])
    scorer, pipeline = scorers["logreg"], pipelines["logreg"]
    for value in ["12.5", pd.NA, np.int64(12), np.float32(12.5), True]:
        expected = _expected(pipeline, pd.DataFrame([{**row, "amount": value}]))[0]
        assert scorer.score_row({**row, "amount": value}) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="column 'amount' must be numeric"):
        scorer.score_row({**row, "amount": "twelve"})
    with pytest.raises(ValueError, match="infinity"):
        scorer.score_row({**row, "amount": float("inf")})
    with pytest.raises(ValueError, match="infinity"):
        pipeline.predict_proba(pd.DataFrame([{**row, "amount": float("inf")}]))


def test_a_missing_column_is_named(scorers: dict[str, CompiledScorer]) -> None:
    row = dict(make_training_set(1, seed=1)[MODEL_INPUT_COLUMNS].iloc[0])
    del row["amount"], row["channel"]
    with pytest.raises(ValueError, match=r"2 model-input column\(s\) missing: amount, channel"):
        scorers["xgboost"].score_row(row)
    with pytest.raises(ValueError, match=r"missing: amount, channel"):
        scorers["xgboost"].score(pd.DataFrame([row]))


# --- what the proof refuses --------------------------------------------------------------------


def _with_extra_step(frame: pd.DataFrame) -> Any:
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.pipeline import Pipeline

    base = build_pipeline("logreg")
    steps = [base.steps[0], ("select", VarianceThreshold()), base.steps[1]]
    return Pipeline(steps).fit(frame[MODEL_INPUT_COLUMNS], frame["is_fraud"])


def _with_forest(frame: pd.DataFrame) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    pipeline = build_pipeline("logreg")
    pipeline.steps[-1] = ("classifier", RandomForestClassifier(n_estimators=5, random_state=0))
    return pipeline.fit(frame[MODEL_INPUT_COLUMNS], frame["is_fraud"])


def _with_min_max_scaler(frame: pd.DataFrame) -> Any:
    from sklearn.preprocessing import MinMaxScaler

    pipeline = build_pipeline("logreg")
    numeric = pipeline.named_steps["preprocess"].transformers[0][1]
    numeric.steps[-1] = ("scale", MinMaxScaler())
    return pipeline.fit(frame[MODEL_INPUT_COLUMNS], frame["is_fraud"])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_with_extra_step, r"steps are \['preprocess', 'select', 'classifier'\]"),
        (_with_forest, "the classifier is a RandomForestClassifier"),
        (_with_min_max_scaler, "the numeric branch is .*MinMaxScaler"),
        (lambda frame: build_pipeline("logreg"), "not a fitted ColumnTransformer"),
        (lambda frame: object(), "not a scikit-learn Pipeline"),
    ],
    ids=["extra-step", "random-forest", "other-scaler", "unfitted", "not-a-pipeline"],
)
def test_a_pipeline_of_another_layout_gets_no_scorer(
    training_set: pd.DataFrame, make: Any, reason: str
) -> None:
    scorer, why = verified_scorer(make(training_set))
    assert scorer is None
    assert why.startswith("no compiled scorer, unsupported pipeline: ")
    assert re.search(reason, why), why


def _shifted_statistics(scorer: CompiledScorer) -> CompiledScorer:
    numeric = dataclasses.replace(scorer.numeric, statistics=scorer.numeric.statistics + 1.0)
    return dataclasses.replace(scorer, numeric=numeric)


def _hours_off_by_one(scorer: CompiledScorer) -> CompiledScorer:
    positions = {(h + 1) % 24: p for h, p in scorer.hour.positions.items()}
    return dataclasses.replace(scorer, hour=dataclasses.replace(scorer.hour, positions=positions))


def _dense_zeros(scorer: CompiledScorer, pipeline: Any) -> CompiledScorer:
    # Reading the sparse pipeline's zeros as zeros: what a naive port would do.
    predict = scoring._xgboost_predict(pipeline.named_steps["classifier"], sparse=False)
    return dataclasses.replace(scorer, predict=predict)


@pytest.mark.parametrize(
    ("kind", "tamper", "reason"),
    [
        ("logreg", lambda s, p: _shifted_statistics(s), "features differ .* 'numeric__"),
        ("xgboost", lambda s, p: _shifted_statistics(s), "features differ"),
        ("logreg", lambda s, p: _hours_off_by_one(s), "features differ .* 'time__hour_of"),
        ("xgboost-sparse", _dense_zeros, "score differs from predict_proba"),
    ],
    ids=["logreg-statistics", "xgboost-statistics", "hours", "sparse-zeros"],
)
def test_a_scorer_that_differs_from_its_pipeline_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    pipelines: dict[str, Any],
    kind: str,
    tamper: Any,
    reason: str,
) -> None:
    pipeline = pipelines[kind]
    tampered = tamper(compile_pipeline(pipeline), pipeline)
    monkeypatch.setattr(scoring, "compile_pipeline", lambda _: tampered)
    scorer, why = verified_scorer(pipeline)
    assert scorer is None
    assert why.startswith("no compiled scorer, the proof failed on the typed frame: ")
    assert re.search(reason, why), why


def test_a_row_path_that_reads_time_differently_is_refused(
    monkeypatch: pytest.MonkeyPatch, pipelines: dict[str, Any]
) -> None:
    # score_row parses timestamps itself (no pandas): the proof checks it row by row too.
    monkeypatch.setattr(scoring, "_hour", lambda value: 3)
    scorer, why = verified_scorer(pipelines["logreg"])
    assert scorer is None
    assert re.search("row features differ .* 'time__hour_of", why), why


# --- XGBoost's trees, evaluated by numpy -------------------------------------------------------


def _booster(pipeline: Any) -> Any:
    return pipeline.named_steps["classifier"].get_booster()


def _random_features(n_features: int, seed: int) -> np.ndarray:
    """Standard-normal features, one value in five missing, some exact zeros and ones, and a few
    infinities (not missing: they go the way their sign says, the numpy trees read a missing
    value as an infinity of its default side)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, n_features))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    x[rng.random(x.shape) < 0.1] = 1.0
    x[rng.random(x.shape) < 0.02] = np.inf
    x[rng.random(x.shape) < 0.02] = -np.inf
    return x


def _booster_trained_with_missing_values() -> Any:
    """A booster whose splits send missing values both ways: trained where a missing value
    means a high label on some features and a low one on others (the fraud pipelines' trees,
    trained without missing values, all send them right), with an estimated base score."""
    from xgboost import XGBClassifier

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    x[(y == 1) & (rng.random(2000) < 0.4), 0] = np.nan
    x[(y == 0) & (rng.random(2000) < 0.4), 1] = np.nan
    # Its base score is estimated from these labels (0.483), a logit whose float32 rounding
    # must be XGBoost's own.
    model = XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, random_state=0)
    return model.fit(x, y).get_booster()


@pytest.mark.parametrize("kind", ["xgboost", "xgboost-sparse", "missing-both-ways"])
def test_numpy_trees_give_xgboosts_margins_bit_for_bit(
    pipelines: dict[str, Any], kind: str
) -> None:
    if kind == "missing-both-ways":
        booster = _booster_trained_with_missing_values()
    else:
        booster = _booster(pipelines[kind])
    trees = scoring.TreeEnsemble.from_booster(booster, (0, 0))
    assert len(trees.roots) == booster.num_boosted_rounds()
    if kind == "missing-both-ways":
        split = trees.children[0::2] != np.arange(len(trees.feature))
        assert 0 < trees.default_right[split].sum() < split.sum()
        assert trees.base_margin != 0  # an estimated base score, not 0.5
    # Rows on every split's edge (a threshold, the float32 values beside it, a float64 that rounds
    # onto it, missing) and ordinary rows with missing values.
    x = np.concatenate([trees.edge_rows(1000, seed=1), _random_features(trees.n_features, 2)])
    margin = booster.inplace_predict(x, predict_type="margin", missing=np.nan)
    np.testing.assert_array_equal(trees.margin(x), margin)
    probability = booster.inplace_predict(x, predict_type="value", missing=np.nan)
    # The logistic is C's expf in XGBoost: equal here, or one float32 rounding apart.
    np.testing.assert_array_max_ulp(trees.predict(x), probability, maxulp=1)
    # One row at a time (the API's case) reads the same trees.
    one = np.array([trees.margin(x[i : i + 1])[0] for i in range(0, len(x), 97)])
    np.testing.assert_array_equal(one, margin[::97])


def test_the_xgboost_scorer_never_calls_xgboost(
    monkeypatch: pytest.MonkeyPatch, pipelines: dict[str, Any], training_set: pd.DataFrame
) -> None:
    # XGBoost's predict runs OpenMP threads: the API's scorer must not enter it at all.
    import xgboost

    rows = make_training_set(50, seed=11)[MODEL_INPUT_COLUMNS]
    expected = _expected(pipelines["xgboost"], rows)
    scorer, note = verified_scorer(pipelines["xgboost"], input_example(training_set))
    assert scorer is not None and "trees evaluated by numpy" in note, note

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("xgboost predicted in the request path")

    for method in ("inplace_predict", "predict"):
        monkeypatch.setattr(xgboost.Booster, method, refuse)
    by_row = [scorer.score_row(r) for r in rows.to_dict("records")]
    np.testing.assert_allclose(by_row, expected, rtol=0, atol=TOLERANCES["xgboost"])
    np.testing.assert_allclose(scorer.score(rows), expected, rtol=0, atol=TOLERANCES["xgboost"])


def test_trees_numpy_cannot_reproduce_are_scored_by_xgboost(
    monkeypatch: pytest.MonkeyPatch, pipelines: dict[str, Any]
) -> None:
    def differs(self: Any, booster: Any, iteration_range: Any) -> None:
        raise scoring.UnsupportedTrees("numpy trees differ from XGBoost's margins by 1")

    monkeypatch.setattr(scoring.TreeEnsemble, "check_against", differs)
    scorer, note = verified_scorer(pipelines["xgboost"])
    assert scorer is not None
    assert note.endswith(
        "scored by XGBoost's own predict (numpy trees differ from XGBoost's margins by 1)"
    ), note


def test_early_stopping_keeps_the_trees_up_to_the_best_iteration(
    training_set: pd.DataFrame,
) -> None:
    pipeline = build_pipeline("xgboost", classifier_params={"n_estimators": 60})
    pipeline.named_steps["classifier"].set_params(early_stopping_rounds=3)
    features = training_set[MODEL_INPUT_COLUMNS]
    preprocess = pipeline.named_steps["preprocess"].fit(features)
    holdout = preprocess.transform(features.tail(150))
    pipeline.fit(
        features,
        training_set["is_fraud"],
        classifier__eval_set=[(holdout, training_set["is_fraud"].tail(150))],
        classifier__verbose=False,
    )
    best = pipeline.named_steps["classifier"].best_iteration
    assert best + 1 < 60  # stopped early: predict uses fewer trees than were grown
    scorer, note = verified_scorer(pipeline)
    assert scorer is not None, note
    assert f"XGBoost's {best + 1} trees evaluated by numpy" in note, note
