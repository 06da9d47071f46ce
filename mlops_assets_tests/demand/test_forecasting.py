"""Demand forecasting: rolling-origin backtest, leaderboard, forecast, and the MLflow pyfunc."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.demand import forecasting
from mlops_assets.demand.forecasting import (
    BASELINE,
    CV_COLUMNS,
    FORECAST_COLUMNS,
    LEADERBOARD_COLUMNS,
    MODELS,
    BacktestSpec,
    ForecastingError,
    backtest,
    forecast,
    leaderboard,
    minimum_history_hours,
)
from mlops_assets_tests.fixtures.demand_data import DAYS, RESPONDENTS, START, make_clean

# Statistical models train on two weeks at each origin: enough for the models used here, and fast.
SPEC = BacktestSpec(horizon=24, n_windows=3, step=24, input_hours=14 * 24, seed=0)
CV_MODELS = ("seasonal_naive", "holt_winters", "gbm")
H = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return make_clean()


@pytest.fixture(scope="module")
def cv(clean: pd.DataFrame) -> pd.DataFrame:
    return backtest(clean, CV_MODELS, SPEC)


def _intervals_ordered(frame: pd.DataFrame) -> bool:
    return bool(
        (
            (frame.yhat_lo_95 <= frame.yhat_lo_80)
            & (frame.yhat_lo_80 <= frame.yhat)
            & (frame.yhat <= frame.yhat_hi_80)
            & (frame.yhat_hi_80 <= frame.yhat_hi_95)
        ).all()
    )


# --- backtest -------------------------------------------------------------------------------------


def test_backtest_layout_and_origins(clean: pd.DataFrame, cv: pd.DataFrame) -> None:
    assert len(cv) == len(RESPONDENTS) * len(CV_MODELS) * SPEC.n_windows * SPEC.horizon
    assert tuple(cv.columns) == CV_COLUMNS
    assert str(cv.cutoff.dtype) == str(cv.ds.dtype) == "datetime64[us, UTC]"
    assert all(cv[c].dtype == np.float64 for c in CV_COLUMNS[4:])
    assert cv.index.equals(pd.RangeIndex(len(cv)))
    keys = cv[["unique_id", "model", "cutoff", "ds"]]
    assert keys.equals(keys.sort_values(list(keys.columns), ignore_index=True))
    assert not keys.duplicated().any()
    # Origins: the last one `horizon` hours before the last ds, then every `step` hours back.
    last = pd.Timestamp(START + timedelta(days=DAYS), tz="UTC") - H
    expected = [last - (SPEC.horizon + k * SPEC.step) * H for k in (2, 1, 0)]
    for (_, _), group in cv.groupby(["unique_id", "model"]):
        assert sorted(group.cutoff.unique()) == expected
        for cutoff, window in group.groupby("cutoff"):
            assert list(window.ds) == [cutoff + (i + 1) * H for i in range(SPEC.horizon)]
    # y is the observed value at ds.
    observed = cv.merge(clean, on=["unique_id", "ds"], suffixes=("", "_clean"))
    assert len(observed) == len(cv)
    assert (observed.y == observed.y_clean).all()
    assert np.isfinite(cv[list(CV_COLUMNS[5:])].to_numpy()).all()
    assert _intervals_ordered(cv)
    assert set(cv.attrs["diagnostics"]) == set(CV_MODELS)


def test_seasonal_naive_forecasts_yesterday(clean: pd.DataFrame, cv: pd.DataFrame) -> None:
    # horizon <= 24: every seasonal-naive forecast is the observed value 24 h earlier, which is
    # at or before the cutoff (nothing after it is used).
    sn = cv[cv.model == BASELINE].copy()
    sn["ds_before"] = sn.ds - 24 * H
    assert (sn.ds_before <= sn.cutoff).all()
    joined = sn.merge(
        clean.rename(columns={"ds": "ds_before", "y": "y_before"}), on=["unique_id", "ds_before"]
    )
    assert len(joined) == len(sn)
    np.testing.assert_array_equal(joined.yhat.to_numpy(), joined.y_before.to_numpy())


def test_backtest_does_not_leak_the_future(clean: pd.DataFrame, cv: pd.DataFrame) -> None:
    first_cutoff = cv.cutoff.min()
    perturbed = clean.copy()
    later = perturbed.ds > first_cutoff
    perturbed.loc[later, "y"] = perturbed.loc[later, "y"] * 1.5 + 1000.0
    again = backtest(perturbed, CV_MODELS, SPEC)
    forecasts = ["unique_id", "model", "cutoff", "ds", *CV_COLUMNS[5:]]
    first = (cv.cutoff == first_cutoff).to_numpy()
    pd.testing.assert_frame_equal(
        again.loc[first, forecasts].reset_index(drop=True),
        cv.loc[first, forecasts].reset_index(drop=True),
    )
    # ... while the later windows, which saw the perturbed data, changed for every model.
    changed = (
        again.loc[~first].groupby("model").yhat.sum() != cv.loc[~first].groupby("model").yhat.sum()
    )
    assert changed.all()


def test_input_hours_bounds_the_statistical_training_window(clean: pd.DataFrame) -> None:
    spec = dataclasses.replace(SPEC, n_windows=1)
    base = backtest(clean, ["holt_winters"], spec)
    cutoff = base.cutoff.min()
    older = clean.copy()
    before = older.ds <= cutoff - spec.input_hours * H
    older.loc[before, "y"] = older.loc[before, "y"] * 3.0
    pd.testing.assert_frame_equal(backtest(older, ["holt_winters"], spec), base)
    # With all history, the old data is used.
    everything = dataclasses.replace(spec, input_hours=None)
    assert not backtest(older, ["holt_winters"], everything).yhat.equals(
        backtest(clean, ["holt_winters"], everything).yhat
    )


def test_backtest_is_deterministic(clean: pd.DataFrame, cv: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(backtest(clean, CV_MODELS, SPEC), cv)


def test_gbm_beats_the_seasonal_naive_baseline(cv: pd.DataFrame) -> None:
    board = leaderboard(cv)
    gbm = board[board.model == "gbm"].set_index("unique_id")
    assert (gbm.skill_vs_baseline > 0).all(), gbm
    assert gbm.beats_baseline.all()


def test_every_model_backtests_to_finite_metrics() -> None:
    clean = make_clean(respondents=("NYIS",), days=30)
    spec = BacktestSpec(n_windows=1, input_hours=14 * 24)
    cv = backtest(clean, MODELS, spec)
    assert len(cv) == len(MODELS) * spec.horizon
    assert np.isfinite(cv[list(CV_COLUMNS[5:])].to_numpy()).all()
    assert _intervals_ordered(cv)
    board = leaderboard(cv)
    assert sorted(board.model) == sorted(MODELS)
    assert list(board["rank"]) == [1, 2, 3, 4, 5]
    assert np.isfinite(board[["rmse_mean", "mae_mean", "mape_mean", "skill_vs_baseline"]]).all(
        axis=None
    )
    assert (board.rmse_std == 0.0).all()  # one window: ddof=0 gives 0, not NaN
    diagnostics = cv.attrs["diagnostics"]
    assert set(diagnostics) == set(MODELS)
    assert all(isinstance(d["warnings"], int) and d["seconds"] >= 0 for d in diagnostics.values())


# --- leaderboard ----------------------------------------------------------------------------------


def _cv_rows(uid: str, model: str, windows: list[tuple[list[float], list[float]]]) -> list[dict]:
    c0 = pd.Timestamp("2024-03-01 23:00", tz="UTC")
    rows = []
    for w, (ys, yhats) in enumerate(windows):
        cutoff = c0 + 24 * w * H
        for i, (y, yhat) in enumerate(zip(ys, yhats, strict=True)):
            rows.append(
                {"unique_id": uid, "model": model, "cutoff": cutoff, "ds": cutoff + (i + 1) * H}
                | {"y": y, "yhat": yhat}
                | {c: yhat for c in CV_COLUMNS[6:]}
            )
    return rows


def test_leaderboard_values_by_hand() -> None:
    rows = (
        # seasonal_naive: window 1 errors +10, -10 (rmse 10, mae 10, mape (10% + 5%) / 2);
        # window 2 errors +30, -30 (rmse 30, mae 30, mape 30%).
        _cv_rows("A", BASELINE, [([100, 200], [110, 190]), ([100, 100], [130, 70])])
        # gbm: window 1 exact; window 2 errors +10, -10.
        + _cv_rows("A", "gbm", [([100, 200], [100, 200]), ([100, 100], [110, 90])])
        # B has no baseline rows: no skill, not ranked against anything.
        + _cv_rows("B", "gbm", [([50, 50, 50], [40, 50, 60])])
    )
    board = leaderboard(pd.DataFrame(rows))
    assert tuple(board.columns) == LEADERBOARD_COLUMNS
    expected = pd.DataFrame(
        {
            "unique_id": ["A", "A", "B"],
            "model": ["gbm", BASELINE, "gbm"],
            "rmse_mean": [5.0, 20.0, np.sqrt(200 / 3)],
            "rmse_std": [5.0, 10.0, 0.0],
            "mae_mean": [5.0, 20.0, 20 / 3],
            "mape_mean": [5.0, 18.75, 40 / 3],
            "skill_vs_baseline": [0.75, 0.0, np.nan],
            "beats_baseline": [True, False, False],
            "rank": np.array([1, 2, 1], dtype="int64"),
            "n_windows": np.array([2, 2, 1], dtype="int64"),
            "horizon": np.array([2, 2, 3], dtype="int64"),
        }
    )
    pd.testing.assert_frame_equal(board, expected)


def test_leaderboard_breaks_ties_by_model_name() -> None:
    window = [([100.0, 120.0], [105.0, 115.0])]
    rows = [
        r
        for model in ("mstl", BASELINE, "holt_winters", "auto_arima")
        for r in _cv_rows("A", model, window)
    ]
    board = leaderboard(pd.DataFrame(rows))
    assert list(board.model) == ["auto_arima", "holt_winters", "mstl", BASELINE]
    assert list(board["rank"]) == [1, 2, 3, 4]
    assert (board.skill_vs_baseline == 0.0).all()
    assert not board.beats_baseline.any()


def test_leaderboard_needs_the_baseline(cv: pd.DataFrame) -> None:
    with pytest.raises(ForecastingError, match="seasonal_naive"):
        leaderboard(cv[cv.model != BASELINE])


# --- forecast -------------------------------------------------------------------------------------


def test_forecast_seasonal_naive_repeats_the_last_day(clean: pd.DataFrame) -> None:
    out = forecast(clean, "seasonal_naive", SPEC)
    assert tuple(out.columns) == FORECAST_COLUMNS
    assert str(out.ds.dtype) == "datetime64[us, UTC]"
    for uid, group in out.groupby("unique_id"):
        history = clean[clean.unique_id == uid]
        last = history.ds.max()
        assert list(group.ds) == [last + (i + 1) * H for i in range(SPEC.horizon)]
        np.testing.assert_array_equal(group.yhat.to_numpy(), history.y.tail(24).to_numpy())
    assert _intervals_ordered(out)


def test_forecast_gbm_longer_horizon(clean: pd.DataFrame) -> None:
    spec = dataclasses.replace(SPEC, horizon=36)
    out = forecast(clean, "gbm", spec)
    assert tuple(out.columns) == FORECAST_COLUMNS
    assert list(out.unique_id) == [u for u in RESPONDENTS for _ in range(36)]
    first = out.groupby("unique_id").ds.min()
    assert (first == clean.groupby("unique_id").ds.max() + H).all()
    assert (out.groupby("unique_id").ds.diff().dropna() == H).all()
    assert np.isfinite(out[list(FORECAST_COLUMNS[2:])].to_numpy()).all()
    assert _intervals_ordered(out)
    # Plausible: within 30% of the last day's mean demand.
    level = clean.groupby("unique_id").y.apply(lambda y: y.tail(24).mean())
    assert (abs(out.groupby("unique_id").yhat.mean() / level - 1) < 0.3).all()


def test_forecast_reads_naive_ds_as_utc(clean: pd.DataFrame) -> None:
    naive = clean.assign(ds=clean.ds.dt.tz_localize(None))
    pd.testing.assert_frame_equal(
        forecast(naive, "seasonal_naive", SPEC), forecast(clean, "seasonal_naive", SPEC)
    )


# --- errors ---------------------------------------------------------------------------------------


def test_minimum_history_hours() -> None:
    spec = BacktestSpec()
    # seasonal naive: two days to fit, then 24 h horizon + 2 more origins 24 h apart.
    assert minimum_history_hours(["seasonal_naive"], spec) == 48 + 24 + 2 * 24
    # gbm: 192 h of feature warm-up + a week of rows + 7 conformal windows of 24 h.
    assert forecasting.minimum_train_hours("gbm", spec) == 192 + 168 + 7 * 24
    assert minimum_history_hours(MODELS, spec) == 528 + 72
    assert minimum_history_hours(["mstl"], spec, backtest=False) == 336


def test_too_little_history_names_the_series_and_hours(clean: pd.DataFrame) -> None:
    short = clean[(clean.unique_id == "CISO") | (clean.ds < clean.ds.min() + 100 * H)]
    needed = minimum_history_hours(["seasonal_naive", "mstl"], SPEC)
    with pytest.raises(ForecastingError, match=rf"needs {needed} hours.*'ERCO' has 100 hour"):
        backtest(short, ["seasonal_naive", "mstl"], SPEC)
    with pytest.raises(ForecastingError, match=r"needs 336 hours.*'ERCO' has 100 hour"):
        forecast(short, "mstl", SPEC)


def test_unknown_model_lists_the_models(clean: pd.DataFrame) -> None:
    with pytest.raises(ForecastingError, match=r"'prophet'.*seasonal_naive.*auto_arima.*gbm"):
        backtest(clean, ["seasonal_naive", "prophet"], SPEC)
    with pytest.raises(ForecastingError, match="the models are"):
        forecast(clean, "prophet", SPEC)
    with pytest.raises(ForecastingError, match="unknown"):
        minimum_history_hours(["prophet"], SPEC)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.drop(index=50), "gap"),
        (lambda f: pd.concat([f, f.iloc[[10]]]), "duplicate"),
        (lambda f: f.assign(y=f.y.where(f.index != 7)), "NaN"),
        (lambda f: f.assign(ds=f.ds + pd.Timedelta(minutes=30)), "whole UTC hours"),
        (lambda f: f.drop(columns="y"), "missing column"),
    ],
)
def test_bad_input_is_refused(clean: pd.DataFrame, damage, message: str) -> None:
    with pytest.raises(ForecastingError, match=message):
        forecast(damage(clean), "seasonal_naive", SPEC)


def test_spec_and_input_hours_are_validated(clean: pd.DataFrame) -> None:
    for bad in (
        {"horizon": 0},
        {"n_windows": 0},
        {"step": 0},
        {"input_hours": 10},
        {"seed": -1},
        {"horizon": 2.5},
    ):
        with pytest.raises(ValueError):
            BacktestSpec(**bad)
    # MSTL needs two weeks to fit; a 2-day training window cannot hold them.
    with pytest.raises(ForecastingError, match=r"input_hours=48 .*'mstl': 336"):
        backtest(clean, ["mstl"], BacktestSpec(input_hours=48))


# --- the MLflow pyfunc ----------------------------------------------------------------------------


def test_pyfunc_round_trip(clean: pd.DataFrame, tmp_path, monkeypatch) -> None:
    import mlflow

    from mlops_assets.demand.forecaster import (
        DemandForecaster,
        model_input,
        pip_requirements,
        signature_and_example,
    )

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    spec = dataclasses.replace(SPEC, horizon=24)
    signature, example = signature_and_example(clean, spec, model="seasonal_naive")
    assert len(example) == minimum_history_hours(["seasonal_naive"], spec, backtest=False)
    assert signature.params.to_dict() == [
        {"name": "horizon", "type": "long", "default": 24, "shape": None}
    ]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        experiment = mlflow.create_experiment("demand", artifact_location=str(tmp_path / "art"))
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(
                name="forecaster",
                python_model=DemandForecaster("seasonal_naive", spec),
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
            )
        loaded = mlflow.pyfunc.load_model(info.model_uri)
        requirements = mlflow.pyfunc.get_model_dependencies(info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    with open(requirements) as handle:
        pins = handle.read().split()
    for name in ("mlflow", "statsforecast", "mlforecast", "xgboost", "pandas"):
        assert any(p.startswith(f"{name}==") for p in pins), pins

    # The clean frame as it is (tz-aware ds), naive UTC ds, and ISO strings (a JSON payload) all
    # give the same forecast, with ds tz-aware UTC.
    expected = forecast(clean, "seasonal_naive", dataclasses.replace(spec, horizon=48))
    naive = model_input(clean)
    assert naive.ds.dt.tz is None
    as_text = naive.assign(ds=naive.ds.dt.strftime("%Y-%m-%dT%H:%M:%S"))
    for frame in (clean, naive, as_text):
        out = loaded.predict(frame, params={"horizon": 48})
        assert str(out.ds.dtype) == "datetime64[us, UTC]"
        pd.testing.assert_frame_equal(out, expected)
    default = loaded.predict(clean)
    assert len(default) == len(RESPONDENTS) * 24
    assert (default.groupby("unique_id").ds.min() == clean.groupby("unique_id").ds.max() + H).all()
    with pytest.raises(mlflow.exceptions.MlflowException, match="horizon"):
        loaded.predict(clean, params={"horizon": "tomorrow"})
    with pytest.raises(ForecastingError, match="horizon must be"):
        loaded.predict(clean, params={"horizon": 0})
    assert loaded.metadata.signature.inputs is None
    unwrapped = loaded.unwrap_python_model()
    assert unwrapped.model == "seasonal_naive"
    assert unwrapped.spec_params == dataclasses.asdict(spec)
    assert unwrapped.spec == spec


def test_signature_example_is_long_enough_for_any_model(clean: pd.DataFrame) -> None:
    from mlops_assets.demand.forecaster import DemandForecaster, signature_and_example

    _, example = signature_and_example(clean, SPEC)
    assert len(example) == max(forecasting.minimum_train_hours(m, SPEC) for m in MODELS)
    assert set(example.unique_id) == {"CISO"}
    assert example.ds.dt.tz is None
    assert example.ds.iloc[-1] == clean.ds[clean.unique_id == "CISO"].max().tz_localize(None)
    out = DemandForecaster("gbm", SPEC).predict(None, example)
    assert len(out) == SPEC.horizon
    with pytest.raises(ForecastingError, match=r"needs 528 hours.*'CISO' has 100"):
        signature_and_example(clean.groupby("unique_id").head(100), SPEC)
    with pytest.raises(ForecastingError, match="the models are"):
        DemandForecaster("prophet", SPEC)
